import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { LoopbackPlatform as FakePlatform } from './loopback-platform.js';
import type { Platform } from '../platform/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { QueueError } from '../errors.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { VhostUserError, VhostUserFault, encodeMessage, encodeMemoryTable, encodeU64, encodeVringState } from './codec.js';
import { BackendReq, F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag, PF } from './messages.js';
import { EchoDevice, GUEST_BASE, RING, TinyDriver, USER_BASE, makeGuest, openSession, waitEventfd, type Guest, type Session } from './test-helpers.js';
import { MessageFramer } from './framer.js';

const enc = new TextEncoder();

/** Negotiates features, memory and ring 0 as QEMU does; returns kick and call eventfds. */
async function setUp(
  s: Session,
  guest: Guest,
  drv: TinyDriver,
  o: { protocol?: bigint | null; features?: bigint; base?: number; enable?: boolean; ring?: number } = {},
): Promise<{ kick: number; call: number }> {
  const p = s.platform;
  const f = s.front;
  const offered = await f.getFeatures();
  const ring = o.ring ?? 0;
  if (o.protocol !== null) {
    assert.ok((offered & F_PROTOCOL_FEATURES) !== 0n);
    const proto = o.protocol ?? SUPPORTED_PROTOCOL_FEATURES;
    await f.setProtocolFeatures(proto);
    if ((proto & PF.REPLY_ACK) !== 0n) f.needReply = true;
  }
  assert.equal(await f.setOwner(), 0);
  const feats = (o.features ?? F.VERSION_1) | (o.protocol !== null ? F_PROTOCOL_FEATURES : 0n);
  assert.equal(await f.setFeatures(feats), 0);
  assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
  assert.equal(await f.setVringNum(ring, drv.size), 0);
  assert.equal(await f.setVringBase(ring, o.base ?? 0), 0);
  assert.equal(await f.setVringAddr(drv.vringAddr(ring)), 0);
  const kick = p.eventfd();
  const call = p.eventfd();
  assert.equal(await f.setVringKick(ring, kick), 0);
  assert.equal(await f.setVringCall(ring, call), 0);
  if (o.protocol !== null && o.enable !== false) assert.equal(await f.setVringEnable(ring, true), 0);
  return { kick, call };
}

describe('VhostUserBackend over a socketpair (FakePlatform)', () => {
  let p: Platform;
  let guest: Guest;
  let fdsBefore: number;
  const sessions: Session[] = [];
  const extraFds: number[] = [];

  beforeEach(() => {
    p = new FakePlatform();
    fdsBefore = p.openFdCount();
    guest = makeGuest(p);
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
    for (const fd of extraFds.splice(0)) p.close(fd);
    guest.free();
    assert.equal(p.openFdCount(), fdsBefore, 'fds leaked');
  });

  function session(dev: EchoDevice, opts = {}): Session {
    const s = openSession(p, dev, opts);
    sessions.push(s);
    return s;
  }

  it('negotiates, maps memory, serves a request, signals call, and GET_VRING_BASE stops the ring', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const f = s.front;
    assert.equal(await f.getProtocolFeatures(), SUPPORTED_PROTOCOL_FEATURES);
    const { kick, call } = await setUp(s, guest, drv);
    extraFds.push(kick, call);
    assert.equal(await f.getQueueNum(), 2);
    const cfg = await f.getConfig(0, 8);
    assert.deepEqual([...cfg!.data], [1, 2, 3, 4, 5, 6, 7, 8]);
    // QEMU asks for its own idea of the config size: the reply has exactly that size.
    const big = await f.getConfig(4, 12);
    assert.equal(big!.data.length, 12);
    assert.deepEqual([...big!.data], [5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(
      { started: s.backend.ringInfo(0)!.started, enabled: s.backend.ringInfo(0)!.enabled },
      { started: true, enabled: true },
    );

    const head = drv.add(enc.encode('hello vhost'), 64, RING.data);
    const called = waitEventfd(p, call);
    p.eventfdWrite(kick, 1);
    assert.ok((await called) > 0);
    assert.equal(drv.usedIdx(), 1);
    assert.deepEqual(drv.used(0), { id: head, len: 11 });
    assert.equal(new TextDecoder().decode(guest.map.bytes.subarray(RING.data + 0x100, RING.data + 0x100 + 11)), 'hello vhost');
    assert.equal(dev.activations, 1);

    assert.equal(await f.getVringBase(0), 1);
    assert.equal(s.backend.ringInfo(0)!.started, false);
    // All rings stopped: the device was reset, ready for the next start.
    assert.equal(dev.resets, 1);
    assert.equal(s.backend.errorCount, 0);
  });

  it('rings start enabled when VHOST_USER_F_PROTOCOL_FEATURES is not negotiated', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv, { protocol: null });
    extraFds.push(kick, call);
    // Without REPLY_ACK the front-end cannot know when SET_VRING_CALL was handled; GET_FEATURES
    // has a reply, so once it arrives everything before it was handled.
    await s.front.getFeatures();
    assert.equal(s.backend.ringInfo(0)!.enabled, true);
    const called = waitEventfd(p, call);
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await called;
    assert.equal(drv.usedIdx(), 1);
  });

  it('a started but disabled ring does not reach the device until SET_VRING_ENABLE(1)', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv, { enable: false });
    extraFds.push(kick, call);
    const info = s.backend.ringInfo(0)!;
    assert.deepEqual([info.started, info.enabled], [true, false]);
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await s.front.getFeatures(); // a round trip: the kick was seen or not, the ring stays disabled
    assert.equal(dev.served, 0);
    const called = waitEventfd(p, call);
    assert.equal(await s.front.setVringEnable(0, true), 0);
    await called;
    assert.equal(dev.served, 1);
  });

  it('polling mode (kick with the invalid-fd bit) serves without a kick eventfd', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const f = s.front;
    const { kick, call } = await setUp(s, guest, drv);
    extraFds.push(kick, call);
    assert.equal(await f.getVringBase(0), 0);
    assert.equal(await f.setVringKick(0, null), 0);
    assert.equal(s.backend.ringInfo(0)!.polling, true);
    const called = waitEventfd(p, call);
    drv.add(enc.encode('poll'), 8, RING.data);
    await called;
    assert.equal(drv.usedIdx(), 1);
  });

  it('reconnect with INFLIGHT_SHMFD resubmits what was in flight, in fetch order', async () => {
    const dev1 = new EchoDevice();
    dev1.hold = true;
    const s1 = session(dev1);
    const drv = new TinyDriver(guest.map.bytes, 8);
    await s1.front.getFeatures();
    await s1.front.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    s1.front.needReply = true;
    const { desc, fd: infFd } = await s1.front.getInflightFd(2, 8);
    extraFds.push(infFd);
    assert.equal(desc.numQueues, 2);
    assert.ok(desc.mmapSize >= 2 * (16 + 16 * 8));
    const a = await setUp(s1, guest, drv, { protocol: SUPPORTED_PROTOCOL_FEATURES });
    extraFds.push(a.kick, a.call);
    const h1 = drv.add(enc.encode('first'), 16, RING.data);
    const h2 = drv.add(enc.encode('second'), 16, RING.data + 0x200);
    p.eventfdWrite(a.kick, 1);
    await dev1.waitFor(2);
    assert.equal(dev1.held.length, 2);
    // Complete nothing; the back-end "crashes": the front-end sees the socket close.
    s1.close();
    sessions.splice(sessions.indexOf(s1), 1);
    assert.equal(drv.usedIdx(), 0);

    const dev2 = new EchoDevice();
    const s2 = session(dev2);
    const f2 = s2.front;
    await f2.getFeatures();
    await f2.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f2.needReply = true;
    assert.equal(await f2.setInflightFd(desc, infFd), 0);
    // QEMU restores the avail base from the used idx after a back-end crash.
    const b = await setUp(s2, guest, drv, { protocol: SUPPORTED_PROTOCOL_FEATURES, base: drv.usedIdx() });
    extraFds.push(b.kick, b.call);
    // No kick needed: the back-end resubmits as soon as the ring is started and enabled.
    await dev2.waitFor(2);
    assert.equal(drv.usedIdx(), 2);
    assert.deepEqual(drv.used(0), { id: h1, len: 5 });
    assert.deepEqual(drv.used(1), { id: h2, len: 6 });
    // The avail ring continues after the resubmitted buffers.
    const h3 = drv.add(enc.encode('third'), 16, RING.data + 0x400);
    p.eventfdWrite(b.kick, 1);
    await dev2.waitFor(3);
    assert.deepEqual(drv.used(2), { id: h3, len: 5 });
    assert.equal(await f2.getVringBase(0), 3);
  });

  it('GET_STATUS reports DEVICE_NEEDS_RESET and the err eventfd fires when the driver breaks the ring', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv);
    const err = p.eventfd();
    extraFds.push(kick, call, err);
    assert.equal(await s.front.setVringErr(0, err), 0);
    assert.equal(await s.front.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK), 0);
    const signalled = waitEventfd(p, err);
    drv.setAvailIdx(100); // 2.7.6: more heads than the ring holds
    p.eventfdWrite(kick, 1);
    await signalled;
    assert.ok(s.backend.ringInfo(0)!.broken instanceof QueueError);
    assert.ok(((await s.front.getStatus()) & Status.DEVICE_NEEDS_RESET) !== 0);
    // The back-end keeps serving the protocol.
    assert.ok((await s.front.getFeatures()) !== 0n);
  });

  it('a throwing device marks NEEDS_RESET and never crashes the back-end', async () => {
    const dev = new EchoDevice();
    dev.throwOnNotify = new Error('device bug');
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv);
    extraFds.push(kick, call);
    const failed = new Promise<Error>((resolve) => (s.backend.onError = resolve));
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    assert.match((await failed).message, /device bug/);
    assert.ok(s.backend.errorCount > 0);
    assert.ok(((await s.front.getStatus()) & Status.DEVICE_NEEDS_RESET) !== 0);
  });

  it('sends CONFIG_CHANGE_MSG on the back-end channel when the device changes its config', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv);
    extraFds.push(kick, call);
    const [mine, theirs] = p.socketpair();
    extraFds.push(mine);
    assert.equal(await s.front.ack(FrontendReq.SET_BACKEND_REQ_FD, undefined, [theirs]), 0);
    p.close(theirs);
    const done = dev.waitFor(1);
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await done;
    dev.ctx!.notifyConfigChange();
    const fr = new MessageFramer(p, mine);
    const m = fr.read();
    assert.ok(m && m !== 'eof');
    assert.equal(m.request, BackendReq.CONFIG_CHANGE_MSG);
    assert.equal(m.flags & HeaderFlag.VERSION_MASK, 1);
    fr.close();
  });

  it('LOG_SHMFD: marks the pages of written buffers and of the used ring dirty', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const f = s.front;
    const { kick, call } = await setUp(s, guest, drv);
    extraFds.push(kick, call);
    const logSize = Math.ceil((GUEST_BASE + guest.region.size) / 4096 / 8);
    const logFd = p.memfd('log', logSize);
    const logMap = p.mmap(logFd, 0, logSize);
    const r = await f.call(FrontendReq.SET_LOG_BASE, new Uint8Array(new BigUint64Array([BigInt(logSize), 0n]).buffer), [logFd]);
    assert.equal(r.payload.length, 8);
    assert.equal(await f.setFeatures(F.VERSION_1 | F_PROTOCOL_FEATURES | F_LOG_ALL), 0);
    assert.equal(await f.setVringAddr(drv.vringAddr(0, 1, GUEST_BASE + RING.used)), 0);
    const called = waitEventfd(p, call);
    drv.add(enc.encode('dirty'), 16, RING.data);
    p.eventfdWrite(kick, 1);
    await called;
    const dirty = (addr: number): boolean => {
      const page = Math.floor(addr / 4096);
      return (logMap.bytes[page >> 3]! & (1 << (page & 7))) !== 0;
    };
    assert.ok(dirty(GUEST_BASE + RING.data + 0x100), 'written buffer page');
    assert.ok(dirty(GUEST_BASE + RING.used), 'used ring page');
    assert.ok(!dirty(GUEST_BASE + RING.avail), 'avail ring is not written by the device');
    logMap.unmap();
    p.close(logFd);
  });

  it('ADD_MEM_REG / REM_MEM_REG with GET_MAX_MEM_SLOTS', async () => {
    const dev = new EchoDevice();
    const s = session(dev, { maxMemSlots: 2 });
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(Number(await f.u64(FrontendReq.GET_MAX_MEM_SLOTS)), 2);
    assert.equal(await f.addMemReg(guest.region, guest.fd), 0);
    const other = { guestAddr: 0x1000_0000, size: 0x1000, userAddr: 0x7e00_0000_0000, mmapOffset: 0x2000 };
    assert.equal(await f.addMemReg(other, guest.fd), 0);
    assert.equal(s.backend.memory!.regionCount, 2);
    guest.map.bytes[0x2000] = 0xab;
    assert.equal(s.backend.memory!.readU8(0x1000_0000), 0xab);
    // No third slot.
    assert.equal(await f.addMemReg({ ...other, guestAddr: 0x2000_0000, userAddr: 0x7d00_0000_0000 }, guest.fd), 1);
    assert.equal(await f.remMemReg(other), 0);
    assert.equal(s.backend.memory!.regionCount, 1);
    assert.equal(await f.remMemReg(other), 1);
  });

  describe('malformed messages are refused, answered with REPLY_ACK failure, and leak nothing', () => {
    async function ready(dev = new EchoDevice()): Promise<Session> {
      const s = session(dev);
      await s.front.getFeatures();
      await s.front.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
      s.front.needReply = true;
      return s;
    }
    async function refusedWith(s: Session, req: number, payload: Uint8Array | undefined, fds: number[], reason: string): Promise<void> {
      const r = await s.front.call(req, payload, fds, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
      assert.equal(r.payload.length, 8);
      assert.notEqual(new DataView(r.payload.buffer, r.payload.byteOffset).getBigUint64(0, true), 0n);
      const e = s.backend.lastError;
      assert.ok(e instanceof VhostUserError, String(e));
      assert.equal(e.reason, reason);
      // Still alive.
      assert.ok((await s.front.getFeatures()) !== 0n);
    }

    it('bad size', async () => {
      const s = await ready();
      await refusedWith(s, FrontendReq.SET_FEATURES, new Uint8Array(4), [], VhostUserFault.BAD_SIZE);
      await refusedWith(s, FrontendReq.SET_VRING_NUM, new Uint8Array(12), [], VhostUserFault.BAD_SIZE);
    });

    it('unknown request', async () => {
      const s = await ready();
      await refusedWith(s, 99, undefined, [], VhostUserFault.UNKNOWN_REQUEST);
      await refusedWith(s, FrontendReq.SEND_RARP, encodeU64(0), [], VhostUserFault.UNSUPPORTED);
    });

    it('ring index out of range (and the fd sent with it is closed)', async () => {
      const s = await ready();
      await refusedWith(s, FrontendReq.SET_VRING_NUM, encodeVringState({ index: 2, num: 8 }), [], VhostUserFault.BAD_INDEX);
      const ev = p.eventfd();
      await refusedWith(s, FrontendReq.SET_VRING_KICK, encodeU64(7), [ev], VhostUserFault.BAD_INDEX);
      p.close(ev);
    });

    it('GET_VRING_BASE of a ring that does not exist ends the session (its reply has no error form)', async () => {
      const s = await ready();
      const m = encodeMessage(FrontendReq.GET_VRING_BASE, HeaderFlag.VERSION, encodeVringState({ index: 9, num: 0 }));
      p.sendmsg(s.front.fd, m, 0, m.length);
      const ev = await s.ended;
      assert.equal(ev.reason, 'protocol');
      assert.ok(s.backend.lastError!.message.includes('BAD_INDEX'), String(s.backend.lastError));
      assert.ok(ev.error?.message.includes('no error reply exists'), String(ev.error));
    });

    it('overlapping regions (both fds closed)', async () => {
      const s = await ready();
      const a = { guestAddr: GUEST_BASE, size: 0x8000, userAddr: USER_BASE, mmapOffset: 0 };
      const b = { guestAddr: GUEST_BASE + 0x4000, size: 0x8000, userAddr: USER_BASE + 0x10000, mmapOffset: 0x8000 };
      await refusedWith(s, FrontendReq.SET_MEM_TABLE, encodeMemoryTable([a, b]), [guest.fd, guest.fd], VhostUserFault.OVERLAP);
      assert.equal(s.backend.memory, null);
    });

    it('missing fd', async () => {
      const s = await ready();
      await refusedWith(s, FrontendReq.SET_MEM_TABLE, encodeMemoryTable([guest.region]), [], VhostUserFault.MISSING_FD);
      await refusedWith(s, FrontendReq.SET_VRING_CALL, encodeU64(0), [], VhostUserFault.MISSING_FD);
      await refusedWith(s, FrontendReq.SET_BACKEND_REQ_FD, undefined, [], VhostUserFault.MISSING_FD);
    });

    it('unexpected fd (closed by the back-end)', async () => {
      const s = await ready();
      const ev = p.eventfd();
      await refusedWith(s, FrontendReq.SET_OWNER, undefined, [ev], VhostUserFault.UNEXPECTED_FD);
      await refusedWith(s, FrontendReq.SET_VRING_KICK, encodeU64(0x100), [ev], VhostUserFault.UNEXPECTED_FD);
      p.close(ev);
    });

    it('protocol-gated request without its protocol feature', async () => {
      const s = session(new EchoDevice());
      await s.front.getFeatures();
      await s.front.setProtocolFeatures(PF.REPLY_ACK);
      s.front.needReply = true;
      await refusedWith(s, FrontendReq.SET_STATUS, encodeU64(1), [], VhostUserFault.NOT_NEGOTIATED);
      // A GET_* is always answered, even refused (an unanswered GET freezes QEMU).
      const r = await s.front.call(FrontendReq.GET_MAX_MEM_SLOTS);
      assert.equal(r.payload.length, 8);
      assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.NOT_NEGOTIATED);
      // GET_CONFIG without CONFIG: explicit error reply of size 0.
      assert.equal(await s.front.getConfig(0, 4), null);
      await refusedWith(s, FrontendReq.SET_FEATURES, encodeU64(1n << 60n), [], VhostUserFault.BAD_VALUE);
    });

    it('a bad header version ends the connection (it cannot be resynchronised)', async () => {
      const s = await ready();
      const m = encodeMessage(FrontendReq.GET_FEATURES, 2);
      p.sendmsg(s.front.fd, m, 0, m.length);
      const ev = await s.ended;
      assert.equal(ev.reason, 'protocol');
    });
  });
});
