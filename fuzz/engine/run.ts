/**
 * Runs one target in a worker and watches it: a run whose execution counter stops moving for
 * `hangMs` broke the step budget, a worker that runs out of its heap cap broke the memory bound;
 * both are reported with the input that was running, as is any invariant the target checks.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ensureInstrumented } from './instrument.js';
import { SHARED_HEADER, type Finding, type Progress, type WorkerConfig, type WorkerMessage } from './protocol.js';

export interface FuzzOptions {
  readonly target: string;
  readonly runs?: number;
  readonly seconds?: number;
  readonly corpusDirs?: readonly string[];
  readonly outDir?: string | null;
  readonly seed?: number;
  readonly maxLen?: number;
  readonly corpusOnly?: boolean;
  /** No execution finishing for this long is a hang (the machine is shared: generous). */
  readonly hangMs?: number;
  /** Heap cap of the worker: growing past it is a finding. */
  readonly heapMb?: number;
  readonly onProgress?: (p: Progress) => void;
  /**
   * `counters` (default): the engine's own block counters, in a copy of the library instrumented
   * for them (`dist-fuzz/`, rebuilt when `dist/` is newer); `v8`: V8's precise block coverage
   * through node:inspector on `dist/` itself (the engine's first feedback, kept to compare).
   */
  readonly coverage?: 'counters' | 'v8';
}

export interface FuzzFinding {
  readonly invariant: string;
  readonly message: string;
  readonly input: Uint8Array;
}

export interface FuzzResult {
  readonly target: string;
  readonly execs: number;
  readonly seconds: number;
  readonly blocks: number;
  readonly features: number;
  readonly corpus: number;
  readonly heapMb: number;
  readonly finding: FuzzFinding | null;
}

const MAX_INPUT = 1 << 16;

function instrumentedCoverage(): WorkerConfig['coverage'] {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const manifest = ensureInstrumented(root);
  return { kind: 'counters', size: manifest.counters, targetsDir: new URL('../../../dist-fuzz/fuzz/targets/', import.meta.url).href };
}

export function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const shared = new SharedArrayBuffer(SHARED_HEADER + MAX_INPUT);
  const control = new Int32Array(shared, 0, 2);
  const cfg: WorkerConfig = {
    target: opts.target,
    runs: opts.runs ?? Number.MAX_SAFE_INTEGER,
    seconds: opts.seconds ?? (opts.runs === undefined ? 10 : Number.MAX_SAFE_INTEGER),
    corpusDirs: opts.corpusDirs ?? [],
    outDir: opts.outDir ?? null,
    seed: opts.seed ?? (Date.now() & 0x7fffffff),
    maxLen: Math.min(opts.maxLen ?? 0, MAX_INPUT),
    corpusOnly: opts.corpusOnly ?? false,
    heapMb: opts.heapMb ?? 1024,
    coverage: opts.coverage === 'v8' ? { kind: 'v8' } : instrumentedCoverage(),
    shared,
  };
  const hangMs = opts.hangMs ?? 20_000;
  const started = performance.now();
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: cfg,
    resourceLimits: { maxOldGenerationSizeMb: cfg.heapMb },
    stderr: false,
  });
  let last: Progress | null = null;
  let finding: FuzzFinding | null = null;
  let ready = false;
  const runningInput = (): Uint8Array => new Uint8Array(shared, SHARED_HEADER, Atomics.load(control, 1)).slice();

  return new Promise<FuzzResult>((resolve, reject) => {
    let lastExecs = -1;
    let lastMove = performance.now();
    const watchdog = setInterval(() => {
      if (!ready) return;
      const e = Atomics.load(control, 0);
      if (e !== lastExecs) {
        lastExecs = e;
        lastMove = performance.now();
      } else if (performance.now() - lastMove > hangMs) {
        finding = { invariant: 'step-budget', message: `no execution finished for ${hangMs} ms (unbounded loop?)`, input: runningInput() };
        void worker.terminate();
      }
    }, 250);
    const finish = (): void => {
      clearInterval(watchdog);
      const p = last;
      resolve({
        target: opts.target,
        execs: p?.execs ?? Atomics.load(control, 0),
        seconds: (performance.now() - started) / 1000,
        blocks: p?.blocks ?? 0,
        features: p?.features ?? 0,
        corpus: p?.corpus ?? 0,
        heapMb: p?.heapMb ?? 0,
        finding,
      });
    };
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') ready = true;
      else if (m.type === 'finding') {
        const f = m as Finding;
        const inv = /^InvariantViolation: ([a-z-]+):/.exec(f.message)?.[1] ?? 'exception-escaped';
        finding = { invariant: inv, message: f.message, input: new Uint8Array(f.input) };
      } else {
        last = m;
        opts.onProgress?.(m);
        if (m.type === 'done') void worker.terminate();
      }
    });
    worker.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') finding ??= { invariant: 'memory-growth', message: e.message, input: runningInput() };
      else finding ??= { invariant: 'exception-escaped', message: e.stack ?? e.message, input: runningInput() };
    });
    worker.on('exit', () => {
      if (!last && !finding && !ready) {
        clearInterval(watchdog);
        reject(new Error(`fuzz worker for ${opts.target} exited before starting`));
        return;
      }
      finish();
    });
  });
}
