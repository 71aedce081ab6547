/**
 * Seed inputs for the runDeviceChains targets, written the way device-chains.ts reads them
 * back: the features byte, then rounds (a byte for the number of chains), each chain as its
 * queue, the bytes the target's header shaper reads, no raw rest, no split of the readable
 * part (no split byte at all for an empty message), and the index of its writable length in WRITABLE.
 */
import { ByteWriter } from '../engine/byte-reader.js';
import { type DeviceChainsSpec, QSIZE, WRITABLE } from './device-chains.js';

/** One chain of a seed: its queue, what the target's header shaper reads, its writable bytes. */
export interface SeedChain {
  readonly queue: number;
  /** The input bytes the target's `header` consumes for this chain. */
  readonly header: ArrayLike<number>;
  /** Writable bytes of the chain: one of WRITABLE. */
  readonly writable: number;
  /** The shaper returns no bytes (a buffer the device only writes): the harness reads no split byte then. */
  readonly emptyMessage?: boolean;
}

/**
 * A device-chains input: every feature the device offers or only EVENT_IDX, then the rounds (1
 * to 4 chains each, 4 rounds at most), for a target of `layout.queues` queues of
 * `layout.queueSize`. Throws when the harness would not place a chain (12 chains an input at
 * most; a queue takes no chain once more than queueSize - 3 descriptors are used), since its
 * bytes would then be read as the next chain's.
 */
export function deviceChainsSeed(allFeatures: boolean, rounds: readonly (readonly SeedChain[])[], layout: Pick<DeviceChainsSpec, 'queues' | 'queueSize'>): Uint8Array {
  const queueSize = layout.queueSize ?? QSIZE;
  const w = new ByteWriter().u8(allFeatures ? 1 : 0);
  const used = new Map<number, number>();
  let chains = 0;
  if (rounds.length > 4) throw new RangeError(`an input runs 4 rounds at most, not ${rounds.length}`);
  for (const round of rounds) {
    if (round.length < 1 || round.length > 4) throw new RangeError(`a round holds 1 to 4 chains, not ${round.length}`);
    w.u8(round.length - 1);
    for (const c of round) {
      const writable = WRITABLE.indexOf(c.writable);
      if (writable < 0) throw new RangeError(`writable length ${c.writable} is not one of ${WRITABLE.join(', ')}`);
      const descs = used.get(c.queue) ?? 0;
      if (++chains > 12 || descs > queueSize - 3) throw new RangeError(`chain ${chains} on queue ${c.queue} (${descs} descriptors used) would not be placed`);
      used.set(c.queue, descs + (c.emptyMessage === true ? 0 : 1) + (c.writable > 0 || c.emptyMessage === true ? 1 : 0));
      // queue, header, rest: "short" (1) of length 0, no split (when there is a message), writable length index.
      // (A device with one queue: the harness reads no queue byte.)
      if (layout.queues > 1) w.u8(c.queue);
      w.bytes(c.header).u8(1).u8(0);
      if (c.emptyMessage !== true) w.u8(0);
      w.u8(writable);
    }
  }
  return w.finish();
}
