/**
 * vhost-user back-end on packed rings (RING_PACKED): serving across wrap-arounds, the vring
 * base in QEMU's packed format, and inflight recovery after a back-end restart
 * (vhost-user.rst "Inflight I/O tracking", packed queue region).
 */
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { LoopbackPlatform } from './loopback-platform.js';
import { F } from '../spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { encodeLog, encodeU64 } from './codec.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq } from './messages.js';
import { EchoDevice, GUEST_BASE, RING, TinyPackedDriver, openSession, useLoopbackTestBed, waitEventfd, type Guest, type Session } from './test-helpers.js';

const enc = new TextEncoder();
const PACKED_FEATURES = F.VERSION_1 | F.RING_PACKED;
/** QEMU's initial packed base: avail and used at position 0 with wrap counters 1. */
const INITIAL_PACKED_BASE = 0x8000_8000;

function packedDevice(): EchoDevice {
  return new EchoDevice(F.VERSION_1 | F.RING_PACKED | F.INDIRECT_DESC | F.EVENT_IDX, [4, 4]);
}

describe('VhostUserBackend on packed rings', () => {
  const bed = useLoopbackTestBed();
  const { sessions, fds } = bed;
  let p: LoopbackPlatform;
  let guest: Guest;
  beforeEach(() => ({ p, guest } = bed));

  function session(dev: EchoDevice): Session {
    const s = openSession(p, dev);
    sessions.push(s);
    return s;
  }

  async function negotiate(s: Session): Promise<void> {
    const f = s.front;
    assert.ok(((await f.getFeatures()) & F.RING_PACKED) !== 0n, 'RING_PACKED offered');
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
  }

  async function startRing(s: Session, drv: TinyPackedDriver, base: number, extra = 0n): Promise<{ kick: number; call: number }> {
    const f = s.front;
    assert.equal(await f.setOwner(), 0);
    assert.equal(await f.setFeatures(PACKED_FEATURES | F_PROTOCOL_FEATURES | extra), 0);
    assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(await f.setVringNum(0, drv.size), 0);
    assert.equal(await f.setVringBase(0, base), 0);
    assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
    const kick = p.eventfd();
    const call = p.eventfd();
    fds.push(kick, call);
    assert.equal(await f.setVringKick(0, kick), 0);
    assert.equal(await f.setVringCall(0, call), 0);
    assert.equal(await f.setVringEnable(0, true), 0);
    return { kick, call };
  }

  it('serves across wrap-arounds; GET_VRING_BASE is avail | used << 16 and a restart from it continues', async () => {
    const dev = packedDevice();
    const s = session(dev);
    const drv = new TinyPackedDriver(guest.map.bytes, 4);
    await negotiate(s);
    let { kick, call } = await startRing(s, drv, INITIAL_PACKED_BASE);
    const serve = async (i: number): Promise<void> => {
      const called = waitEventfd(p, call);
      const id = drv.add(enc.encode(`req ${i}`), 16, RING.data + 0x200 * (i % 4));
      p.eventfdWrite(kick, 1);
      await called;
      assert.deepEqual(drv.takeUsed(), { id, len: `req ${i}`.length }, `request ${i}`);
    };
    // Two ring descriptors per request on a ring of 4: the wrap counters flip every 2 requests.
    for (let i = 0; i < 5; i++) await serve(i);
    // 10 descriptors: position 2 after two wraps (wrap counters back to 1), nothing in flight.
    assert.equal(await s.front.getVringBase(0), 0x8002_8002);
    assert.equal(s.backend.ringInfo(0)!.started, false);
    ({ kick, call } = await startRing(s, drv, 0x8002_8002));
    for (let i = 5; i < 8; i++) await serve(i);
    assert.equal(await s.front.getVringBase(0), 0x8000_8000, 'position 0 after 16 descriptors: four wraps');
  });

  it('LOG_SHMFD on a packed ring: written buffers, the descriptor ring and the device area are logged dirty', async () => {
    const dev = packedDevice();
    const s = session(dev);
    const drv = new TinyPackedDriver(guest.map.bytes, 4);
    await negotiate(s);
    const logSize = Math.ceil((GUEST_BASE + guest.region.size) / 4096 / 8);
    const logFd = p.memfd('log', logSize);
    const logMap = p.mmap(logFd, 0, logSize);
    const r = await s.front.call(FrontendReq.SET_LOG_BASE, encodeLog({ size: logSize, offset: 0 }), [logFd]);
    assert.deepEqual([...r.payload], [...encodeU64(0)]);
    const { kick, call } = await startRing(s, drv, INITIAL_PACKED_BASE, F_LOG_ALL | F.EVENT_IDX);
    const dirty = (addr: number): boolean => {
      const page = Math.floor(addr / 4096);
      return (logMap.bytes[page >> 3]! & (1 << (page & 7))) !== 0;
    };
    const called = waitEventfd(p, call);
    drv.add(enc.encode('dirty packed'), 16, RING.data);
    p.eventfdWrite(kick, 1);
    await called;
    assert.ok(dirty(GUEST_BASE + RING.data + 0x100), 'written buffer');
    assert.ok(dirty(GUEST_BASE + RING.desc), 'descriptor ring (used descriptors)');
    assert.ok(dirty(GUEST_BASE + RING.used), 'device event suppression area');
    assert.ok(!dirty(GUEST_BASE + RING.avail), 'the driver area is not written by the device');
    logMap.unmap();
    p.close(logFd);
  });

  it('a restarted back-end resubmits the packed buffers in flight from the inflight area', async () => {
    const dev1 = packedDevice();
    dev1.hold = true;
    const s1 = session(dev1);
    const drv = new TinyPackedDriver(guest.map.bytes, 4);
    await negotiate(s1);
    const { desc, fd: infFd } = await s1.front.getInflightFd(2, 4);
    fds.push(infFd);
    const a = await startRing(s1, drv, INITIAL_PACKED_BASE);
    const id0 = drv.add(enc.encode('first'), 16, RING.data);
    const id1 = drv.add(enc.encode('second!'), 16, RING.data + 0x200);
    p.eventfdWrite(a.kick, 1);
    await dev1.waitFor(2);
    // The back-end dies with both in flight.
    s1.close();
    sessions.splice(sessions.indexOf(s1), 1);
    assert.equal(drv.takeUsed(), null);

    const dev2 = packedDevice();
    const s2 = session(dev2);
    await negotiate(s2);
    assert.equal(await s2.front.setInflightFd(desc, infFd), 0);
    // QEMU does not track packed used positions for a vhost back-end: it passes its initial base.
    const b = await startRing(s2, drv, INITIAL_PACKED_BASE);
    await dev2.waitFor(2);
    assert.deepEqual(drv.takeUsed(), { id: id0, len: 5 });
    assert.deepEqual(drv.takeUsed(), { id: id1, len: 7 });
    // New requests continue after the resubmitted ones (wrapping the ring).
    assert.ok(p.eventfdRead(b.call) > 0, 'the resubmitted buffers were signalled');
    const id2 = drv.add(enc.encode('third'), 16, RING.data + 0x400);
    p.eventfdWrite(b.kick, 1);
    await dev2.waitFor(3);
    assert.deepEqual(drv.takeUsed(), { id: id2, len: 5 });
    assert.equal(await s2.front.getVringBase(0), 0x0002_0002);
  });

  it('a back-end restarted with nothing in flight, the used position back at 0 with its wrap counter flipped, continues from the inflight area, not the stale base', async () => {
    const dev1 = packedDevice();
    const s1 = session(dev1);
    const drv = new TinyPackedDriver(guest.map.bytes, 4);
    await negotiate(s1);
    const { desc, fd: infFd } = await s1.front.getInflightFd(2, 4);
    fds.push(infFd);
    const a = await startRing(s1, drv, INITIAL_PACKED_BASE);
    // Two buffers of two descriptors fill the 4-entry ring once: used position 0, wrap counter 0.
    const id0 = drv.add(enc.encode('one'), 16, RING.data);
    const id1 = drv.add(enc.encode('two'), 16, RING.data + 0x200);
    p.eventfdWrite(a.kick, 1);
    await dev1.waitFor(2);
    assert.deepEqual(drv.takeUsed(), { id: id0, len: 3 });
    assert.deepEqual(drv.takeUsed(), { id: id1, len: 3 });
    // The back-end dies idle.
    s1.close();
    sessions.splice(sessions.indexOf(s1), 1);

    const dev2 = packedDevice();
    const s2 = session(dev2);
    await negotiate(s2);
    assert.equal(await s2.front.setInflightFd(desc, infFd), 0);
    // The stale base says position 0 with wrap counter 1: the same position, the other lap.
    const b = await startRing(s2, drv, INITIAL_PACKED_BASE);
    const id2 = drv.add(enc.encode('three'), 16, RING.data + 0x400);
    p.eventfdWrite(b.kick, 1);
    await dev2.waitFor(1);
    assert.deepEqual(drv.takeUsed(), { id: id2, len: 5 });
    // avail and used at position 2, both wrap counters 0.
    assert.equal(await s2.front.getVringBase(0), 0x0002_0002);
  });
});
