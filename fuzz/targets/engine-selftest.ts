/**
 * Not an untrusted surface: a target that breaks on purpose so test/fuzz-engine.test.ts can
 * prove the engine reports findings (an invariant, a thrown error, a hang, heap growth) with the
 * input that caused them. Not listed in TARGETS.
 */
import { InvariantViolation, type FuzzTarget } from '../engine/target.js';

const hoard: Uint8Array[] = [];

function run(data: Uint8Array): void {
  const tag = String.fromCharCode(...data.subarray(0, 4));
  if (tag === 'INV!') throw new InvariantViolation('chain-not-completed', 'planted');
  if (tag === 'THR!') JSON.parse('{');
  if (tag === 'HNG!') for (;;);
  if (tag === 'MEM!') for (let i = 0; i < 200; i++) hoard.push(new Uint8Array(1 << 20).fill(1));
}

export const target: FuzzTarget = { name: 'engine-selftest', maxLen: 16, seeds: () => [new Uint8Array([1, 2, 3])], run };
