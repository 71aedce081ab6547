/**
 * The driver is untrusted: random requests (any type, any sector, any split of the header, data
 * and status over descriptors, missing parts, random segment payloads) never make the device
 * throw or break the queue; every buffer comes back with a status of OK, IOERR or UNSUPP (or
 * used length 0 when there is no status byte), and storage changes only on a successful write.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { BlkDevice } from './blk-device.js';
import { MemoryBackend } from './memory-backend.js';
import { createTestPair } from './test-pair.js';

const SECTORS = 64;
const T = { timeout: 120_000 };

interface Req {
  type: number;
  sector: bigint;
  /** Readable bytes after the header (data or discard segments). */
  payload: Uint8Array;
  /** Cut points splitting header + payload into readable descriptors. */
  outCuts: number[];
  /** Writable descriptor lengths (the status byte is the last writable byte). */
  inLens: number[];
}

const types = [
  BlkReqType.IN,
  BlkReqType.OUT,
  BlkReqType.FLUSH,
  BlkReqType.GET_ID,
  BlkReqType.GET_LIFETIME,
  BlkReqType.DISCARD,
  BlkReqType.WRITE_ZEROES,
  BlkReqType.SECURE_ERASE,
  BlkReqType.ZONE_APPEND,
  BlkReqType.ZONE_REPORT,
  BlkReqType.SCSI_CMD,
];

/** A discard/write-zeroes segment: sector, num_sectors, flags; mostly plausible. */
const segArb = fc
  .record({
    sector: fc.oneof(fc.bigInt({ min: 0n, max: BigInt(SECTORS + 2) }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    num: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })),
    flags: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 0xffffffff })),
  })
  .map(({ sector, num, flags }) => {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, sector, true);
    v.setUint32(8, num, true);
    v.setUint32(12, flags, true);
    return b;
  });

const payloadArb = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.integer({ min: 0, max: 4 }).map((k) => new Uint8Array(k * 512).fill(0x5a)),
  fc.array(segArb, { minLength: 1, maxLength: 3 }).map((segs) => Uint8Array.from(segs.flatMap((s) => [...s]))),
  fc.uint8Array({ maxLength: 700 }),
);

const reqArb: fc.Arbitrary<Req> = fc
  .record({
    type: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...types) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) }),
    sector: fc.oneof(fc.bigInt({ min: 0n, max: BigInt(SECTORS + 2) }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    payload: payloadArb,
    cuts: fc.array(fc.integer({ min: 1, max: 2000 }), { maxLength: 3 }),
    inLens: fc.oneof(
      fc.constant([1]),
      fc.constant([]),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(20, 21, 512, 513, 1025), fc.integer({ min: 1, max: 2100 })), { minLength: 1, maxLength: 3 }),
    ),
    shortHeader: fc.boolean(),
  })
  .map(({ type, sector, payload, cuts, inLens, shortHeader }) => {
    const total = 16 + payload.length;
    const outCuts = [...new Set(cuts.map((c) => c % total).filter((c) => c > 0))].sort((a, b) => a - b);
    // Sometimes only part of the header is readable.
    return { type, sector, payload: shortHeader ? new Uint8Array(0) : payload, outCuts: shortHeader ? [7] : outCuts, inLens, shortHeader } as Req & {
      shortHeader: boolean;
    };
  });

function headerBytes(r: Req): Uint8Array {
  const b = new Uint8Array(16 + r.payload.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, r.type >>> 0, true);
  v.setBigUint64(8, r.sector, true);
  b.set(r.payload, 16);
  return b;
}

class Sender {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();
  constructor(private readonly ctx: DriverContext) {
    ctx.onUsed(0, () => {
      const q = ctx.queue(0);
      do {
        for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
      } while (q.enableInterrupts());
    });
  }
  async send(r: Req & { shortHeader?: boolean }): Promise<{ usedLen: number; lastIn: number | undefined; inTotal: number }> {
    const { ctx } = this;
    const all = headerBytes(r);
    const bytes = r.shortHeader ? all.subarray(0, 7) : all;
    const outs: Segment[] = [];
    let prev = 0;
    for (const c of [...r.outCuts.filter((c) => c < bytes.length), bytes.length]) {
      const part = bytes.subarray(prev, c);
      prev = c;
      if (part.length === 0) continue;
      const addr = ctx.dma.alloc(part.length);
      ctx.memory.write(addr, part);
      outs.push({ addr, len: part.length });
    }
    const ins = r.inLens.map((len) => {
      const addr = ctx.dma.alloc(len);
      ctx.memory.fill(addr, len, 0xee);
      return { addr, len };
    });
    const t = this.token++;
    const done = new Promise<number>((res) => this.waiting.set(t, res));
    assert.ok(ctx.queue(0).add(outs, ins, t));
    ctx.kick(0);
    const usedLen = await done;
    this.waiting.delete(t);
    const last = ins[ins.length - 1];
    const lastIn = last ? ctx.memory.readU8(last.addr + last.len - 1) : undefined;
    for (const s of [...outs, ...ins]) ctx.dma.free(s.addr);
    return { usedLen, lastIn, inTotal: ins.reduce((a, s) => a + s.len, 0) };
  }
}

const MODIFYING = new Set<number>([BlkReqType.OUT, BlkReqType.DISCARD, BlkReqType.WRITE_ZEROES, BlkReqType.SECURE_ERASE]);

describe('BlkDevice under random requests', T, () => {
  for (const packed of [false, true]) {
    it(`never throws, never breaks the queue, answers a valid status (${packed ? 'packed' : 'split'})`, async () => {
      const backend = new MemoryBackend(SECTORS * 512);
      backend.data.fill(0x11);
      const device = new BlkDevice(backend, { queueSize: 16, serial: 'fuzz' });
      const pair = createTestPair(device, { packed, queueSize: 16, memSize: 1 << 20 });
      const sender = new Sender(pair.ctx);
      await fc.assert(
        fc.asyncProperty(reqArb, async (r) => {
          const before = Uint8Array.from(backend.data);
          const { usedLen, lastIn, inTotal } = await sender.send(r);
          assert.deepEqual(pair.resets, []);
          if (inTotal === 0) {
            assert.equal(usedLen, 0, 'no status byte: nothing written');
          } else {
            // The whole writable part is reported (unfilled bytes zeroed), the status last.
            assert.equal(usedLen, inTotal);
            assert.ok(lastIn === BlkStatus.OK || lastIn === BlkStatus.IOERR || lastIn === BlkStatus.UNSUPP, `status ${lastIn}`);
          }
          const changed = backend.data.some((b, i) => b !== before[i]);
          if (changed) {
            assert.ok(MODIFYING.has(r.type) && lastIn === BlkStatus.OK, `storage changed by type ${r.type} with status ${lastIn}`);
          }
          if (lastIn === BlkStatus.OK && r.type === BlkReqType.OUT) {
            assert.deepEqual(backend.data.subarray(Number(r.sector) * 512, Number(r.sector) * 512 + r.payload.length), r.payload);
          }
        }),
        { numRuns: 400 },
      );
    });
  }
});
