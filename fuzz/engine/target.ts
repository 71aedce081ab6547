/**
 * A fuzz target: one untrusted surface driven by the real code. `run` throws (or rejects) when
 * an invariant breaks; everything the surface is allowed to refuse it must refuse quietly.
 */
export interface FuzzTarget {
  readonly name: string;
  /** Longest input the mutator builds for this target. */
  readonly maxLen: number;
  /** Structured starting inputs (written to fuzz/corpus/<name>/ by `--write-seeds`). */
  seeds(): Uint8Array[];
  run(data: Uint8Array): void | Promise<void>;
  /**
   * A digest of what the last `run` left (guest memory, completions, status), for targets that
   * reuse their device between inputs: test/fuzz-reuse.test.ts proves that input B run after A
   * ends as B run on fresh parts.
   */
  outcome?(): string;
}

/** An invariant of the issue 17 list broke: the finding the engine reports. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: 'exception-escaped' | 'guest-memory-bounds' | 'step-budget' | 'memory-growth' | 'chain-not-completed' | 'protocol' | 'outside-shared-dir',
    message: string,
  ) {
    super(`${invariant}: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function check(cond: boolean, invariant: InvariantViolation['invariant'], message: string): asserts cond {
  if (!cond) throw new InvariantViolation(invariant, message);
}
