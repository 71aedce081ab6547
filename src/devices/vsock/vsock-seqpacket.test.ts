/**
 * vsock SEQPACKET (5.10.6.6) on the device and the driver, and the untrusted-guest cases of
 * issue 13 not covered in vsock-device.test.ts: len disagreeing with the buffers, a connection
 * flood, credit lies, ports reused while a connection closes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoopback } from '../../testing/loopback.js';
import { Status } from '../../spec/status.js';
import { VsockF, VsockOp, VsockSeq, VsockShutdown, VsockType } from '../../spec/vsock.js';
import { MemoryVsockBackend, type MemoryVsockConnection } from './backends/memory-backend.js';
import { VsockDevice, type VsockDeviceOptions } from './vsock-device.js';
import { VsockDriver } from './vsock-driver.js';
import type { VsockSocket } from './vsock-socket.js';
import { RawVsockGuest } from './vsock-test-guest.js';

const T = { timeout: 20_000 };
const CID = 9;
const SEQ = VsockType.SEQPACKET;

async function rig(opts: Partial<VsockDeviceOptions> = {}, refuseFeatures?: bigint) {
  const backend = new MemoryVsockBackend();
  const accepted: MemoryVsockConnection[] = [];
  backend.listen(1234, (c) => accepted.push(c));
  const device = new VsockDevice({ guestCid: CID, backend, ...opts });
  const lb = await createLoopback(device, refuseFeatures !== undefined ? { refuseFeatures } : {});
  // The raw guest takes the queues when first used (a VsockDriver may take them instead).
  let guest: RawVsockGuest | null = null;
  return {
    lb,
    device,
    backend,
    accepted,
    get guest(): RawVsockGuest {
      guest ??= new RawVsockGuest(lb.context, CID, 8);
      return guest;
    },
  };
}
type Rig = Awaited<ReturnType<typeof rig>>;

async function open(r: Rig, port: number, type: number = VsockType.STREAM, bufAlloc = 65536): Promise<MemoryVsockConnection> {
  await r.guest.send({ op: VsockOp.REQUEST, type, srcPort: port, dstPort: 1234, bufAlloc });
  const p = await r.guest.next();
  assert.deepEqual([p.op, p.type, p.dstPort], [VsockOp.RESPONSE, type, port]);
  return r.accepted.at(-1)!;
}

/** A probe that always gets a RST: what arrives before its RST came before it. */
async function probe(r: Rig): Promise<void> {
  await r.guest.send({ op: VsockOp.RW, srcPort: 999_999, dstPort: 999_999 });
  const p = await r.guest.next();
  assert.equal(p.op, VsockOp.RST);
  assert.equal(p.dstPort, 999_999, 'nothing arrived before the probe');
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

describe('vsock SEQPACKET (5.10.6.6)', () => {
  it('5.10.6.6.1: guest messages reach the host whole, in order, with their record ends; RW parts without EOM wait', T, async () => {
    const r = await rig();
    const host = await open(r, 10, SEQ);
    const m1 = bytes(3000, 1);
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 10, dstPort: 1234 }, m1.subarray(0, 1000));
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 10, dstPort: 1234 }, m1.subarray(1000, 2500));
    assert.equal(host.messages.length, 0, 'no EOM yet: nothing for the host');
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 10, dstPort: 1234, flags: VsockSeq.EOM }, m1.subarray(2500));
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 10, dstPort: 1234, flags: VsockSeq.EOM | VsockSeq.EOR }, bytes(7, 2));
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 10, dstPort: 1234, flags: VsockSeq.EOM }); // an empty message
    assert.equal(host.messages.length, 3);
    assert.deepEqual(host.messages[0], { data: m1, eor: false });
    assert.deepEqual(host.messages[1], { data: bytes(7, 2), eor: true });
    assert.deepEqual(host.messages[2], { data: new Uint8Array(0), eor: false });
    assert.equal(host.received.length, 0, 'nothing went through the stream path');
    await r.lb.close();
  });

  it('5.10.6.6.1: a host message goes out in RW packets, the last one with EOM (and EOR when asked), within the credit', T, async () => {
    const r = await rig();
    const host = await open(r, 11, SEQ, 100_000);
    const big = bytes(9000, 3); // rx buffers hold 4096 bytes of payload
    host.hostSendMessage(big);
    host.hostSendMessage(bytes(5, 4), true);
    const parts = [await r.guest.next(), await r.guest.next(), await r.guest.next()];
    assert.deepEqual(parts.map((p) => [p.op, p.type, p.len, p.flags]), [
      [VsockOp.RW, SEQ, 4096, 0],
      [VsockOp.RW, SEQ, 4096, 0],
      [VsockOp.RW, SEQ, 808, VsockSeq.EOM],
    ]);
    assert.deepEqual(Buffer.concat(parts.map((p) => p.payload.subarray(0, p.len))), Buffer.from(big));
    const last = await r.guest.next();
    assert.deepEqual([last.len, last.flags], [5, VsockSeq.EOM | VsockSeq.EOR]);
    await r.lb.close();
  });

  it('untrusted guest: a seqpacket message filling the whole buffer without EOM, or a packet of the other type, resets the connection', T, async () => {
    const r = await rig({ bufAlloc: 2048 });
    const a = await open(r, 12, SEQ);
    await r.guest.send({ op: VsockOp.RW, type: SEQ, srcPort: 12, dstPort: 1234 }, new Uint8Array(2048));
    let p = await r.guest.next();
    assert.deepEqual([p.op, p.type, p.dstPort], [VsockOp.RST, SEQ, 12]);
    assert.ok(a.closed);
    const b = await open(r, 13, SEQ);
    await r.guest.send({ op: VsockOp.RW, type: VsockType.STREAM, srcPort: 13, dstPort: 1234 }, new Uint8Array(4));
    p = await r.guest.next();
    assert.deepEqual([p.op, p.dstPort], [VsockOp.RST, 13]);
    assert.ok(b.closed);
    assert.equal(r.device.connections, 0);
    await r.lb.close();
  });

  it('a host message longer than the guest buf_alloc is dropped and counted (it could never be received whole)', T, async () => {
    const r = await rig();
    const host = await open(r, 14, SEQ, 1000);
    host.hostSendMessage(new Uint8Array(1001));
    host.hostSendMessage(bytes(10, 5));
    const p = await r.guest.next();
    assert.deepEqual([p.len, p.flags], [10, VsockSeq.EOM]);
    assert.equal(r.device.stats.droppedMessages, 1);
    await r.lb.close();
  });

  it('device/vsock/3: SEQPACKET negotiated without NO_IMPLIED_STREAM (nor STREAM): stream sockets still work', T, async () => {
    const r = await rig({}, VsockF.STREAM | VsockF.NO_IMPLIED_STREAM);
    assert.equal(r.lb.driver.features & (VsockF.STREAM | VsockF.SEQPACKET | VsockF.NO_IMPLIED_STREAM), VsockF.SEQPACKET);
    const host = await open(r, 20);
    await r.guest.send({ op: VsockOp.RW, srcPort: 20, dstPort: 1234 }, bytes(3, 1));
    assert.deepEqual(host.data, Buffer.from(bytes(3, 1)));
    await open(r, 21, SEQ);
    await r.lb.close();
  });

  it('5.10.3: SEQPACKET with NO_IMPLIED_STREAM and no STREAM: a stream REQUEST gets RST; seqpacket not negotiated: a seqpacket REQUEST gets RST', T, async () => {
    const r = await rig({}, VsockF.STREAM);
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 30, dstPort: 1234 });
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    await open(r, 31, SEQ);
    await r.lb.close();
    const s = await rig({}, VsockF.SEQPACKET);
    await s.guest.send({ op: VsockOp.REQUEST, type: SEQ, srcPort: 32, dstPort: 1234 });
    const p = await s.guest.next();
    assert.deepEqual([p.op, p.type], [VsockOp.RST, SEQ], 'the RST carries the type of the packet it answers');
    assert.equal(s.accepted.length, 0);
    await s.lb.close();
  });

  it('driver/vsock/3: SEQPACKET negotiated without NO_IMPLIED_STREAM (nor STREAM): the driver still does stream sockets; with NO_IMPLIED_STREAM it does not', T, async () => {
    const r = await rig({}, VsockF.STREAM | VsockF.NO_IMPLIED_STREAM);
    const vs = new VsockDriver(r.lb.context);
    assert.ok(vs.supports(VsockType.STREAM) && vs.supports(SEQ));
    const s = await vs.connect(1234);
    await s.send(bytes(10, 1));
    await r.accepted.at(-1)!.until((c) => c.data.length === 10);
    vs.detach();
    await r.lb.close();
    const n = await rig({}, VsockF.STREAM);
    const vn = new VsockDriver(n.lb.context);
    assert.ok(!vn.supports(VsockType.STREAM) && vn.supports(SEQ));
    await assert.rejects(vn.connect(1234), /not negotiated/);
    assert.equal(n.accepted.length, 0);
    vn.detach();
    await n.lb.close();
  });

  it('driver and device: seqpacket both ways keeps message and record boundaries (guest- and host-initiated)', T, async () => {
    const r = await rig({ bufAlloc: 32768 });
    const vs = new VsockDriver(r.lb.context, { bufAlloc: 32768, maxPayload: 1024 });
    try {
      assert.ok(vs.supports(SEQ));
      const s = await vs.connect(1234, SEQ);
      const host = r.accepted.at(-1)!;
      const sizes = [1, 1024, 1025, 5000, 0, 20000];
      for (const [i, n] of sizes.entries()) await s.sendMessage(bytes(n, i), i === 3);
      await host.until((c) => c.messages.length === sizes.length);
      assert.deepEqual(host.messages.map((m) => m.data.length), sizes);
      assert.deepEqual(host.messages.map((m) => m.eor), sizes.map((_, i) => i === 3));
      for (const [i, n] of sizes.entries()) assert.deepEqual(host.messages[i]!.data, bytes(n, i));
      await assert.rejects(s.sendMessage(new Uint8Array(32769)), /buf_alloc/);
      for (const [i, n] of [700, 3, 9000].entries()) host.hostSendMessage(bytes(n, 50 + i), i === 1);
      for (const [i, n] of [700, 3, 9000].entries()) {
        const m = await s.recvMessage();
        assert.ok(m !== null);
        assert.deepEqual([Buffer.from(m.data), m.eor], [Buffer.from(bytes(n, 50 + i)), i === 1]);
      }
      await s.close();
      // Host-initiated: CONNECT to a guest seqpacket listener.
      let accepted: VsockSocket | null = null;
      vs.listen(6000, (g) => (accepted = g), SEQ);
      const hc = await r.backend.connect(6000, SEQ);
      const g = accepted as VsockSocket | null;
      assert.ok(g !== null && g.type === SEQ);
      hc.hostSendMessage(bytes(4000, 9), true);
      const gm = await g.recvMessage();
      assert.ok(gm !== null);
      assert.deepEqual([Buffer.from(gm.data), gm.eor], [Buffer.from(bytes(4000, 9)), true]);
      await g.sendMessage(bytes(33, 8));
      await hc.until((c) => c.messages.length === 1);
      assert.deepEqual(hc.messages[0], { data: bytes(33, 8), eor: false });
      // A stream listener does not take a seqpacket connection.
      vs.listen(6001, () => assert.fail('a seqpacket REQUEST reached a stream listener'));
      await assert.rejects(r.backend.connect(6001, SEQ), /refused/);
    } finally {
      vs.detach();
    }
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });
});

describe('vsock untrusted guest (issue 13)', () => {
  it('a packet whose len is shorter than its buffers: only len bytes are taken; longer: RST', T, async () => {
    const r = await rig();
    const host = await open(r, 40);
    await r.guest.send({ op: VsockOp.RW, srcPort: 40, dstPort: 1234, len: 3 }, bytes(100, 1));
    assert.deepEqual(host.data, Buffer.from(bytes(3, 1)), 'the bytes beyond len are not payload');
    await r.guest.send({ op: VsockOp.RW, srcPort: 40, dstPort: 1234, len: 101 }, bytes(100, 1));
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.ok(host.closed);
    await r.lb.close();
  });

  it('a connection flood: the table stays at maxConnections, every REQUEST beyond gets RST and is counted', T, async () => {
    const r = await rig({ maxConnections: 8 });
    const sends: Promise<number>[] = [];
    for (let i = 0; i < 200; i++) sends.push(r.guest.send({ op: VsockOp.REQUEST, srcPort: 10_000 + i, dstPort: 1234 }));
    await Promise.all(sends);
    let responses = 0;
    let resets = 0;
    for (let i = 0; i < 200; i++) {
      const p = await r.guest.next();
      if (p.op === VsockOp.RESPONSE) responses++;
      else if (p.op === VsockOp.RST) resets++;
    }
    assert.deepEqual([responses, resets], [8, 192]);
    assert.equal(r.device.connections, 8);
    assert.equal(r.device.stats.refused, 192);
    assert.equal(r.accepted.length, 8, 'the host side saw only the connections that fit');
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('credit lies: fwd_cnt ahead of what the device sent, or a shrinking buf_alloc, never make it send beyond the buffer', T, async () => {
    const r = await rig();
    const host = await open(r, 50, VsockType.STREAM, 1000);
    // fwd_cnt claims 10^6 bytes consumed when none were sent: u32 arithmetic reads it as
    // everything in flight, so no credit at all (peerCredit), rather than a huge window.
    await r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 50, dstPort: 1234, bufAlloc: 1000, fwdCnt: 1_000_000 });
    host.hostSend(bytes(3000, 1));
    await probe(r);
    // An honest update: 1000 bytes come, not more.
    await r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 50, dstPort: 1234, bufAlloc: 1000, fwdCnt: 0 });
    const p = await r.guest.next();
    assert.equal(p.len, 1000);
    // The guest shrinks its buffer below what is in flight: nothing more is sent.
    await r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 50, dstPort: 1234, bufAlloc: 500, fwdCnt: 0 });
    await probe(r);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('ports reused mid-close: a REQUEST on the ports of a closing connection resets it; the next REQUEST opens a fresh one', T, async () => {
    const r = await rig({ closeTimeoutMs: 5000 });
    const first = await open(r, 60);
    first.closeHost();
    const sd = await r.guest.next();
    assert.deepEqual([sd.op, sd.flags], [VsockOp.SHUTDOWN, VsockShutdown.RECEIVE | VsockShutdown.SEND]);
    // The guest, instead of its RST, reuses the ports at once.
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 60, dstPort: 1234 });
    const rst = await r.guest.next();
    assert.deepEqual([rst.op, rst.dstPort], [VsockOp.RST, 60]);
    assert.equal(r.device.connections, 0, 'the closing connection is gone (no timer left behind)');
    const second = await open(r, 60);
    assert.notEqual(second, first);
    await r.guest.send({ op: VsockOp.RW, srcPort: 60, dstPort: 1234 }, bytes(4, 2));
    assert.deepEqual(second.data, Buffer.from(bytes(4, 2)));
    assert.equal(first.data.length, 0, 'nothing reached the old host side');
    await r.lb.close();
  });
});
