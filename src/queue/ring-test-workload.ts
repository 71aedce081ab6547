/**
 * Test support (not library API): a random workload that drives a reference driver queue
 * against a device queue, split or packed, and checks as it goes that every buffer comes back
 * exactly once with the length the device wrote, data crosses intact both ways, the device
 * never writes a readable byte, and no notification is lost in either direction. It returns a
 * trace of what each side observed, so two ring formats can be compared on the same workload.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PackedDriverQueue } from '../driver/packed-driver-queue.js';
import { SplitDriverQueue } from '../driver/split-driver-queue.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { ChainCursor, DescriptorChain } from './chain.js';
import { packedRingLayout } from './packed-layout.js';
import { PackedQueue } from './packed-queue.js';
import { splitRingLayout } from './split-layout.js';
import { SplitQueue } from './split-queue.js';
import type { QueueConfig, Segment } from './types.js';

const RING = 0x1000;
const INDIRECT_AREA = 0x10000;
const DATA = 0x40000;
const SLOT = 0x1000;
const SEG_STRIDE = 0x100;

/** Byte j of the readable part of buffer k (the driver writes it, the device checks it). */
const outByte = (k: number, j: number): number => (k * 31 + j * 7 + 1) & 0xff;
/** Byte j of the writable part of buffer k (the device writes it, the driver checks it). */
const inByte = (k: number, j: number): number => (k * 17 + j * 13 + 5) & 0xff;

export type Op =
  | { t: 'add'; outLens: number[]; inLens: number[]; indirect: boolean }
  | { t: 'kick' }
  | { t: 'pop'; n: number }
  | { t: 'push'; pick: number; frac: number; check: boolean }
  | { t: 'batch'; count: number; frac: number; check: boolean }
  | { t: 'check' }
  | { t: 'take'; n: number }
  | { t: 'drvDisable' }
  | { t: 'drvEnable' }
  | { t: 'devDisable' }
  | { t: 'devEnable' };

const lenArb = fc.integer({ min: 0, max: SEG_STRIDE });
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('add' as const), outLens: fc.array(lenArb, { maxLength: 3 }), inLens: fc.array(lenArb, { maxLength: 3 }), indirect: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('kick' as const) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('pop' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('push' as const), pick: fc.nat(), frac: fc.double({ min: 0, max: 1, noNaN: true }), check: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('batch' as const), count: fc.integer({ min: 1, max: 5 }), frac: fc.double({ min: 0, max: 1, noNaN: true }), check: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('check' as const) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('take' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('drvDisable' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('drvEnable' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('devDisable' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('devEnable' as const) }) },
);

export interface WorkloadFeatures {
  packed: boolean;
  indirect: boolean;
  eventIdx: boolean;
  inOrder: boolean;
  /** Split rings need a power of two. */
  size: number;
  /** Split only: false for a legacy big-endian guest's ring (default true). */
  le?: boolean;
}

/** What the two sides observed, in order. */
export interface WorkloadTrace {
  /** Per add: whether it fitted. */
  added: boolean[];
  /** Per pop: token, readable segment lengths / writable segment lengths. */
  popped: string[];
  /** Per buffer taken back by the driver: token and written length. */
  taken: string[];
  /** kick() results. */
  kicks: boolean[];
  /** needsNotification() results. */
  checks: boolean[];
  /** enableNotification() / enableInterrupts() results. */
  enables: boolean[];
}

interface Sent {
  k: number;
  slot: number;
  out: Segment[];
  inn: Segment[];
  writable: number;
}

interface Popped {
  k: number;
  chain: DescriptorChain;
}

/** Runs `ops` (then drains) and returns the trace; throws an AssertionError on any violation. */
export function runWorkload(feat: WorkloadFeatures, ops: readonly Op[]): WorkloadTrace {
  const mem = GuestMemory.allocate(0x80000);
  const size = feat.size;
  const l = feat.packed ? packedRingLayout(size, RING) : splitRingLayout(size, RING);
  const features =
    F.VERSION_1 | (feat.packed ? F.RING_PACKED : 0n) | (feat.indirect ? F.INDIRECT_DESC : 0n) | (feat.eventIdx ? F.EVENT_IDX : 0n) | (feat.inOrder ? F.IN_ORDER : 0n);
  const cfg: QueueConfig = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features, littleEndian: feat.le ?? true, index: 0 };
  const opts = { indirectTableAddr: INDIRECT_AREA, indirectMaxSegments: Math.min(size, 6) };
  const drv = feat.packed ? new PackedDriverQueue<number>(mem, cfg, opts) : new SplitDriverQueue<number>(mem, cfg, opts);
  const dev = feat.packed ? new PackedQueue(mem, cfg) : new SplitQueue(mem, cfg);
  const trace: WorkloadTrace = { added: [], popped: [], taken: [], kicks: [], checks: [], enables: [] };

  const freeSlots: number[] = Array.from({ length: size }, (_, i) => i);
  const sent = new Map<number, Sent>(); // added, not yet taken back
  const expectedLen = new Map<number, number>(); // pushed by the device
  const returned = new Set<number>();
  const popped: Popped[] = []; // device in flight, pop order
  let nextToken = 0;
  let nextPopToken = 0;
  let addedSinceKick = 0;
  // "Armed": the other side just re-enabled its notifications and was told nothing is pending.
  let devArmed = false;
  /** The device has notifications on (the initial state): an empty pop then arms it too. */
  let devEnabled = true;
  let drvArmed = false;
  let pushedSinceDrvArmed = false;
  const reader = new ChainCursor(false);
  const writer = new ChainCursor(true);
  const scratch = new Uint8Array(8 * SEG_STRIDE);

  const add = (outLens: number[], inLens: number[], indirect: boolean): void => {
    let o = outLens;
    let i = inLens;
    if (o.length + i.length === 0) i = [8];
    while (o.length + i.length > size) {
      if (o.length > i.length) o = o.slice(1);
      else i = i.slice(1);
    }
    const useIndirect = indirect && drv.canIndirect && o.length + i.length <= drv.maxIndirectSegments;
    const slot = freeSlots.pop();
    if (slot === undefined) {
      trace.added.push(false);
      return;
    }
    const base = DATA + slot * SLOT;
    const out = o.map((len, n) => ({ addr: base + n * SEG_STRIDE, len }));
    const inn = i.map((len, n) => ({ addr: base + (4 + n) * SEG_STRIDE, len }));
    const k = nextToken;
    let j = 0;
    for (const s of out) for (let b = 0; b < s.len; b++) mem.writeU8(s.addr + b, outByte(k, j++));
    for (const s of inn) mem.fill(s.addr, s.len, 0xee);
    const ok = drv.add(out, inn, k, useIndirect);
    trace.added.push(ok);
    if (!ok) {
      freeSlots.push(slot);
      return;
    }
    nextToken++;
    addedSinceKick++;
    sent.set(k, { k, slot, out, inn, writable: inn.reduce((a, s) => a + s.len, 0) });
  };

  const kick = (): void => {
    const notify = drv.kick();
    trace.kicks.push(notify);
    if (addedSinceKick > 0 && devArmed) {
      assert.equal(notify, true, 'device re-enabled notifications with nothing pending: the next kick must notify');
      devArmed = false;
    }
    addedSinceKick = 0;
  };

  const pop = (): boolean => {
    const chain = new DescriptorChain(mem, 8);
    if (!dev.pop(chain)) return false;
    const k = nextPopToken++;
    const s = sent.get(k);
    assert.ok(s, `popped buffer ${k} was added`);
    assert.equal(chain.fault, null);
    assert.equal(chain.readableCount, s.out.length);
    assert.equal(chain.writableBytes, s.writable);
    const n = reader.reset(chain).read(scratch, 0, chain.readableBytes);
    assert.equal(n, chain.readableBytes);
    for (let j = 0; j < n; j++) assert.equal(scratch[j], outByte(k, j), `readable byte ${j} of buffer ${k}`);
    const lens = [...chain.lens.subarray(0, chain.count)];
    trace.popped.push(`${k}:${lens.slice(0, chain.readableCount).join(',')}/${lens.slice(chain.readableCount).join(',')}`);
    popped.push({ k, chain });
    return true;
  };

  const fillWritable = (p: Popped, written: number): void => {
    for (let j = 0; j < written; j++) scratch[j] = inByte(p.k, j);
    assert.equal(writer.reset(p.chain).write(scratch, 0, written), written);
  };

  const check = (): void => {
    const need = dev.needsNotification();
    trace.checks.push(need);
    if (drvArmed && pushedSinceDrvArmed) {
      assert.equal(need, true, 'driver re-enabled interrupts with nothing pending: the next push must notify');
      drvArmed = false;
    }
  };

  const push = (pick: number, frac: number, doCheck: boolean): void => {
    if (popped.length === 0) return;
    // IN_ORDER: the device uses buffers in the order they were made available.
    const at = feat.inOrder ? 0 : pick % popped.length;
    const p = popped.splice(at, 1)[0]!;
    const written = Math.floor(frac * p.chain.writableBytes);
    fillWritable(p, written);
    expectedLen.set(p.k, written);
    dev.push(p.chain, written);
    pushedSinceDrvArmed = true;
    if (doCheck) check();
  };

  const batch = (count: number, frac: number, doCheck: boolean): void => {
    if (!feat.inOrder) return push(count, frac, doCheck);
    const c = Math.min(count, popped.length);
    if (c === 0) return;
    const group = popped.splice(0, c);
    // 2.7.9 / 2.8.8: the skipped buffers count as completely written.
    for (let i = 0; i < c - 1; i++) {
      fillWritable(group[i]!, group[i]!.chain.writableBytes);
      expectedLen.set(group[i]!.k, group[i]!.chain.writableBytes);
    }
    const last = group[c - 1]!;
    const written = Math.floor(frac * last.chain.writableBytes);
    fillWritable(last, written);
    expectedLen.set(last.k, written);
    dev.pushInOrderBatch(last.chain.id, c, written);
    pushedSinceDrvArmed = true;
    if (doCheck) check();
  };

  const take = (): boolean => {
    const k = drv.takeUsed();
    if (k === undefined) return false;
    assert.ok(!returned.has(k), `buffer ${k} returned twice`);
    returned.add(k);
    const s = sent.get(k);
    assert.ok(s, `buffer ${k} was in flight`);
    assert.ok(expectedLen.has(k), `buffer ${k} was pushed by the device`);
    assert.equal(drv.lastUsedLen, expectedLen.get(k), `written length of buffer ${k}`);
    trace.taken.push(`${k}:${drv.lastUsedLen}`);
    if (feat.inOrder) assert.equal(k, Math.min(...sent.keys()), 'IN_ORDER: buffers come back in order');
    let j = 0;
    for (const seg of s.inn) {
      for (let b = 0; b < seg.len && j < drv.lastUsedLen; b++, j++) assert.equal(mem.readU8(seg.addr + b), inByte(k, j));
    }
    // The device never wrote into the readable part.
    j = 0;
    for (const seg of s.out) for (let b = 0; b < seg.len; b++) assert.equal(mem.readU8(seg.addr + b), outByte(k, j++));
    sent.delete(k);
    expectedLen.delete(k);
    freeSlots.push(s.slot);
    // Taking a buffer with interrupts on re-arms at the new position (the event position follows,
    // as in Linux): what the driver has seen needs no interrupt; anything still pending may
    // already have crossed the event.
    if (drvArmed) {
      drvArmed = !drv.hasUsed();
      pushedSinceDrvArmed = false;
    }
    return true;
  };

  for (const op of ops) {
    switch (op.t) {
      case 'add':
        add(op.outLens, op.inLens, op.indirect);
        break;
      case 'kick':
        kick();
        break;
      case 'pop': {
        let i = 0;
        while (i < op.n && pop()) i++;
        // A device that found the ring empty with notifications on must hear of the next buffer
        // (2.7.10 / 2.8.10: with EVENT_IDX its event follows its pops).
        if (i < op.n && devEnabled) devArmed = true;
        break;
      }
      case 'push':
        push(op.pick, op.frac, op.check);
        break;
      case 'batch':
        batch(op.count, op.frac, op.check);
        break;
      case 'check':
        check();
        break;
      case 'take':
        for (let i = 0; i < op.n && take(); i++);
        break;
      case 'drvDisable':
        drv.disableInterrupts();
        drvArmed = false;
        break;
      case 'drvEnable': {
        const pending = drv.enableInterrupts();
        trace.enables.push(pending);
        drvArmed = !pending;
        pushedSinceDrvArmed = false;
        break;
      }
      case 'devDisable':
        dev.disableNotification();
        devArmed = false;
        devEnabled = false;
        break;
      case 'devEnable': {
        const pending = dev.enableNotification();
        trace.enables.push(pending);
        devArmed = !pending;
        devEnabled = true;
        break;
      }
    }
  }

  // Drain: everything added comes back exactly once.
  kick();
  while (pop());
  while (popped.length > 0) push(0, 1, true);
  while (take());
  assert.equal(sent.size, 0, 'every buffer came back');
  assert.equal(returned.size, nextToken);
  assert.equal(drv.freeCount, size);
  assert.equal(dev.broken, null);
  assert.equal(dev.inFlight, 0);
  return trace;
}
