/**
 * vhost-user back-end: notification batching and event suppression, indirect chains, legacy
 * (pre-1.0) guests of either endianness, config, status, RESET_DEVICE, REPLY_ACK, ring states
 * and several rings (MQ). Sections cited are those of vhost-user.rst.
 */
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { LoopbackPlatform } from './loopback-platform.js';
import type { Platform } from '../platform/types.js';
import type { DescriptorChain } from '../queue/chain.js';
import { F } from '../spec/features.js';
import { BlkConfig, BlkF } from '../spec/blk.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { Status } from '../spec/status.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { encodeU64, encodeVringState, VhostUserError, VhostUserFault } from './codec.js';
import { F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag, PF } from './messages.js';
import { EchoDevice, RING, TinyDriver, openSession, useLoopbackTestBed, setUpRing as setUp, waitEventfd, type Guest, type Session } from './test-helpers.js';

const enc = new TextEncoder();

/** Notifies after every single push, as a naive device would: the back-end must batch. */
class ChattyDevice extends EchoDevice {
  override complete(index: number, chain: DescriptorChain): void {
    super.complete(index, chain);
    this.ctx!.notifyUsed(index);
  }
}

describe('VhostUserBackend features', () => {
  const bed = useLoopbackTestBed();
  const { sessions, fds } = bed;
  let p: LoopbackPlatform;
  let guest: Guest;
  beforeEach(() => ({ p, guest } = bed));

  /**
   * One request with its notification: after a ring (re)start the queue does not know what the
   * driver was last told and notifies once unconditionally (a spurious notification is allowed).
   */
  async function warmUp(drv: TinyDriver, kick: number, call: number): Promise<void> {
    const called = waitEventfd(p, call);
    drv.add(enc.encode('warm'), 8, RING.data + 0x600);
    p.eventfdWrite(kick, 1);
    await called;
  }

  function session(dev: EchoDevice, platform: Platform = p): Session {
    const s = openSession(platform, dev);
    sessions.push(s);
    return s;
  }

  describe('used-buffer notifications ("Ring states": call eventfd)', () => {
    it('are batched: one call eventfd write per processing pass however often the device asks', async () => {
      const dev = new ChattyDevice();
      const s = session(dev);
      const drv = new TinyDriver(guest.map.bytes, 8);
      const { kick, call } = await setUp(s, guest, drv);
      fds.push(kick, call);
      for (let i = 0; i < 4; i++) drv.add(enc.encode(`r${i}`), 8, RING.data + 0x200 * i);
      const called = waitEventfd(p, call);
      p.eventfdWrite(kick, 1);
      assert.equal(await called, 1, 'one write of 1 on the call eventfd');
      assert.equal(dev.served, 4);
      assert.equal(drv.usedIdx(), 4);
      assert.equal(s.backend.callsSent, 1);
    });

    it('device/split-ring: are suppressed while the driver sets VIRTQ_AVAIL_F_NO_INTERRUPT (no EVENT_IDX)', async () => {
      const dev = new EchoDevice();
      const s = session(dev);
      const drv = new TinyDriver(guest.map.bytes, 8);
      const { kick, call } = await setUp(s, guest, drv);
      fds.push(kick, call);
      await warmUp(drv, kick, call);
      drv.setAvailFlags(1);
      drv.add(enc.encode('quiet'), 8, RING.data);
      const done = dev.waitFor(2);
      p.eventfdWrite(kick, 1);
      await done;
      assert.equal(drv.usedIdx(), 2);
      assert.equal(s.backend.callsSent, 1);
      assert.equal(p.eventfdRead(call), 0);
      drv.setAvailFlags(0);
      const called = waitEventfd(p, call);
      drv.add(enc.encode('loud'), 8, RING.data + 0x200);
      p.eventfdWrite(kick, 1);
      await called;
      assert.equal(s.backend.callsSent, 2);
    });

    it('with EVENT_IDX follow used_event, and the device publishes avail_event', async () => {
      const dev = new EchoDevice();
      const s = session(dev);
      const drv = new TinyDriver(guest.map.bytes, 8);
      const { kick, call } = await setUp(s, guest, drv, { features: F.VERSION_1 | F.EVENT_IDX });
      fds.push(kick, call);
      await warmUp(drv, kick, call);
      // 2.7.10: notify only when used idx passes used_event; 5 is far ahead.
      drv.setUsedEvent(5);
      drv.add(enc.encode('a'), 8, RING.data);
      const done = dev.waitFor(2);
      p.eventfdWrite(kick, 1);
      await done;
      assert.equal(drv.usedIdx(), 2);
      assert.equal(s.backend.callsSent, 1);
      assert.equal(drv.availEvent(), 2, 'the device asks to be kicked at the next avail index');
      drv.setUsedEvent(2); // notify once used idx moves past 2
      const called = waitEventfd(p, call);
      drv.add(enc.encode('b'), 8, RING.data + 0x200);
      p.eventfdWrite(kick, 1);
      await called;
      assert.equal(s.backend.callsSent, 2);
      assert.equal(drv.usedIdx(), 3);
    });
  });

  it('serves indirect descriptor tables when INDIRECT_DESC is negotiated', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv, { features: F.VERSION_1 | F.INDIRECT_DESC });
    fds.push(kick, call);
    const head = drv.addIndirect(enc.encode('through a table'), 32, RING.data, RING.data + 0x800);
    const called = waitEventfd(p, call);
    p.eventfdWrite(kick, 1);
    await called;
    assert.deepEqual(drv.used(0), { id: head, len: 15 });
    assert.equal(new TextDecoder().decode(guest.map.bytes.subarray(RING.data + 0x100, RING.data + 0x100 + 15)), 'through a table');
  });

  describe('legacy guests (transitional devices, no VERSION_1)', () => {
    it('a little-endian legacy guest is served without VERSION_1', async () => {
      const dev = new EchoDevice();
      const s = session(dev);
      const drv = new TinyDriver(guest.map.bytes, 8);
      const { kick, call } = await setUp(s, guest, drv, { features: 0n });
      fds.push(kick, call);
      assert.equal(s.backend.features & F.VERSION_1, 0n);
      const called = waitEventfd(p, call);
      const head = drv.add(enc.encode('legacy'), 16, RING.data);
      p.eventfdWrite(kick, 1);
      await called;
      assert.deepEqual(drv.used(0), { id: head, len: 6 });
      assert.equal(dev.ctx!.features & F.VERSION_1, 0n);
    });

    it('a big-endian legacy guest (SET_VRING_ENDIAN, CROSS_ENDIAN) gets its ring fields in big endian', async () => {
      const dev = new EchoDevice();
      const s = session(dev);
      const drv = new TinyDriver(guest.map.bytes, 8, 0, false);
      const { kick, call } = await setUp(s, guest, drv, { features: 0n, bigEndian: true });
      fds.push(kick, call);
      const called = waitEventfd(p, call);
      const head = drv.add(enc.encode('big endian'), 16, RING.data);
      drv.add(enc.encode('again'), 16, RING.data + 0x200);
      p.eventfdWrite(kick, 1);
      await called;
      assert.equal(drv.usedIdx(), 2);
      assert.deepEqual(drv.used(0), { id: head, len: 10 });
      assert.equal(dev.ctx!.littleEndian, false);
      // SET_VRING_ENDIAN is refused while the ring is started.
      assert.equal(await s.front.ack(FrontendReq.SET_VRING_ENDIAN, encodeVringState({ index: 0, num: 0 })), 1);
      assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.BAD_STATE);
    });
  });

  it('GET_CONFIG / SET_CONFIG (CONFIG) read and write the device config space, bounded', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setConfig(2, new Uint8Array([0xaa, 0xbb])), 0);
    assert.deepEqual([...(await f.getConfig(0, 4))!.data], [1, 2, 0xaa, 0xbb]);
    assert.equal(await f.setConfig(6, new Uint8Array([1, 2, 3])), 1, 'beyond the config space');
    assert.equal(await f.setConfig(0, new Uint8Array([9]), 7), 1, 'unknown flags');
    assert.deepEqual([...dev.config], [1, 2, 0xaa, 0xbb, 5, 6, 7, 8]);
  });

  it('SET_CONFIG to a read-only field is refused (non-zero ack), the writable field accepted; GET_CONFIG whose offset + size wraps gets the zero-length error reply', async () => {
    const blk = new BlkDevice(new MemoryBackend(1 << 20));
    const s = openSession(p, blk);
    sessions.push(s);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    assert.equal(await f.setFeatures(F.VERSION_1 | BlkF.FLUSH | BlkF.CONFIG_WCE | F_PROTOCOL_FEATURES), 0);
    const capacityBefore = (await f.getConfig(BlkConfig.CAPACITY, 8))!.data.slice();
    // "The back-end MUST NOT accept SET_CONFIG for read-only fields" (vhost-user.rst).
    assert.equal(await f.setConfig(BlkConfig.CAPACITY, new Uint8Array(8).fill(0xff)), 1, 'capacity is read-only');
    assert.equal(await f.setConfig(BlkConfig.WRITEBACK - 1, new Uint8Array([0, 0])), 1, 'a write spilling onto a read-only byte');
    assert.deepEqual((await f.getConfig(BlkConfig.CAPACITY, 8))!.data, capacityBefore);
    assert.equal(await f.setConfig(BlkConfig.WRITEBACK, new Uint8Array([0])), 0, 'writeback is writable with CONFIG_WCE');
    assert.equal((await f.getConfig(BlkConfig.WRITEBACK, 1))!.data[0], 0);
    assert.equal(await f.setConfig(BlkConfig.WRITEBACK, new Uint8Array([1])), 0);
    assert.equal((await f.getConfig(BlkConfig.WRITEBACK, 1))!.data[0], 1);
    // 0xfffffff0 + 32 wraps in 32 bits: refused, not answered with zeros.
    assert.equal(await f.getConfig(0xffff_fff0, 32), null);
    assert.equal((s.backend.lastError as VhostUserError).reason, VhostUserFault.BAD_VALUE);
  });

  it('SET_STATUS / GET_STATUS (STATUS): FEATURES_OK sticks only after SET_FEATURES; 0 clears', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const f = s.front;
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    const S = Status;
    assert.equal(await f.setStatus(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK), 0);
    assert.equal(await f.getStatus(), S.ACKNOWLEDGE | S.DRIVER, 'no features yet: FEATURES_OK refused (3.1.1)');
    assert.equal(await f.setFeatures(F.VERSION_1 | F_PROTOCOL_FEATURES), 0);
    assert.equal(await f.setStatus(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK), 0);
    assert.equal(await f.getStatus(), S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK);
    assert.equal(await f.setStatus(0x100), 1, 'status is a u8');
    assert.equal(await f.setStatus(0), 0);
    assert.equal(await f.getStatus(), 0);
  });

  it('RESET_DEVICE stops and disables every ring, resets the device and forgets the features', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv);
    fds.push(kick, call);
    const called = waitEventfd(p, call);
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await called;
    assert.equal(await s.front.ack(FrontendReq.RESET_DEVICE), 0);
    const info = s.backend.ringInfo(0)!;
    assert.deepEqual([info.started, info.enabled, info.num], [false, false, 0]);
    assert.equal(dev.resets, 1);
    assert.equal(s.backend.features, 0n);
    assert.equal(s.backend.deviceActive, false);
    // Protocol features survive a device reset; the session goes on.
    assert.equal(s.backend.protocolFeatures, SUPPORTED_PROTOCOL_FEATURES);
    assert.ok((await s.front.getFeatures()) !== 0n);
  });

  it('REPLY_ACK: need_reply gets u64 0 on success; without REPLY_ACK no reply is sent', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const f = s.front;
    await f.getFeatures();
    // Without REPLY_ACK negotiated: a need_reply request gets no ack, so the next reply is GET_FEATURES'.
    await f.setProtocolFeatures(PF.MQ);
    f.send(FrontendReq.SET_OWNER, undefined, undefined, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    const r0 = await f.call(FrontendReq.GET_FEATURES);
    assert.equal(r0.request, FrontendReq.GET_FEATURES);
    await f.setProtocolFeatures(PF.MQ | PF.REPLY_ACK);
    const r1 = await f.call(FrontendReq.SET_OWNER, undefined, undefined, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    assert.equal(r1.request, FrontendReq.SET_OWNER);
    assert.equal(r1.flags & HeaderFlag.REPLY, HeaderFlag.REPLY);
    assert.deepEqual([...r1.payload], [...encodeU64(0)]);
    assert.equal(s.backend.errorCount, 0);
  });

  it('ring states: stopped -> started (SET_VRING_KICK) -> enabled; SET_VRING_ENABLE(0) holds work back', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const info = (): [boolean, boolean] => [s.backend.ringInfo(0)!.started, s.backend.ringInfo(0)!.enabled];
    assert.deepEqual(info(), [false, false]);
    const { kick, call } = await setUp(s, guest, drv, { enable: false });
    fds.push(kick, call);
    assert.deepEqual(info(), [true, false]);
    assert.equal(await s.front.setVringEnable(0, true), 0);
    assert.deepEqual(info(), [true, true]);
    assert.equal(await s.front.setVringEnable(0, false), 0);
    drv.add(enc.encode('x'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await s.front.getFeatures();
    await new Promise((r) => setImmediate(r));
    assert.equal(dev.served, 0, 'a disabled ring does not reach the device');
    assert.equal(await s.front.ack(FrontendReq.SET_VRING_ENABLE, encodeVringState({ index: 0, num: 2 })), 1, 'enable is 0 or 1');
    const called = waitEventfd(p, call);
    assert.equal(await s.front.setVringEnable(0, true), 0);
    await called;
    assert.equal(dev.served, 1);
    assert.equal(await s.front.getVringBase(0), 1);
    assert.deepEqual(info(), [false, true], 'GET_VRING_BASE stops the ring');
  });

  it('GET_VRING_BASE takes the ring back: completions of an asynchronous device arriving later are dropped', async () => {
    const dev = new EchoDevice();
    dev.hold = true;
    const s = session(dev);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv);
    fds.push(kick, call);
    drv.add(enc.encode('slow'), 8, RING.data);
    drv.add(enc.encode('slower'), 8, RING.data + 0x200);
    p.eventfdWrite(kick, 1);
    await dev.waitFor(2);
    const queue = dev.ctx!.queue(0)!;
    // Both popped: the base reports them consumed (the front-end resumes after them).
    assert.equal(await s.front.getVringBase(0), 2);
    for (const chain of dev.held) queue.push(chain, 4);
    assert.equal(drv.usedIdx(), 0, 'nothing written to a ring the front-end took back');
    assert.equal(dev.ctx, null, 'all rings stopped: the device was reset');
    assert.equal(s.backend.errorCount, 0);
  });

  it('MQ: GET_QUEUE_NUM and a second ring served independently', async () => {
    const dev = new EchoDevice();
    const s = session(dev);
    const d0 = new TinyDriver(guest.map.bytes, 8);
    const d1 = new TinyDriver(guest.map.bytes, 8, 0x4000);
    const a = await setUp(s, guest, d0);
    fds.push(a.kick, a.call);
    assert.equal(await s.front.getQueueNum(), 2);
    await s.front.setVringNum(1, 8);
    await s.front.setVringBase(1, 0);
    await s.front.setVringAddr(d1.vringAddr(1));
    const kick1 = p.eventfd();
    const call1 = p.eventfd();
    fds.push(kick1, call1);
    await s.front.setVringKick(1, kick1);
    await s.front.setVringCall(1, call1);
    await s.front.setVringEnable(1, true);
    const called = waitEventfd(p, call1);
    d1.add(enc.encode('ring one'), 16, 0x9000);
    p.eventfdWrite(kick1, 1);
    await called;
    assert.equal(d1.usedIdx(), 1);
    assert.equal(d0.usedIdx(), 0);
    assert.equal(p.eventfdRead(a.call), 0);
  });
});
