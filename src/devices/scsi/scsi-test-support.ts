/**
 * Test support for virtio-scsi: a device on RAM disks wired to a driver context (blk's test pair),
 * a backend whose operations are held until released (commands in flight for task management),
 * raw chains for malformed requests, and CDB builders.
 */
import { RequestQueue } from '../../driver/request-queue.js';
import type { Segment } from '../../queue/types.js';
import { ScsiCmdReq, ScsiCmdResp } from '../../spec/scsi.js';
import type { BlkBackend } from '../blk/backend.js';
import { MemoryBackend } from '../blk/memory-backend.js';
import { createTestPair, type TestPair, type TestPairOptions } from '../blk/test-pair.js';
import { ScsiDevice, type ScsiDeviceOptions } from './scsi-device.js';

/** A RAM disk whose reads, writes and flushes wait until `release()` while `hold` is set. */
export class HeldBackend implements BlkBackend {
  readonly inner: MemoryBackend;
  hold = false;
  /** Replaces the size the device sees (a disk that grew or shrank). */
  sizeOverride: number | null = null;
  private waiting: (() => void)[] = [];

  constructor(size: number) {
    this.inner = new MemoryBackend(size);
  }
  get size(): number {
    return this.sizeOverride ?? this.inner.size;
  }
  get held(): number {
    return this.waiting.length;
  }
  private gate(op: () => void): Promise<void> | void {
    if (!this.hold) return op();
    return new Promise((resolve) => this.waiting.push(() => (op(), resolve())));
  }
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }
  read(offset: number, dst: Uint8Array, dstOff?: number, len?: number): Promise<void> | void {
    return this.gate(() => this.inner.read(offset, dst, dstOff, len));
  }
  write(offset: number, src: Uint8Array, srcOff?: number, len?: number): Promise<void> | void {
    return this.gate(() => this.inner.write(offset, src, srcOff, len));
  }
  flush(): Promise<void> | void {
    return this.gate(() => this.inner.flush());
  }
  discard(offset: number, len: number): void {
    this.inner.discard(offset, len);
  }
  writeZeroes(offset: number, len: number): void {
    this.inner.writeZeroes(offset, len);
  }
  close(): void {}
}

export interface ScsiPair {
  readonly device: ScsiDevice;
  readonly pair: TestPair;
  readonly disks: BlkBackend[];
}

/** A device with LUNs of `blocks` 512-byte blocks (MemoryBackend unless given) and its test pair. */
export function scsiPair(disks: BlkBackend[], pairOpts: TestPairOptions = {}, devOpts: ScsiDeviceOptions = {}, readOnly: readonly number[] = []): ScsiPair {
  const device = new ScsiDevice(
    disks.map((backend, i) => ({ backend, readOnly: readOnly.includes(i) })),
    devOpts,
  );
  const pair = createTestPair(device, { queueSize: 32, ...pairOpts });
  return { device, pair, disks };
}

export function memDisks(n: number, blocks = 128): MemoryBackend[] {
  return Array.from({ length: n }, () => new MemoryBackend(blocks * 512));
}

/** A raw request on queue `index` of the pair: readable buffers, then writable ones of the given sizes. */
export class RawQueue {
  private readonly q: RequestQueue;
  constructor(
    private readonly pair: TestPair,
    index: number,
  ) {
    this.q = new RequestQueue(pair.ctx, index);
  }

  async submit(out: readonly Uint8Array[], inLens: readonly number[]): Promise<{ used: number; ins: Uint8Array[] }> {
    const { ctx } = this.pair;
    const outs: Segment[] = out.map((b) => {
      const addr = ctx.dma.alloc(Math.max(1, b.length), 16);
      ctx.memory.write(addr, b);
      return { addr, len: b.length };
    });
    const ins: Segment[] = inLens.map((len) => {
      const addr = ctx.dma.alloc(Math.max(1, len), 16);
      ctx.memory.fill(addr, len, 0xee);
      return { addr, len };
    });
    try {
      const used = await this.q.submit(outs, ins);
      return { used, ins: ins.map((s) => ctx.memory.slice(s.addr, s.len).slice()) };
    } finally {
      for (const s of [...outs, ...ins]) ctx.dma.free(s.addr);
    }
  }
}

/** A struct virtio_scsi_req_cmd readable header (lun of target 0 in flat format) with `cdb`. */
export function cmdHeader(lun: number, cdb: readonly number[], o: { id?: number; cdbSize?: number; lunBytes?: readonly number[]; le?: boolean } = {}): Uint8Array {
  const h = new Uint8Array(ScsiCmdReq.HEADER + (o.cdbSize ?? 32));
  if (o.lunBytes) h.set(o.lunBytes, 0);
  else h.set([1, 0, 0x40 | (lun >> 8), lun & 0xff], 0);
  new DataView(h.buffer).setUint32(ScsiCmdReq.ID, o.id ?? 1, o.le ?? true);
  h.set(cdb.slice(0, h.length - ScsiCmdReq.CDB), ScsiCmdReq.CDB);
  return h;
}

/** Decodes the response header of a command. */
export function decodeResp(b: Uint8Array, le = true): { senseLen: number; residual: number; status: number; response: number; sense: Uint8Array } {
  const v = new DataView(b.buffer, b.byteOffset);
  const senseLen = v.getUint32(ScsiCmdResp.SENSE_LEN, le);
  return {
    senseLen,
    residual: v.getUint32(ScsiCmdResp.RESIDUAL, le),
    status: b[ScsiCmdResp.STATUS]!,
    response: b[ScsiCmdResp.RESPONSE]!,
    sense: b.slice(ScsiCmdResp.SENSE, ScsiCmdResp.SENSE + senseLen),
  };
}

/** CDB bytes helpers (big-endian fields). */
export function cdb10(op: number, lba: number, blocks: number, flags = 0): number[] {
  return [op, flags, (lba >>> 24) & 0xff, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, (blocks >>> 8) & 0xff, blocks & 0xff, 0];
}
export function cdb16(op: number, lba: number, blocks: number, flags = 0): number[] {
  const hi = Math.floor(lba / 0x1_0000_0000);
  const lo = lba % 0x1_0000_0000;
  return [op, flags, ...be32(hi), ...be32(lo), ...be32(blocks), 0, 0];
}
export function be32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}
