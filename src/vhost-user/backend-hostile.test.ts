/**
 * Regression tests for what a hostile vhost-user front-end found (issue 17, section 4): a
 * refused memory change leaves the previous table and the rings over it working, and bad ring
 * values are refused by the message that carries them, not later at SET_VRING_KICK.
 */
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { LoopbackPlatform } from './loopback-platform.js';
import { F } from '../spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { type VhostUserError, VhostUserFault, encodeVringAddr, encodeVringState } from './codec.js';
import { F_PROTOCOL_FEATURES, FrontendReq } from './messages.js';
import { EchoDevice, RING, TinyDriver, USER_BASE, openSession, useLoopbackTestBed, setUpRing, waitEventfd, type Guest, type Session } from './test-helpers.js';

const enc = new TextEncoder();

describe('VhostUserBackend against a hostile front-end', () => {
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

  /** A running ring 0 that has served one request (and sent its call). */
  async function running(): Promise<{ s: Session; dev: EchoDevice; drv: TinyDriver; kick: number; call: number }> {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUpRing(s, guest, drv);
    fds.push(kick, call);
    const called = waitEventfd(p, call);
    drv.add(enc.encode('first'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await called;
    assert.equal(drv.usedIdx(), 1);
    return { s, dev, drv, kick, call };
  }

  /** The ring still serves: a request is completed and the call eventfd signalled. */
  async function stillServes(r: { drv: TinyDriver; kick: number; call: number }): Promise<void> {
    const called = waitEventfd(p, r.call);
    const head = r.drv.add(enc.encode('after'), 8, RING.data + 0x100);
    p.eventfdWrite(r.kick, 1);
    await called;
    assert.equal(r.drv.usedIdx(), 2);
    assert.equal(r.drv.used(1).id, head);
  }

  it('REM_MEM_REG of the region holding a running ring is refused, and the ring keeps serving', async () => {
    const r = await running();
    assert.equal(await r.s.front.remMemReg(guest.region), 1);
    assert.equal((r.s.backend.lastError as VhostUserError).reason, VhostUserFault.UNMAPPED);
    assert.ok(r.s.backend.memory !== null, 'the old table stays');
    await stillServes(r);
  });

  it('SET_MEM_TABLE that no longer covers a running ring is refused (its fds closed), and the ring keeps serving', async () => {
    const r = await running();
    const moved = { ...guest.region, userAddr: USER_BASE + 0x1000_0000 };
    assert.equal(await r.s.front.setMemTable([moved], [guest.fd]), 1);
    assert.equal((r.s.backend.lastError as VhostUserError).reason, VhostUserFault.UNMAPPED);
    await stillServes(r);
    // A table that still covers the ring is taken, and the ring is rebuilt over it.
    assert.equal(await r.s.front.setMemTable([guest.region], [guest.fd]), 0);
    const called = waitEventfd(p, r.call);
    r.drv.add(enc.encode('third'), 8, RING.data + 0x200);
    p.eventfdWrite(r.kick, 1);
    await called;
    assert.equal(r.drv.usedIdx(), 3);
  });

  it('SET_VRING_NUM 100 on a split ring is refused when it arrives', async () => {
    const s = session(new EchoDevice());
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 100 })), 1);
    assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.BAD_VALUE);
    assert.equal(await f.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 128 })), 0);
  });

  it('a packed ring of 100 entries is accepted (packed sizes need not be powers of 2)', async () => {
    const s = session(new EchoDevice(F.VERSION_1 | F.RING_PACKED));
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | F.RING_PACKED | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 100 })), 0);
  });

  it('a misaligned SET_VRING_ADDR is refused when it arrives', async () => {
    const s = session(new EchoDevice());
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(await f.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 8 })), 0);
    const good = { index: 0, flags: 0, descUser: USER_BASE, availUser: USER_BASE + 0x1000, usedUser: USER_BASE + 0x2000, logGuest: 0 };
    for (const bad of [{ descUser: USER_BASE + 8 }, { availUser: USER_BASE + 0x1001 }, { usedUser: USER_BASE + 0x2002 }]) {
      assert.equal(await f.ack(FrontendReq.SET_VRING_ADDR, encodeVringAddr({ ...good, ...bad })), 1, JSON.stringify(bad));
      assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.BAD_VALUE);
    }
    assert.equal(await f.ack(FrontendReq.SET_VRING_ADDR, encodeVringAddr(good)), 0);
  });

  it('a packed SET_VRING_BASE beyond the ring size is refused when it arrives', async () => {
    const s = session(new EchoDevice(F.VERSION_1 | F.RING_PACKED));
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | F.RING_PACKED | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 8 })), 0);
    for (const base of [8, 8 << 16, 0x7fff]) {
      assert.equal(await f.ack(FrontendReq.SET_VRING_BASE, encodeVringState({ index: 0, num: base })), 1, `base 0x${base.toString(16)}`);
    }
    // Positions 7 with both wrap counters set, and 0 (a fresh ring), are in range.
    assert.equal(await f.ack(FrontendReq.SET_VRING_BASE, encodeVringState({ index: 0, num: (0x8007 << 16) | 0x8007 })), 0);
    assert.equal(await f.ack(FrontendReq.SET_VRING_BASE, encodeVringState({ index: 0, num: 0x8000 })), 0);
  });
});
