/**
 * What vhost-user adds for net (vhost-user.rst): SEND_RARP and NET_SET_MTU through the device
 * hooks, gated by their protocol features, answered under REPLY_ACK; and the per-queue counters.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { encodeU64 } from '../../vhost-user/codec.js';
import { LoopbackPlatform } from '../../vhost-user/loopback-platform.js';
import { FrontendReq, PF } from '../../vhost-user/messages.js';
import { openSession, type Session } from '../../vhost-user/test-helpers.js';
import { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import { NetSwitch } from './switch.js';
import { ETHERTYPE_RARP, VhostUserNetDevice } from './vhost-user-net-device.js';

class Recorder implements NetPort {
  frames: Uint8Array[] = [];
  constructor(readonly name: string) {}
  deliver(p: NetPacket): void {
    this.frames.push(p.bytes());
  }
}

describe('VhostUserNetDevice: the vhost-user protocol extensions of virtio-net', () => {
  let platform: LoopbackPlatform;
  let s: Session | null = null;
  beforeEach(() => {
    platform = new LoopbackPlatform();
  });
  afterEach(() => {
    s?.close();
    s = null;
  });

  it('offers PROTOCOL_F_RARP and PROTOCOL_F_MTU; SEND_RARP broadcasts a RARP for the MAC from the device\'s switch port, which the switch learns', async () => {
    const sw = new NetSwitch();
    const other = new Recorder('other');
    sw.attach(other);
    const dev = new VhostUserNetDevice({ mtu: 1500 });
    const port = dev.attachTo(sw);
    s = openSession(platform, dev);
    const f = s.front;
    const offered = await f.getProtocolFeatures();
    assert.equal(offered & (PF.RARP | PF.MTU), PF.RARP | PF.MTU);
    await f.setProtocolFeatures(PF.REPLY_ACK);
    f.needReply = true;
    const guestMac = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
    const payload = new Uint8Array(8);
    payload.set(guestMac);
    assert.equal(await f.ack(FrontendReq.SEND_RARP, payload), 1, 'RARP not negotiated: refused');
    assert.equal(other.frames.length, 0);
    await f.setProtocolFeatures(PF.REPLY_ACK | PF.RARP);
    assert.equal(await f.ack(FrontendReq.SEND_RARP, payload), 0);
    assert.equal(other.frames.length, 1);
    const r = other.frames[0]!;
    assert.equal(r.length, 60);
    assert.deepEqual(r.subarray(0, 6), new Uint8Array(6).fill(0xff), 'broadcast');
    assert.deepEqual(r.subarray(6, 12), guestMac);
    assert.equal((r[12]! << 8) | r[13]!, ETHERTYPE_RARP);
    assert.equal((r[20]! << 8) | r[21]!, 3, 'reverse request');
    assert.deepEqual(r.subarray(22, 28), guestMac);
    assert.deepEqual(r.subarray(32, 38), guestMac);
    assert.equal(sw.lookup(guestMac), port, 'the switch now knows where the guest is');
    assert.equal(dev.rarpsSent, 1);
    const group = new Uint8Array(8);
    group[0] = 1;
    assert.equal(await f.ack(FrontendReq.SEND_RARP, group), 1, 'a group address is refused');
    assert.equal(await f.ack(FrontendReq.SEND_RARP, new Uint8Array(4)), 1, 'a short payload is refused');
    assert.equal(other.frames.length, 1);
  });

  it('NET_SET_MTU: accepted within 68..the device MTU once PROTOCOL_F_MTU is negotiated, refused otherwise', async () => {
    const dev = new VhostUserNetDevice({ mtu: 9000 });
    s = openSession(platform, dev);
    const f = s.front;
    await f.setProtocolFeatures(PF.REPLY_ACK);
    f.needReply = true;
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(9000)), 1, 'not negotiated');
    await f.setProtocolFeatures(PF.REPLY_ACK | PF.MTU);
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(9000)), 0);
    assert.equal(dev.frontendMtu, 9000);
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(9001)), 1, 'above the buffers the device has');
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(67)), 1);
    assert.equal(await f.ack(FrontendReq.NET_SET_MTU, encodeU64(1500)), 0);
    assert.equal(dev.frontendMtu, 1500);
  });
});
