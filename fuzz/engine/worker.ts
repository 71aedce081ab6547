/**
 * The fuzz loop, in a worker so the supervisor can stop a run that hangs (the step budget) or
 * outgrows its heap cap (memory growth) and still name the input that did it: the input being
 * run is mirrored into shared memory before each execution.
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { CoverageTracker } from './coverage.js';
import { CounterTracker } from './edge-counters.js';
import { Mutator, Rng } from './mutator.js';
import { SHARED_HEADER, type WorkerConfig, type WorkerMessage } from './protocol.js';
import { InvariantViolation, type FuzzTarget } from './target.js';

const cfg = workerData as WorkerConfig;
const control = new Int32Array(cfg.shared, 0, 2);
const current = new Uint8Array(cfg.shared, SHARED_HEADER);
const port = parentPort!;
const send = (m: WorkerMessage): void => port.postMessage(m);

let execs = 0;
let running: Uint8Array = new Uint8Array(0);

/** Stack depth for errors outside executions (set back while a finding is reported). */
const STACK_DEPTH = Error.stackTraceLimit;

function fail(e: unknown): never {
  Error.stackTraceLimit = STACK_DEPTH;
  const message = e instanceof Error ? `${e.stack ?? e.message}` : String(e);
  send({ type: 'finding', message, input: running, execs });
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

function loadCorpus(dirs: readonly string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) if (!f.startsWith('.') && !f.endsWith('.md')) out.push(new Uint8Array(readFileSync(join(d, f))));
  }
  return out;
}

async function main(): Promise<void> {
  // The counters exist before the instrumented library is imported (its modules read them then).
  const cov = cfg.coverage;
  const tracker = cov.kind === 'counters' ? new CounterTracker(cov.size) : new CoverageTracker();
  const targetUrl = cov.kind === 'counters' ? new URL(`${cfg.target}.js`, cov.targetsDir).href : `../targets/${cfg.target}.js`;
  const mod = (await import(targetUrl)) as { target: FuzzTarget };
  const target = mod.target;
  const maxLen = cfg.maxLen > 0 ? cfg.maxLen : target.maxLen;
  send({ type: 'ready', maxLen });
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;

  // ArrayBuffers live outside the V8 heap the worker's cap bounds: count them here. Checked
  // once per batch (reading the process's memory figures costs more than a fast execution);
  // the heap itself is bounded by the worker's resourceLimits at every allocation.
  let lastMemoryCheck = 0;
  const checkMemory = (force = false): void => {
    // Reading the figures costs ~10 us (more than a batch of the fastest targets' inputs): at
    // most every 100 ms; the heap cap still holds at every allocation.
    const now = performance.now();
    if (!force && now - lastMemoryCheck < 100) return;
    lastMemoryCheck = now;
    const used = getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers;
    if (used > cfg.heapMb * 2 ** 20) fail(new InvariantViolation('memory-growth', `heap + array buffers ${(used / 2 ** 20).toFixed(0)} MB > ${cfg.heapMb} MB`));
  };

  async function exec(input: Uint8Array): Promise<void> {
    running = input;
    const n = Math.min(input.length, current.length);
    current.set(input.subarray(0, n));
    Atomics.store(control, 1, n);
    try {
      const r = target.run(input);
      if (r) await r;
    } catch (e) {
      fail(await withStack(input, e));
    }
    execs++;
    Atomics.store(control, 0, execs | 0);
  }

  // Executions run without stack traces: the library refuses most of a mutated input by
  // throwing a VirtioError, and capturing its stack was the largest single cost of an execution
  // (split-ring: 3.6 s of 22 s, fuzz/README.md). A finding's input is run once more with stacks
  // so the report still shows where it broke (the same error when the input reproduces alone).
  const withStack = async (input: Uint8Array, first: unknown): Promise<unknown> => {
    Error.stackTraceLimit = STACK_DEPTH;
    try {
      const r = target.run(input);
      if (r) await r;
    } catch (again) {
      return again;
    }
    return first;
  };
  Error.stackTraceLimit = 0;

  const save = (input: Uint8Array): void => {
    if (!cfg.outDir) return;
    mkdirSync(cfg.outDir, { recursive: true });
    writeFileSync(join(cfg.outDir, createHash('sha1').update(input).digest('hex')), input);
  };

  let corpus = loadCorpus(cfg.corpusDirs);
  if (corpus.length === 0) corpus = target.seeds();
  tracker.collect(); // drop what loading the modules ran
  const kept: Uint8Array[] = [];
  for (const input of corpus) {
    await exec(input);
    checkMemory(true);
    if (tracker.collect() > 0 || kept.length === 0) kept.push(input);
  }
  if (kept.length === 0) kept.push(new Uint8Array(0));

  let lastReport = performance.now();
  const report = (type: 'progress' | 'done'): void =>
    send({ type, execs, blocks: tracker.blocks.size, features: tracker.features.size, corpus: kept.length, seconds: elapsed(), heapMb: getHeapStatistics().used_heap_size / 2 ** 20 });

  if (!cfg.corpusOnly) {
    const rng = new Rng(cfg.seed);
    const mutator = new Mutator(rng, maxLen);
    // Coverage is taken per batch: a take costs milliseconds (V8 serialises the counts of every
    // function), far more than a fast execution, so the batch grows until takes cost about a
    // sixth of the time. A batch whose take shows new features is split in halves, each run and
    // measured again, down to the single inputs that bring them; only those record features
    // (measuring a batch does not record, see CoverageTracker.collect).
    const MIN_BATCH = 16;
    const MAX_BATCH = 1024;
    let batchSize = MIN_BATCH;
    const batch: Uint8Array[] = [];
    const locate = async (inputs: readonly Uint8Array[]): Promise<void> => {
      if (inputs.length === 1) {
        await exec(inputs[0]!);
        if (tracker.collect(true) > 0) {
          kept.push(inputs[0]!);
          save(inputs[0]!);
        }
        return;
      }
      const mid = inputs.length >> 1;
      for (const half of [inputs.slice(0, mid), inputs.slice(mid)]) {
        for (const m of half) await exec(m);
        if (tracker.collect(false) > 0) await locate(half);
      }
    };
    while (execs < cfg.runs && elapsed() < cfg.seconds) {
      batch.length = 0;
      const n = Math.min(batchSize, Math.max(1, cfg.runs - execs));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const parent = kept[rng.below(kept.length)]!;
        const other = kept[rng.below(kept.length)];
        const m = mutator.mutate(parent, other);
        batch.push(m);
        await exec(m);
      }
      const t1 = performance.now();
      const fresh = tracker.collect(false);
      const takeMs = performance.now() - t1;
      const perExec = (t1 - t0) / n;
      batchSize = Math.max(MIN_BATCH, Math.min(MAX_BATCH, Math.ceil((5 * takeMs) / Math.max(perExec, 1e-3))));
      checkMemory();
      if (fresh > 0) {
        tracker.holdBatch();
        await locate(batch);
        tracker.settleBatch();
      }
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        report('progress');
      }
    }
  }
  report('done');
  tracker.close();
}

main().catch(fail);
