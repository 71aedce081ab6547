/**
 * vhost-user as one more transport over the DeviceCore: the lifecycle rules a device sees on
 * PCI, MMIO and CCW hold over vhost-user too (feature validation, activation failure,
 * configuration generation, the activation context, stop and restart), and the device hooks
 * (extra protocol features and requests, the back-end request channel) work end to end.
 */
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { DeviceContext } from '../device/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { MAX_PENDING_REPLIES } from './backend-channel.js';
import { REPLY_FLAGS, VhostUserError, VhostUserFault, decodeU64, encodeMessage, encodeU64 } from './codec.js';
import type { VhostUserDeviceHooks, VhostUserSession } from './device-hooks.js';
import { MessageFramer } from './framer.js';
import type { LoopbackPlatform } from './loopback-platform.js';
import { BackendReq, F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag, PF, type VhostUserMessage } from './messages.js';
import { EchoDevice, RING, TinyDriver, openSession, useLoopbackTestBed, waitEventfd, type Guest, type Session } from './test-helpers.js';

const enc = new TextEncoder();
/** A device-type bit the test devices use (bit 5: no meaning for the echo device). */
const DEV_A = 1n << 5n;
/** A device-type bit that needs DEV_A (the device's validateFeatures says so). */
const DEV_B = 1n << 6n;

/** An echo device with a feature dependency (B needs A) and an activation that can fail. */
class PickyDevice extends EchoDevice {
  failActivation = false;
  constructor() {
    super(F.VERSION_1 | F.EVENT_IDX | DEV_A | DEV_B);
  }
  validateFeatures(accepted: bigint): string | null {
    return (accepted & DEV_B) !== 0n && (accepted & DEV_A) === 0n ? 'feature B needs feature A' : null;
  }
  override activate(ctx: DeviceContext): void {
    super.activate(ctx);
    if (this.failActivation) throw new Error('activation failed');
  }
}

/** NET_SET_MTU (with the MTU protocol feature) handled by the device, as virtio-net would. */
class MtuDevice extends EchoDevice {
  mtu = 0;
  session: VhostUserSession | null = null;
  ended = 0;
  readonly vhostUser: VhostUserDeviceHooks = {
    protocolFeatures: PF.MTU,
    handleRequest: (msg: VhostUserMessage, session: VhostUserSession) => {
      if (msg.request !== FrontendReq.NET_SET_MTU) return undefined;
      if (!session.hasProtocolFeatures(PF.MTU)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'MTU', msg.request);
      const mtu = decodeU64(msg.request, msg.payload);
      if (mtu < 68 || mtu > 65535) throw new VhostUserError(VhostUserFault.BAD_VALUE, `mtu ${mtu}`, msg.request);
      this.mtu = mtu;
      return null;
    },
    sessionStarted: (s) => (this.session = s),
    sessionEnded: () => this.ended++,
  };
}

describe('vhost-user over the DeviceCore (one lifecycle on every transport)', () => {
  const bed = useLoopbackTestBed();
  const { sessions, fds } = bed;
  let p: LoopbackPlatform;
  let guest: Guest;
  beforeEach(() => ({ p, guest } = bed));

  function session(dev: EchoDevice, protocol = SUPPORTED_PROTOCOL_FEATURES): Session {
    const s = openSession(p, dev, { protocolFeatures: protocol | PF.MTU });
    sessions.push(s);
    return s;
  }

  /** Negotiates, maps memory and starts ring 0 (enabled); returns the kick and call eventfds. */
  async function startRing(s: Session, drv: TinyDriver, features: bigint = F.VERSION_1): Promise<{ kick: number; call: number }> {
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(s.backend.offeredProtocolFeatures);
    f.needReply = true;
    assert.equal(await f.setOwner(), 0);
    assert.equal(await f.setFeatures(features | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
    assert.equal(await f.setVringNum(0, drv.size), 0);
    assert.equal(await f.setVringBase(0, 0), 0);
    assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
    const kick = p.eventfd();
    const call = p.eventfd();
    fds.push(kick, call);
    assert.equal(await f.setVringKick(0, kick), 0);
    assert.equal(await f.setVringCall(0, call), 0);
    assert.equal(await f.setVringEnable(0, true), 0);
    return { kick, call };
  }

  async function serveOne(dev: EchoDevice, drv: TinyDriver, kick: number, call: number, at: number = RING.data): Promise<void> {
    const called = waitEventfd(p, call);
    const before = dev.served;
    drv.add(enc.encode('ping'), 8, at);
    p.eventfdWrite(kick, 1);
    await dev.waitFor(before + 1);
    await called;
  }

  it("device/content/4: features the device's validateFeatures refuses are refused by SET_FEATURES and by SET_STATUS FEATURES_OK", async () => {
    const dev = new PickyDevice();
    const s = session(dev);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | DEV_B | F_PROTOCOL_FEATURES), 1, 'B without A refused');
    assert.match(s.backend.lastError!.message, /feature B needs feature A/);
    assert.equal(s.backend.core.negotiatedFeatures, 0n);
    assert.equal(await f.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK), 0);
    assert.equal((await f.getStatus()) & Status.FEATURES_OK, 0, 'FEATURES_OK stays clear (3.1.1)');
    // The valid subset is accepted, and is what the device is activated with.
    assert.equal(await f.setFeatures(F.VERSION_1 | DEV_A | DEV_B | F_PROTOCOL_FEATURES), 0);
    assert.equal(s.backend.core.negotiatedFeatures, F.VERSION_1 | DEV_A | DEV_B);
    assert.equal(await f.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK), 0);
    assert.equal(await f.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  });

  it('features cannot change under a running device; the same set again (QEMU repeats SET_FEATURES) is accepted', async () => {
    const dev = new PickyDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await startRing(s, drv, F.VERSION_1 | DEV_A);
    await serveOne(dev, drv, kick, call);
    assert.equal(await s.front.setFeatures(F.VERSION_1 | DEV_A | F_PROTOCOL_FEATURES), 0);
    assert.equal(await s.front.setFeatures(F.VERSION_1 | DEV_A | DEV_B | F_PROTOCOL_FEATURES), 1);
    assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.BAD_STATE);
    assert.equal(dev.ctx!.features, F.VERSION_1 | DEV_A);
  });

  it('the device gets the core context: negotiated features, the ring only while started and enabled, dead after the last ring stops', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await startRing(s, drv, F.VERSION_1 | F.EVENT_IDX);
    await serveOne(dev, drv, kick, call);
    const ctx = dev.ctx!;
    assert.equal(ctx.features, F.VERSION_1 | F.EVENT_IDX, 'vhost-user bits 26 and 30 are not device features');
    assert.equal(ctx.queue(0), s.backend.ringQueue(0));
    assert.equal(ctx.queue(1), null, 'ring 1 never started');
    assert.equal(s.backend.status & Status.DRIVER_OK, Status.DRIVER_OK, 'activation set DRIVER_OK');
    assert.equal(await s.front.setVringEnable(0, false), 0);
    assert.equal(ctx.queue(0), null, 'a disabled ring is not lent to the device');
    assert.equal(await s.front.setVringEnable(0, true), 0);
    assert.equal(ctx.queue(0), s.backend.ringQueue(0));
    await s.front.getVringBase(0);
    assert.equal(dev.resets, 1, 'the last ring stopping resets the device');
    assert.equal(ctx.queue(0), null, 'the old context is dead (device/content/8)');
    assert.equal(s.backend.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK, 'negotiation kept, DRIVER_OK cleared');
    // Restarted without a new SET_FEATURES: a new activation with the same features.
    assert.equal(await s.front.setVringBase(0, drv.usedIdx()), 0);
    assert.equal(await s.front.setVringKick(0, kick), 0);
    await serveOne(dev, drv, kick, call, RING.data + 0x100);
    assert.equal(dev.activations, 2);
    assert.notEqual(dev.ctx, ctx);
    assert.equal(dev.ctx!.features, F.VERSION_1 | F.EVENT_IDX);
  });

  it('device/content/2: a device throwing in activate sets DEVICE_NEEDS_RESET, is not run, and the front-end gets CONFIG_CHANGE_MSG', async () => {
    const dev = new PickyDevice();
    dev.failActivation = true;
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const [mine, theirs] = p.socketpair();
    fds.push(mine);
    const { kick } = await startRing(s, drv);
    assert.equal(await s.front.setBackendReqFd(theirs), 0);
    p.close(theirs);
    assert.equal(await s.front.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK), 0);
    assert.equal(dev.activations, 1);
    const status = await s.front.getStatus();
    assert.equal(status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
    assert.match(s.backend.core.needsResetReason ?? '', /activation failed/);
    const fr = new MessageFramer(p, mine);
    const m = fr.read();
    assert.ok(m && m !== 'eof', 'a configuration change notification was sent');
    assert.equal(m.request, BackendReq.CONFIG_CHANGE_MSG);
    fr.close();
    // Kicks are not served while the device needs a reset.
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await s.front.getFeatures();
    await new Promise((r) => setImmediate(r));
    assert.equal(dev.served, 0);
    // SET_STATUS 0 resets: status 0, and the next negotiation starts afresh.
    assert.equal(await s.front.setStatus(0), 0);
    assert.equal(await s.front.getStatus(), 0);
  });

  it('STATUS front-ends (QEMU sends milestones alone): FEATURES_OK alone after SET_FEATURES, DRIVER_OK activates before any kick, 0 resets and keeps the ring bases for GET_VRING_BASE', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const f = s.front;
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await startRing(s, drv);
    assert.equal(await f.setStatus(Status.FEATURES_OK), 0);
    assert.equal(await f.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK, 'the earlier steps are implied');
    assert.equal(dev.activations, 0, 'no ring ran yet');
    // A buffer made available before DRIVER_OK is served once the device is activated.
    drv.add(enc.encode('early'), 8, RING.data);
    const called = waitEventfd(p, call);
    assert.equal(await f.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK), 0);
    assert.equal(dev.activations, 1, 'DRIVER_OK activated the device');
    await dev.waitFor(1);
    await called;
    await serveOne(dev, drv, kick, call, RING.data + 0x100);
    // QEMU 7.2.0 stops with SET_STATUS 0 first, then GET_VRING_BASE.
    assert.equal(await f.setStatus(0), 0);
    assert.equal(dev.resets, 1);
    assert.equal(s.backend.ringInfo(0)!.started, false);
    assert.equal(await f.getVringBase(0), 2, 'the base reached before the reset');
    assert.equal(await f.getStatus(), 0);
    assert.equal(dev.resets, 1, 'one reset for the whole stop');
  });

  it('configuration change: the core bumps the generation and sends CONFIG_CHANGE_MSG once the device runs', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const [mine, theirs] = p.socketpair();
    fds.push(mine);
    const { kick, call } = await startRing(s, drv);
    assert.equal(await s.front.setBackendReqFd(theirs), 0);
    p.close(theirs);
    await serveOne(dev, drv, kick, call);
    const gen = s.backend.core.configGeneration;
    dev.config[0] = 0x42;
    dev.ctx!.notifyConfigChange();
    assert.equal(s.backend.core.configGeneration, gen + 1);
    const fr = new MessageFramer(p, mine);
    const m = fr.read();
    assert.ok(m && m !== 'eof');
    assert.equal(m.request, BackendReq.CONFIG_CHANGE_MSG);
    assert.equal(m.flags & HeaderFlag.NEED_REPLY, 0, 'a notification, not acknowledged');
    fr.close();
    assert.deepEqual([...(await s.front.getConfig(0, 2))!.data], [0x42, 2]);
  });

  it('a device with an extra protocol feature advertises it and handles its own request (NET_SET_MTU) under REPLY_ACK', async () => {
    const dev = new MtuDevice();
    const s = session(dev);
    const f = s.front;
    assert.equal(dev.session !== null, true, 'sessionStarted');
    const offered = await f.getProtocolFeatures();
    assert.equal(offered & PF.MTU, PF.MTU);
    assert.equal(offered & SUPPORTED_PROTOCOL_FEATURES, SUPPORTED_PROTOCOL_FEATURES);
    await f.setProtocolFeatures(PF.REPLY_ACK);
    f.needReply = true;
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(1500)), 1, 'MTU not negotiated: the device refuses');
    await f.setProtocolFeatures(PF.REPLY_ACK | PF.MTU);
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(9000)), 0);
    assert.equal(dev.mtu, 9000);
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(10)), 1, 'the device refuses a bad value');
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, new Uint8Array(4)), 1, 'sizes are checked before the device sees it');
    assert.equal(await f.ack(FrontendReq.SEND_RARP, new Uint8Array(8)), 1, 'requests the device does not claim stay unsupported');
    assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.UNSUPPORTED);
    assert.equal(dev.mtu, 9000);
    sessions.splice(sessions.indexOf(s), 1);
    s.close();
    assert.equal(dev.ended, 1, 'sessionEnded');
  });

  it('without device hooks, a device-specific request is refused and its protocol feature is not offered', async () => {
    const s = session(new EchoDevice());
    const f = s.front;
    assert.equal((await f.getProtocolFeatures()) & PF.MTU, 0n);
    await f.setProtocolFeatures(PF.REPLY_ACK);
    f.needReply = true;
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(1500)), 1);
    assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.UNSUPPORTED);
  });

  it('sendBackendRequest: with REPLY_ACK the request carries NEED_REPLY and resolves with the front-end ack; without it, at once', async () => {
    const dev = new MtuDevice();
    const s = session(dev);
    const f = s.front;
    const dsession = dev.session!;
    await f.getFeatures();
    await assert.rejects(dsession.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0)), (e: VhostUserError) => e.reason === VhostUserFault.NOT_NEGOTIATED);
    await f.setProtocolFeatures(PF.REPLY_ACK | PF.BACKEND_REQ);
    f.needReply = true;
    await f.getFeatures(); // a reply orders everything before it
    await assert.rejects(dsession.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0)), (e: VhostUserError) => e.reason === VhostUserFault.BAD_STATE, 'no channel yet');
    const [mine, theirs] = p.socketpair();
    fds.push(mine);
    assert.equal(await f.setBackendReqFd(theirs), 0);
    p.close(theirs);
    const fr = new MessageFramer(p, mine);
    const acked = dsession.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0));
    const refused = dsession.sendBackendRequest(BackendReq.VRING_ERR, encodeU64(0));
    const m1 = fr.read();
    const m2 = fr.read();
    assert.ok(m1 && m1 !== 'eof' && m2 && m2 !== 'eof');
    assert.deepEqual([m1.request, m1.flags & HeaderFlag.NEED_REPLY, [...m1.payload]], [BackendReq.VRING_CALL, HeaderFlag.NEED_REPLY, [...encodeU64(0)]]);
    assert.equal(m2.request, BackendReq.VRING_ERR);
    // The front-end answers both, in order, on the same socket.
    p.sendmsg(mine, encodeMessage(m1.request, REPLY_FLAGS, encodeU64(0)), 0, 20);
    p.sendmsg(mine, encodeMessage(m2.request, REPLY_FLAGS, encodeU64(1)), 0, 20);
    assert.equal(await acked, 0n);
    assert.equal(await refused, 1n);
    // Without REPLY_ACK nothing is awaited.
    f.needReply = false;
    await f.setProtocolFeatures(PF.BACKEND_REQ);
    await f.getFeatures();
    assert.equal(await dsession.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0)), 0n);
    const m3 = fr.read();
    assert.ok(m3 && m3 !== 'eof');
    assert.equal(m3.flags & HeaderFlag.NEED_REPLY, 0);
    fr.close();
  });

  it('the back-end channel bounds the replies it awaits and fails them when the session ends', async () => {
    const dev = new MtuDevice();
    const s = session(dev);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(PF.REPLY_ACK | PF.BACKEND_REQ);
    f.needReply = true;
    const [mine, theirs] = p.socketpair();
    fds.push(mine);
    assert.equal(await f.setBackendReqFd(theirs), 0);
    p.close(theirs);
    const waiting: Promise<bigint>[] = [];
    for (let i = 0; i < MAX_PENDING_REPLIES; i++) waiting.push(dev.session!.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0)));
    const settled = waiting.map((w) => w.then(() => 'acked', () => 'failed'));
    await assert.rejects(dev.session!.sendBackendRequest(BackendReq.VRING_CALL, encodeU64(0)), (e: VhostUserError) => e.reason === VhostUserFault.BAD_STATE);
    sessions.splice(sessions.indexOf(s), 1);
    s.close();
    assert.deepEqual(new Set(await Promise.all(settled)), new Set(['failed']));
    // Drain what was sent so the socket closes clean.
    const fr = new MessageFramer(p, mine);
    let n = 0;
    for (let m = fr.read(); m && m !== 'eof'; m = fr.read()) n++;
    assert.equal(n, MAX_PENDING_REPLIES);
    fr.close();
  });
});

