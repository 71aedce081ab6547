/**
 * Test support for virtio-crypto: a device wired to a driver context (blk's test pair), raw
 * requests on any queue (readable bytes, a writable length prefilled with 0xee), and builders of
 * the control and data headers and flf structures in little-endian order.
 */
import { CryptoCtrlHeader, CryptoOpHeader } from '../../spec/crypto.js';
import { createTestPair, type TestPair, type TestPairOptions } from '../blk/test-pair.js';
import { CryptoDevice, type CryptoDeviceOptions } from './crypto-device.js';
import { CryptoDriver } from './crypto-driver.js';

export interface CryptoPair {
  readonly device: CryptoDevice;
  readonly pair: TestPair;
  readonly driver: CryptoDriver;
  /** A raw request on queue `index`: resolves with the used length and the writable bytes. */
  raw(index: number, readable: Uint8Array, writableLen: number): Promise<{ used: number; w: Uint8Array }>;
}

export function cryptoPair(devOpts: CryptoDeviceOptions = {}, pairOpts: TestPairOptions = {}): CryptoPair {
  const device = new CryptoDevice(devOpts);
  const pair = createTestPair(device, { queueSize: 32, ...pairOpts });
  const driver = new CryptoDriver(pair.ctx);
  // Through the driver's own queues: two RequestQueues on one virtqueue would steal each other's completions.
  const raw = async (index: number, readable: Uint8Array, writableLen: number): Promise<{ used: number; w: Uint8Array }> => {
    const { written, used } = await driver.submitRaw(index, readable, writableLen, 0xee);
    return { used, w: written };
  };
  return { device, pair, driver, raw };
}

/** Little-endian bytes: a fixed part of `size` then appended parts. */
export class Bytes {
  private readonly parts: Uint8Array[] = [];
  readonly head: Uint8Array;
  private readonly v: DataView;
  constructor(size: number) {
    this.head = new Uint8Array(size);
    this.v = new DataView(this.head.buffer);
  }
  u32(at: number, x: number): this {
    this.v.setUint32(at, x >>> 0, true);
    return this;
  }
  u64(at: number, x: number): this {
    this.v.setUint32(at, x % 0x1_0000_0000, true);
    this.v.setUint32(at + 4, Math.floor(x / 0x1_0000_0000), true);
    return this;
  }
  add(...bs: Uint8Array[]): this {
    this.parts.push(...bs);
    return this;
  }
  bytes(): Uint8Array {
    const n = this.parts.reduce((a, b) => a + b.length, this.head.length);
    const out = new Uint8Array(n);
    out.set(this.head);
    let at = this.head.length;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** A control request: struct virtio_crypto_ctrl_header then `flf` bytes of op_flf. */
export function ctrlReq(opcode: number, flf: number): Bytes {
  return new Bytes(CryptoCtrlHeader.SIZE + flf).u32(CryptoCtrlHeader.OPCODE, opcode);
}

/** A data request: struct virtio_crypto_op_header then `flf` bytes of op_flf (offsets from 24). */
export function dataReq(opcode: number, session: number, flag: number, flf: number): Bytes {
  return new Bytes(CryptoOpHeader.SIZE + flf).u32(CryptoOpHeader.OPCODE, opcode).u64(CryptoOpHeader.SESSION_ID, session).u32(CryptoOpHeader.FLAG, flag);
}

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 37 + seed * 11 + (i >> 8)) & 0xff;
  return b;
}

/** le32 at `at`. */
export function le32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}
