/**
 * Writes seed inputs for runDeviceChains (device-chains.ts) from chains described as a driver
 * would post them, so a target's seeds() names queues, header fields and buffer sizes instead of
 * the raw bytes the harness reads: the feature choice, then per round the chain count, and per
 * chain its queue (no byte when the device has one queue), the bytes the target's header shaper
 * reads, the raw rest, no split of the readable part (no split byte at all for an empty
 * message), and the index of its writable length in WRITABLE. Throws when the harness would not
 * place a chain, since its bytes would then be read as the next chain's.
 */
import { ByteWriter } from '../engine/byte-reader.js';
import { type DeviceChainsSpec, QSIZE, WRITABLE } from './device-chains.js';

/** One chain of a seed. */
export interface SeedChain {
  /** The queue it is made available on. */
  readonly queue: number;
  /** What the target's header shaper reads for this chain: the bytes, or a writer of them. */
  readonly header?: ArrayLike<number> | ((w: ByteWriter) => void);
  /** Raw bytes after the header (at most 199). */
  readonly rest?: ArrayLike<number>;
  /** Writable bytes: one of WRITABLE (0: none, unless the chain would be empty). */
  readonly writable: number;
  /**
   * The shaper makes no message bytes for this chain (it may still read choices: an rx or event
   * buffer) and there is no rest: the harness then reads no split choice.
   */
  readonly emptyMessage?: boolean;
}

/** Chains an input places at most (the harness's data slots). */
const MAX_CHAINS = 12;

/**
 * A runDeviceChains input for a target of `layout.queues` queues of `layout.queueSize`:
 * `allFeatures` (every offered feature but RING_PACKED, else only EVENT_IDX), then each round's
 * chains (1 to 4 a round) made available in order.
 */
export function deviceChainsSeed(allFeatures: boolean, rounds: readonly (readonly SeedChain[])[], layout: Pick<DeviceChainsSpec, 'queues' | 'queueSize' | 'rounds'>): Uint8Array {
  const queueSize = layout.queueSize ?? QSIZE;
  const maxRounds = layout.rounds ?? 4;
  if (rounds.length > maxRounds) throw new RangeError(`an input runs ${maxRounds} rounds at most, not ${rounds.length}`);
  const w = new ByteWriter().u8(allFeatures ? 1 : 0);
  const descsUsed = new Map<number, number>();
  let chains = 0;
  for (const round of rounds) {
    if (round.length < 1 || round.length > 4) throw new RangeError(`a round has 1 to 4 chains, not ${round.length}`);
    w.u8(round.length - 1);
    for (const c of round) {
      const rest = c.rest ?? [];
      if (rest.length >= 200) throw new RangeError(`a chain's raw rest is below 200 bytes, not ${rest.length}`);
      const at = WRITABLE.indexOf(c.writable);
      if (at < 0) throw new RangeError(`writable ${c.writable} is not one of ${WRITABLE.join(', ')}`);
      const empty = c.emptyMessage === true && rest.length === 0;
      const descs = descsUsed.get(c.queue) ?? 0;
      if (++chains > MAX_CHAINS || descs > queueSize - 3) throw new RangeError(`chain ${chains} on queue ${c.queue} (${descs} descriptors used) would not be placed`);
      descsUsed.set(c.queue, descs + (empty ? 0 : 1) + (c.writable > 0 || empty ? 1 : 0));
      if (layout.queues > 1) w.u8(c.queue);
      if (typeof c.header === 'function') c.header(w);
      else if (c.header !== undefined) w.bytes(c.header);
      // below(4) !== 0 picks below(24) for the rest's length, 0 picks below(200).
      if (rest.length < 24) w.u8(1).u8(rest.length);
      else w.u8(0).u8(rest.length);
      w.bytes(rest);
      if (!empty) w.u8(0); // no split of the readable part
      w.u8(at);
    }
  }
  return w.finish();
}
