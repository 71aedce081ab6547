/**
 * Writes seed inputs for `runDeviceChains` (harness/device-chains.ts): the bytes it reads back
 * as "accept every feature or only EVENT_IDX", then rounds of chains, each chain its queue, the
 * bytes the target's header shaper reads, the raw rest of the message, no split of the readable
 * part, and the writable length. Keeps the seeds of the device targets readable and in step
 * with the harness's reading order.
 */
import { ByteWriter } from '../engine/byte-reader.js';
import { WRITABLE } from './device-chains.js';

/** One chain of a seed. */
export interface SeedChain {
  readonly queue: number;
  /** What the target's header shaper reads for this chain (its own ByteWriter output). */
  readonly header?: ArrayLike<number>;
  /** Raw bytes after the header (at most 199). */
  readonly rest?: ArrayLike<number>;
  /** Writable bytes: one of the harness's WRITABLE lengths. */
  readonly writable: number;
  /**
   * The shaper writes no bytes for this queue and `rest` is empty (an rx or event buffer): the
   * harness then reads no split choice.
   */
  readonly empty?: boolean;
}

export class ChainSeedWriter {
  private readonly w = new ByteWriter();

  constructor(
    allFeatures: boolean,
    /** The spec's queue count: with one queue the harness reads no queue byte. */
    private readonly queues: number,
  ) {
    this.w.u8(allFeatures ? 1 : 0);
  }

  /** A round: 1 to 4 chains made available, then the device is notified of each. */
  round(...chains: SeedChain[]): this {
    const w = this.w;
    if (chains.length < 1 || chains.length > 4) throw new RangeError(`a round has 1..4 chains, not ${chains.length}`);
    w.u8(chains.length - 1);
    for (const c of chains) {
      const rest = c.rest ?? [];
      const at = WRITABLE.indexOf(c.writable);
      if (at < 0 || rest.length > 199) throw new RangeError(`writable ${c.writable} not one of ${WRITABLE.join(', ')}, or rest ${rest.length} > 199`);
      if (this.queues > 1) w.u8(c.queue);
      w.bytes(c.header ?? []);
      // The harness reads below(4): 0 takes a length below 200, anything else one below 24.
      if (rest.length < 24) w.u8(1).u8(rest.length);
      else w.u8(0).u8(rest.length);
      w.bytes(rest);
      if (!c.empty) w.u8(0);
      w.u8(at);
    }
    return this;
  }

  finish(): Uint8Array {
    return this.w.finish();
  }
}
