/**
 * Where a transmit frame is read from (5.1.6.2: a virtio_net_hdr, then the frame, over the
 * device-readable bytes of one chain): a DescriptorChain the queue server popped
 * (ChainTxSource), or a chain of a direct batch (tx-direct.ts). The device's transmit path reads
 * both the same way, so both give the same outcome for the same chain.
 */
import type { DescriptorChain } from '../../queue/chain.js';
import type { TxChainReader } from './tx-chain-reader.js';

/** One transmit chain's readable bytes, for the device's transmit path. */
export interface TxSource {
  /** Device-readable bytes of the chain. */
  readonly readableBytes: number;
  /** A readable buffer of the chain is not in guest memory: the chain is malformed. */
  readonly faulted: boolean;
  /**
   * Copies the first `hl` readable bytes into hdr[0, hl) and the next `frameLen` into
   * frame[0, frameLen); false when the chain holds fewer or a buffer is not in guest memory.
   */
  read(hdr: Uint8Array, hl: number, frame: Uint8Array, frame32: Uint32Array | null, frameLen: number): boolean;
  /** Copies frame bytes [from, to) (readable bytes hl + from .. hl + to) into frame[from, to); false as `read`. */
  readRest(hl: number, frame: Uint8Array, frame32: Uint32Array | null, from: number, to: number): boolean;
}

/** A popped DescriptorChain as a TxSource (through the device's TxChainReader). */
export class ChainTxSource implements TxSource {
  /** The chain read now (set per chain, never kept past it). */
  chain: DescriptorChain | null = null;

  constructor(private readonly reader: TxChainReader) {}

  get readableBytes(): number {
    return this.chain?.readableBytes ?? 0;
  }
  get faulted(): boolean {
    return this.chain === null || this.chain.fault !== null;
  }
  read(hdr: Uint8Array, hl: number, frame: Uint8Array, frame32: Uint32Array | null, frameLen: number): boolean {
    return this.chain !== null && this.reader.read(this.chain, hdr, hl, frame, frame32, frameLen);
  }
  readRest(hl: number, frame: Uint8Array, frame32: Uint32Array | null, from: number, to: number): boolean {
    return this.chain !== null && this.reader.readRest(this.chain, hl, frame, frame32, from, to);
  }
}
