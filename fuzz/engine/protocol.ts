/** What the fuzz worker and its supervisor exchange. */
export interface WorkerConfig {
  readonly target: string;
  readonly runs: number;
  readonly seconds: number;
  readonly corpusDirs: readonly string[];
  /** Where new interesting inputs are written (none when null). */
  readonly outDir: string | null;
  readonly seed: number;
  readonly maxLen: number;
  /** Only run the corpus, no mutation (a regression pass). */
  readonly corpusOnly: boolean;
  /** Memory bound (V8 heap plus array buffers), MB. */
  readonly heapMb: number;
  /**
   * Coverage feedback: the engine's own counters in the instrumented copy of the library
   * (`counters`, the size of its counter array) or V8's precise block coverage (`v8`).
   */
  readonly coverage: { readonly kind: 'counters'; readonly size: number; readonly targetsDir: string } | { readonly kind: 'v8' };
  /** Control words: [0] executions so far, [1] length of the input being run; bytes follow at 8. */
  readonly shared: SharedArrayBuffer;
}

export interface Progress {
  readonly type: 'progress' | 'done';
  readonly execs: number;
  readonly blocks: number;
  readonly features: number;
  readonly corpus: number;
  readonly seconds: number;
  readonly heapMb: number;
}

export interface Finding {
  readonly type: 'finding';
  readonly message: string;
  readonly input: Uint8Array;
  readonly execs: number;
}

export type WorkerMessage = Progress | Finding | { readonly type: 'ready'; readonly maxLen: number };

export const SHARED_HEADER = 8;
