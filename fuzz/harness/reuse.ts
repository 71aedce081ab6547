/**
 * Reuse of the expensive parts of a target between executions (guest memory, device, core,
 * backends), each reset in full before the next input. `harnessMode.reuse` false makes every
 * `Reusable.get` build afresh: test/fuzz-reuse.test.ts runs input B after input A on reused
 * parts and B on fresh ones and compares the outcomes, which proves the reset leaks nothing.
 */
export const harnessMode = { reuse: true };

export class Reusable<T> {
  private cached: T | null = null;
  /** What the last `get` returned (the outcome of the last input is read from it). */
  last: T | null = null;

  constructor(private readonly create: () => T) {}

  /** The cached instance (built on first use), or a new one when reuse is off. */
  get(): T {
    this.last = harnessMode.reuse ? (this.cached ??= this.create()) : this.create();
    return this.last;
  }
}

/**
 * Lets promise continuations and queued microtasks (used-buffer notifications, a synchronous
 * backend's completions) run without an event-loop turn; then takes turns while `pending` says
 * work is still outstanding (an asynchronous backend), at most `turns` of them.
 */
export async function drain(pending: () => boolean, turns = 4): Promise<void> {
  for (let i = 0; i < 8; i++) await null;
  for (let t = 0; t < turns && pending(); t++) await new Promise<void>((r) => setImmediate(r));
}
