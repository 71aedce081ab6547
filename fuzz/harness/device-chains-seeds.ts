/**
 * Writes seed inputs for runDeviceChains (device-chains.ts) from chains described as a driver
 * would post them, so a target's seeds() names queues, header fields and buffer sizes instead of
 * the raw bytes the harness reads: the feature choice, then per round the chain count, and per
 * chain its queue, the header the target's shaper reads back, the raw rest, no split (a
 * non-empty message), and the writable length (one of WRITABLE).
 */
import { ByteWriter } from '../engine/byte-reader.js';
import { WRITABLE } from './device-chains.js';

/** One chain of a seed. */
export interface SeedChain {
  /** The queue it is made available on. */
  readonly queue: number;
  /** Writes the bytes the target's header shaper reads for this chain. */
  readonly header?: (w: ByteWriter) => void;
  /** Raw bytes after the header (fewer than 200). */
  readonly rest?: ArrayLike<number>;
  /** Writable bytes: one of WRITABLE (0: none, unless the chain would be empty). */
  readonly writable: (typeof WRITABLE)[number];
  /**
   * The shaper makes no header bytes for this chain (it may still read choices) and there is no
   * rest: the message is empty, so the harness reads no split choice for it.
   */
  readonly emptyMessage?: boolean;
}

/**
 * A runDeviceChains input: `allFeatures` (every offered feature but RING_PACKED, else only
 * EVENT_IDX), then each round's chains (1 to 4 a round) made available in order.
 */
export function deviceChainsSeed(allFeatures: boolean, rounds: readonly (readonly SeedChain[])[]): Uint8Array {
  const w = new ByteWriter().u8(allFeatures ? 1 : 0);
  for (const round of rounds) {
    if (round.length < 1 || round.length > 4) throw new RangeError(`a round has 1 to 4 chains, not ${round.length}`);
    w.u8(round.length - 1);
    for (const c of round) {
      w.u8(c.queue);
      c.header?.(w);
      const rest = c.rest ?? [];
      if (rest.length >= 200) throw new RangeError(`a chain's raw rest is below 200 bytes, not ${rest.length}`);
      // below(4) !== 0 picks below(24) for the rest's length, 0 picks below(200).
      if (rest.length < 24) w.u8(1).u8(rest.length);
      else w.u8(0).u8(rest.length);
      w.bytes(rest);
      const at = WRITABLE.indexOf(c.writable);
      if (at < 0) throw new RangeError(`writable ${c.writable} is not one of ${WRITABLE.join(', ')}`);
      if (c.emptyMessage !== true || rest.length > 0) w.u8(0); // no split of the readable part
      w.u8(at);
    }
  }
  return w.finish();
}
