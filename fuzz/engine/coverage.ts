/**
 * Coverage feedback from V8's precise block coverage (the inspector Profiler domain, in the
 * isolate the target runs in), limited to the library code (`/dist/src/`).
 *
 * V8 reports, per function called since the last take, its ranges with their counts, and leaves
 * out a nested block whose count equals its parent's. So a block is covered when it shows with a
 * count above 0, or when it showed before with count 0 and is now missing from a function that
 * ran. Features are the covered blocks plus, per block, a bucket of its hit count (as libFuzzer's
 * counters: a loop taken 1, 2, 3, 4-7, 8-15... times is a different feature), so loops that go
 * deeper count as progress.
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  ranges: Range[];
}
interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: FunctionCoverage[];
}

function bucket(count: number): number {
  if (count <= 3) return count;
  return 32 - Math.clz32(count); // 4-7 -> 3+..., a log2 class
}

export class CoverageTracker {
  private readonly session = new Session();
  /** Covered blocks: "script:start:end". */
  readonly blocks = new Set<string>();
  /** Blocks plus hit-count classes. */
  readonly features = new Set<string>();
  /** Per function ("script:start"), the blocks seen with count 0. */
  private readonly zeroBlocks = new Map<string, Map<string, Range>>();
  private readonly urlFilter: string;
  /** Features the last uncommitted take counted as new. */
  private peeked: string[] = [];
  /** A batch's peeked features, held while its inputs are replayed one by one. */
  private held: string[] = [];
  /**
   * Features a batch showed that none of its single inputs brought (a hit-count class of the
   * batch's summed counts): not counted by later batch takes, or every batch would be split.
   */
  private readonly batchOnly = new Set<string>();

  constructor(urlFilter = '/dist/src/') {
    this.urlFilter = urlFilter;
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    // An in-isolate session answers synchronously.
    this.session.post(method, params ?? {}, (err, res) => {
      error = err;
      result = res;
    });
    if (error) throw error;
    return result;
  }

  /**
   * Takes (and resets) the counts since the last call; returns how many new features they hold.
   * With `commit` false the features are only counted, not recorded: a batch of inputs is
   * measured that way, and only the single input found to bring them records them (recording
   * them for the batch would hide them from the replay that finds which input it was).
   */
  collect(commit = true): number {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    let fresh = 0;
    if (!commit) this.peeked = [];
    const seen = (f: string): void => {
      fresh++;
      if (!commit) this.peeked.push(f);
    };
    for (const script of result) {
      if (!script.url.includes(this.urlFilter)) continue;
      for (const fn of script.functions) {
        const root = fn.ranges[0];
        if (!root || root.count === 0) continue;
        const fnKey = `${script.scriptId}:${root.startOffset}`;
        const zeroNow: Range[] = [];
        for (const r of fn.ranges) {
          const key = `${script.scriptId}:${r.startOffset}:${r.endOffset}`;
          if (r.count === 0) {
            zeroNow.push(r);
            let z = this.zeroBlocks.get(fnKey);
            if (!z) this.zeroBlocks.set(fnKey, (z = new Map()));
            z.set(key, r);
            continue;
          }
          const f = `${key}#${bucket(r.count)}`;
          if (!this.features.has(f) && (commit || !this.batchOnly.has(f))) {
            seen(f);
            if (commit) {
              this.blocks.add(key);
              this.features.add(f);
            }
          }
        }
        // Blocks seen unexecuted before and now merged into an executed parent: executed
        // (inside an unexecuted range they are merged into a count-0 parent instead).
        const z = this.zeroBlocks.get(fnKey);
        if (z) {
          for (const [key, r] of z) {
            if (zeroNow.some((o) => o.startOffset <= r.startOffset && r.endOffset <= o.endOffset)) continue;
            const merged = `${key}#merged`;
            if (!this.blocks.has(key) && (commit || !this.batchOnly.has(merged))) seen(merged);
            if (!commit) continue;
            z.delete(key);
            if (!this.blocks.has(key)) {
              this.blocks.add(key);
              this.features.add(merged);
            }
          }
        }
      }
    }
    return fresh;
  }

  /** Holds the features the last uncommitted take (a batch's) counted as new, for settleBatch. */
  holdBatch(): void {
    this.held = this.peeked;
    this.peeked = [];
  }

  /**
   * After the held batch was split down to its single inputs: the features of its take that
   * none of them brought are batch-only from now on.
   */
  settleBatch(): void {
    for (const f of this.held) {
      const key = f.slice(0, f.lastIndexOf('#'));
      if (!this.features.has(f) && !(f.endsWith('#merged') && this.blocks.has(key))) this.batchOnly.add(f);
    }
    this.held = [];
  }

  close(): void {
    try {
      this.post('Profiler.stopPreciseCoverage');
    } finally {
      this.session.disconnect();
    }
  }
}
