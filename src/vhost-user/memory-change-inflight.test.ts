/**
 * Requests in flight across memory changes and disconnects (issue 17, section 2): a
 * SET_MEM_TABLE, ADD_MEM_REG or REM_MEM_REG arriving while a device holds requests never loses
 * them (they are used on the ring rebuilt over the new table) and never lets a late completion
 * write to unmapped memory (the memory a buffer was popped from stays mapped until it is used,
 * or until the device's own pin goes); a front-end killed with a read in flight leaves the
 * buffer mapped until the backend finished, and the next front-end is served.
 * See docs/vhost-user-memory-changes.md.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../memory/guest-memory.js';
import { loadNativePlatform, nativePlatformAvailable } from '../platform/native-platform.js';
import type { Platform } from '../platform/types.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { header } from '../devices/blk/blk-test-support.js';
import { BlkReqType, BlkStatus } from '../spec/blk.js';
import { F } from '../spec/features.js';
import type { VhostUserError } from './codec.js';
import { VhostUserFault } from './codec.js';
import { LoopbackPlatform } from './loopback-platform.js';
import { MAX_RETIRED_TABLES, VhostMemoryMap } from './memory-map.js';
import { F_PROTOCOL_FEATURES, FrontendReq, type MemRegion } from './messages.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { EchoDevice, GUEST_BASE, MEM_SIZE, RING, TinyDriver, TinyPackedDriver, USER_BASE, makeGuest, openSession, setUpRing, waitEventfd, type Guest, type Session } from './test-helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

describe('GuestMemory pins', () => {
  it('a retired memory is released at its last unpin, at once when unpinned; pins fail afterwards', () => {
    const m = GuestMemory.allocate(4096);
    let released = 0;
    assert.equal(m.pin(), true);
    assert.equal(m.pin(), true);
    m.retire(() => released++);
    assert.equal(released, 0, 'two pins hold it');
    m.unpin();
    assert.equal(released, 0);
    m.unpin();
    assert.equal(released, 1, 'the last unpin releases it');
    assert.equal(m.released, true);
    assert.equal(m.pin(), false, 'nothing can pin a released memory');
    assert.throws(() => m.unpin(), /unpin without a pin/);
    const n = GuestMemory.allocate(4096);
    n.retire(() => released++);
    assert.equal(released, 2, 'no pin: released at once');
  });
});

describe('VhostMemoryMap with pinned tables', () => {
  let p: LoopbackPlatform;
  let guest: Guest;
  beforeEach(() => {
    p = new LoopbackPlatform();
    guest = makeGuest(p);
  });
  afterEach(() => guest.free());

  it('SET_MEM_TABLE, REM_MEM_REG and clear keep a pinned table mapped until its last pin goes', () => {
    const map = new VhostMemoryMap(p);
    map.setTable(FrontendReq.SET_MEM_TABLE, [guest.region], [p.dup(guest.fd)]);
    const first = map.memory!;
    assert.ok(first.pin());
    map.setTable(FrontendReq.SET_MEM_TABLE, [guest.region], [p.dup(guest.fd)]);
    assert.equal(map.mappingCount, 2, 'the pinned table is still mapped beside the new one');
    assert.equal(map.retiredPending, 1);
    assert.equal(p.mappings, 3);
    first.writeU32(GUEST_BASE + 0x100, 0xfeedf00d); // still the guest's pages
    assert.equal(new DataView(guest.map.bytes.buffer, guest.map.bytes.byteOffset).getUint32(0x100, true), 0xfeedf00d);
    first.unpin();
    assert.equal(map.mappingCount, 1);
    assert.equal(map.retiredPending, 0);
    // clear (the end of a session) with a pin: unmapped when the pin goes.
    const second = map.memory!;
    assert.ok(second.pin());
    map.clear();
    assert.equal(map.memory, null);
    assert.equal(map.mappingCount, 1);
    second.unpin();
    assert.equal(map.mappingCount, 0);
    assert.equal(p.mappings, 1, 'only the test guest mapping remains');
  });

  it(`at most ${MAX_RETIRED_TABLES} pinned earlier tables: the next change is refused and the current table stays`, () => {
    const map = new VhostMemoryMap(p);
    map.setTable(FrontendReq.SET_MEM_TABLE, [guest.region], [p.dup(guest.fd)]);
    const pinned: GuestMemory[] = [];
    for (let i = 0; i < MAX_RETIRED_TABLES; i++) {
      const m = map.memory!;
      assert.ok(m.pin());
      pinned.push(m);
      map.setTable(FrontendReq.SET_MEM_TABLE, [guest.region], [p.dup(guest.fd)]);
    }
    const current = map.memory;
    const fdsBefore = p.openFdCount();
    const fd = p.dup(guest.fd);
    assert.throws(
      () => map.setTable(FrontendReq.SET_MEM_TABLE, [guest.region], [fd]),
      (e: VhostUserError) => e.reason === VhostUserFault.BAD_STATE,
    );
    assert.equal(p.openFdCount(), fdsBefore, 'the refused table fd is closed');
    assert.equal(map.memory, current);
    for (const m of pinned) m.unpin();
    assert.equal(map.retiredPending, 0);
    assert.equal(map.mappingCount, 1);
    map.clear();
  });
});

describe('vhost-user requests in flight across memory changes', () => {
  let p: LoopbackPlatform;
  let guest: Guest;
  const sessions: Session[] = [];
  const fds: number[] = [];

  beforeEach(() => {
    p = new LoopbackPlatform();
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
    for (const fd of fds.splice(0)) p.close(fd);
    guest.free();
    assert.equal(p.mappings, 0, 'mappings leaked');
  });

  async function holding(g: Guest, tableGuest: Guest = g): Promise<{ s: Session; dev: EchoDevice; drv: TinyDriver; kick: number; call: number }> {
    guest = g;
    const dev = new EchoDevice();
    const s = openSession(p, dev);
    sessions.push(s);
    const drv = new TinyDriver(g.map.bytes, 8);
    const { kick, call } = await setUpRing(s, tableGuest, drv);
    fds.push(kick, call);
    dev.hold = true;
    return { s, dev, drv, kick, call };
  }

  it('SET_MEM_TABLE while a request is in flight: it is used after the change on the rebuilt ring, and the old mapping goes only then', async () => {
    const r = await holding(makeGuest(p));
    const head = r.drv.add(enc.encode('in flight'), 16, RING.data);
    p.eventfdWrite(r.kick, 1);
    await r.dev.waitFor(1);
    assert.equal(r.dev.held.length, 1);
    assert.equal(r.s.backend.memoryMappings, 1);
    assert.equal(await r.s.front.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(r.s.backend.memoryMappings, 2, 'the table the request was popped from stays mapped');
    assert.equal(r.s.backend.retiredMemoryTables, 1);
    // The device completes the request late: the echo lands in guest memory, the used entry on the ring.
    r.dev.complete(0, r.dev.held.shift()!);
    assert.equal(r.drv.usedIdx(), 1, 'the request is not lost');
    assert.deepEqual(r.drv.used(0), { id: head, len: 9 });
    assert.equal(dec.decode(guest.map.bytes.subarray(RING.data + 0x100, RING.data + 0x109)), 'in flight');
    assert.equal(r.s.backend.memoryMappings, 1, 'used: the old table is unmapped');
    assert.equal(r.s.backend.retiredMemoryTables, 0);
    // The ring serves on over the new table.
    r.dev.hold = false;
    p.eventfdRead(r.call); // the call of the pass that held the first request
    const called = waitEventfd(p, r.call);
    const next = r.drv.add(enc.encode('after'), 8, RING.data + 0x200);
    p.eventfdWrite(r.kick, 1);
    await called;
    assert.equal(r.drv.usedIdx(), 2);
    assert.equal(r.drv.used(1).id, next);
  });

  it('packed ring: a request in flight across SET_MEM_TABLE is used after it, at the ring position it had', async () => {
    guest = makeGuest(p);
    const dev = new EchoDevice(F.VERSION_1 | F.RING_PACKED);
    const s = openSession(p, dev);
    sessions.push(s);
    const drv = new TinyPackedDriver(guest.map.bytes, 8);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setOwner(), 0);
    assert.equal(await f.setFeatures(F.VERSION_1 | F.RING_PACKED | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(await f.setVringNum(0, drv.size), 0);
    assert.equal(await f.setVringBase(0, 0x8000_8000), 0); // positions 0, wrap counters 1
    assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
    const kick = p.eventfd();
    const call = p.eventfd();
    fds.push(kick, call);
    assert.equal(await f.setVringKick(0, kick), 0);
    assert.equal(await f.setVringCall(0, call), 0);
    assert.equal(await f.setVringEnable(0, true), 0);
    dev.hold = true;
    const first = drv.add(enc.encode('one'), 8, RING.data);
    const second = drv.add(enc.encode('two'), 8, RING.data + 0x200);
    p.eventfdWrite(kick, 1);
    await dev.waitFor(2);
    assert.equal(await s.front.setMemTable([guest.region], [guest.fd]), 0);
    // Completed out of order after the change: both come back, in completion order.
    dev.complete(0, dev.held.pop()!);
    dev.complete(0, dev.held.pop()!);
    assert.deepEqual(drv.takeUsed(), { id: second, len: 3 });
    assert.deepEqual(drv.takeUsed(), { id: first, len: 3 });
    assert.equal(drv.takeUsed(), null);
    assert.equal(s.backend.memoryMappings, 1);
  });

  it('REM_MEM_REG of the region a request in flight writes into: accepted, the request completes into it, then it is unmapped', async () => {
    // One memfd of two regions (as microvm sends them): the rings in A, the request's data in B.
    const g = makeGuest(p, 2 * MEM_SIZE);
    const regionA: MemRegion = { guestAddr: GUEST_BASE, size: MEM_SIZE, userAddr: USER_BASE, mmapOffset: 0 };
    const regionB: MemRegion = { guestAddr: GUEST_BASE + MEM_SIZE, size: MEM_SIZE, userAddr: USER_BASE + MEM_SIZE, mmapOffset: MEM_SIZE };
    const r = await holding(g, { ...g, region: regionA });
    assert.equal(await r.s.front.addMemReg(regionB, g.fd), 0);
    assert.equal(r.s.backend.memoryMappings, 2);
    const at = MEM_SIZE + 0x4000;
    const head = r.drv.add(enc.encode('into B'), 16, at);
    p.eventfdWrite(r.kick, 1);
    await r.dev.waitFor(1);
    assert.equal(await r.s.front.remMemReg(regionB), 0, 'the rings are not in B: accepted');
    assert.equal(r.s.backend.memoryMappings, 2, 'B stays mapped while the request it holds is in flight');
    r.dev.complete(0, r.dev.held.shift()!);
    assert.equal(r.drv.usedIdx(), 1);
    assert.deepEqual(r.drv.used(0), { id: head, len: 6 });
    assert.equal(dec.decode(g.map.bytes.subarray(at + 0x100, at + 0x106)), 'into B');
    assert.equal(r.s.backend.memoryMappings, 1, 'B unmapped once used');
  });

  it('several changes while a request stays in flight hold only the table it was popped from; a stop (GET_VRING_BASE) lets it go', async () => {
    const r = await holding(makeGuest(p));
    r.drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(r.kick, 1);
    await r.dev.waitFor(1);
    for (let i = 0; i < 3; i++) assert.equal(await r.s.front.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(r.s.backend.retiredMemoryTables, 1, 'the tables nothing was popped from went at once');
    assert.equal(r.s.backend.memoryMappings, 2);
    // The front-end stops the ring: its buffers in flight are not returned any more, their pins go.
    await r.s.front.getVringBase(0);
    assert.equal(r.s.backend.retiredMemoryTables, 0);
    assert.equal(r.s.backend.memoryMappings, 1);
  });
});

/** A memory disk whose reads wait until released, holding the guest view as a native read would. */
class StalledReads extends MemoryBackend {
  stall = true;
  readonly pending: { dst: Uint8Array; go: () => void }[] = [];
  private waiter: (() => void) | null = null;
  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> {
    if (!this.stall) return Promise.resolve(super.read(offset, dst, dstOff, len));
    return new Promise((resolve) => {
      const view = dst.subarray(dstOff, dstOff + len);
      this.pending.push({
        dst: view,
        go: () => {
          // What a read on libuv's thread pool does when it ends: write the guest pages.
          view.set(this.data.subarray(offset, offset + len));
          resolve();
        },
      });
      this.waiter?.();
    });
  }
  stalled(): Promise<void> {
    if (this.pending.length > 0) return Promise.resolve();
    return new Promise((r) => (this.waiter = r));
  }
}

describe('vhost-user blk over real mappings: a front-end killed with a read in flight', { skip: !nativePlatformAvailable() && 'native addon not built' }, () => {
  it('the buffer stays mapped until the backend finished, the control socket answers meanwhile, and the next front-end is served', { timeout: 20_000 }, async () => {
    const p: Platform = loadNativePlatform();
    const backend = new StalledReads(64 * 512);
    backend.data.fill(0x5a, 0, 512);
    const dev = new BlkDevice(backend);
    const readReq = (drv: TinyDriver, at: number): number => drv.add(header(BlkReqType.IN, 0), 513, at);

    const g1 = makeGuest(p);
    const s1 = openSession(p, dev);
    const drv1 = new TinyDriver(g1.map.bytes, 8);
    const r1 = await setUpRing(s1, g1, drv1, { features: F.VERSION_1 });
    readReq(drv1, RING.data);
    p.eventfdWrite(r1.kick, 1);
    await backend.stalled();
    const { dst, go } = backend.pending.shift()!;
    // A stalled backend blocks neither the control socket nor the session.
    assert.ok((await s1.front.getFeatures()) !== 0n);
    // The front-end dies.
    s1.front.close();
    await s1.ended;
    assert.equal(s1.backend.closed, true);
    assert.equal(dst.byteLength, 512, 'the guest buffer the backend reads into is still mapped');
    assert.equal(s1.backend.retiredMemoryTables, 1);
    go();
    await new Promise((r) => setImmediate(r));
    assert.equal(s1.backend.memoryMappings, 0, 'unmapped once the backend finished');
    assert.equal(dst.byteLength, 0, 'and only then (its view is detached now)');
    for (const fd of [r1.kick, r1.call]) p.close(fd);
    g1.free();

    // The next front-end: the same device serves it.
    backend.stall = false;
    const g2 = makeGuest(p);
    const s2 = openSession(p, dev);
    try {
      const drv2 = new TinyDriver(g2.map.bytes, 8);
      const r2 = await setUpRing(s2, g2, drv2, { features: F.VERSION_1 });
      const called = waitEventfd(p, r2.call);
      const head = readReq(drv2, RING.data);
      p.eventfdWrite(r2.kick, 1);
      await called;
      assert.deepEqual(drv2.used(0), { id: head, len: 513 });
      assert.equal(g2.map.bytes[RING.data + 0x100], 0x5a);
      assert.equal(g2.map.bytes[RING.data + 0x100 + 512], BlkStatus.OK);
      for (const fd of [r2.kick, r2.call]) p.close(fd);
    } finally {
      s2.close();
      g2.free();
    }
  });
});
