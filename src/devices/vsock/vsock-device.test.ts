import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { Status } from '../../spec/status.js';
import { VSOCK_HOST_CID, VsockF, VsockOp, VsockShutdown, VsockType } from '../../spec/vsock.js';
import { MemoryVsockBackend, type MemoryVsockConnection } from './backends/memory-backend.js';
import { VsockDevice, type VsockDeviceOptions } from './vsock-device.js';
import { VsockDriver } from './vsock-driver.js';
import { RawVsockGuest } from './vsock-test-guest.js';

const T = { timeout: 20_000 };
const CID = 7;

interface Rig {
  readonly lb: Loopback;
  readonly device: VsockDevice;
  readonly backend: MemoryVsockBackend;
  readonly guest: RawVsockGuest;
  /** Host connections accepted on port 1234, in order. */
  readonly accepted: MemoryVsockConnection[];
}

async function rig(opts: Partial<VsockDeviceOptions> = {}, rxBuffers = 8, refuseFeatures?: bigint): Promise<Rig> {
  const backend = new MemoryVsockBackend();
  const accepted: MemoryVsockConnection[] = [];
  backend.listen(1234, (c) => accepted.push(c));
  const device = new VsockDevice({ guestCid: CID, backend, ...opts });
  const lb = await createLoopback(device, refuseFeatures !== undefined ? { refuseFeatures } : {});
  return { lb, device, backend, guest: new RawVsockGuest(lb.context, CID, rxBuffers), accepted };
}

/** Opens a guest -> host connection from guest port `port` to host 1234; returns the host side. */
async function open(r: Rig, port: number, bufAlloc = 65536): Promise<MemoryVsockConnection> {
  await r.guest.send({ op: VsockOp.REQUEST, srcPort: port, dstPort: 1234, bufAlloc });
  const p = await r.guest.next();
  assert.equal(p.op, VsockOp.RESPONSE);
  assert.equal(p.dstPort, port);
  return r.accepted.at(-1)!;
}

/** A probe that always gets a RST (RW for no connection): what arrives before its RST came before it. */
async function probe(r: Rig): Promise<void> {
  await r.guest.send({ op: VsockOp.RW, srcPort: 999_999, dstPort: 999_999 });
  const p = await r.guest.next();
  assert.equal(p.op, VsockOp.RST);
  assert.equal(p.dstPort, 999_999, 'nothing arrived before the probe');
}

describe('vsock device (5.10)', () => {
  it('device/vsock/7: a reserved guest CID is refused; guest_cid reads as a le64 (either byte order)', T, () => {
    for (const cid of [0, 1, 2, 0xffff_ffff, 2 ** 32, -1, 1.5]) {
      assert.throws(() => new VsockDevice({ guestCid: cid, backend: new MemoryVsockBackend() }), /reserved/);
    }
    const d = new VsockDevice({ guestCid: 0x1234_5678, backend: new MemoryVsockBackend() });
    const le = new Uint8Array(8);
    d.readConfig(0, le, 0n, true);
    assert.deepEqual([...le], [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
    const be = new Uint8Array(8);
    d.readConfig(0, be, 0n, false);
    assert.deepEqual([...be], [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
  });

  it('device/vsock/1: offers NO_IMPLIED_STREAM, with STREAM and SEQPACKET', T, () => {
    const d = new VsockDevice({ guestCid: CID, backend: new MemoryVsockBackend() });
    assert.equal(d.offeredFeatures & VsockF.NO_IMPLIED_STREAM, VsockF.NO_IMPLIED_STREAM);
    assert.equal(d.offeredFeatures & VsockF.STREAM, VsockF.STREAM);
    assert.equal(d.offeredFeatures & VsockF.SEQPACKET, VsockF.SEQPACKET);
    assert.deepEqual(d.queueMaxSizes.length, 3, 'rx, tx, event');
  });

  it('device/vsock/2: with no vsock feature negotiated the device acts as if STREAM were', T, async () => {
    const r = await rig({}, 8, VsockF.STREAM | VsockF.NO_IMPLIED_STREAM | VsockF.SEQPACKET);
    assert.equal(r.lb.driver.features & (VsockF.STREAM | VsockF.NO_IMPLIED_STREAM), 0n);
    const host = await open(r, 5);
    await r.guest.send({ op: VsockOp.RW, srcPort: 5, dstPort: 1234 }, new TextEncoder().encode('hi'));
    assert.equal(new TextDecoder().decode(host.data), 'hi');
    await r.lb.close();
  });

  it('device/vsock/8: a packet of unknown type gets RST (seqpacket not negotiated, type 9), and opens nothing', T, async () => {
    const r = await rig({}, 8, VsockF.SEQPACKET);
    for (const type of [VsockType.SEQPACKET, 9, 0]) {
      await r.guest.send({ op: VsockOp.REQUEST, type, srcPort: 40, dstPort: 1234 });
      const p = await r.guest.next();
      assert.equal(p.op, VsockOp.RST);
      assert.deepEqual([p.srcCid, p.dstCid, p.srcPort, p.dstPort], [VSOCK_HOST_CID, CID, 1234, 40]);
    }
    assert.equal(r.device.connections, 0);
    assert.equal(r.accepted.length, 0);
    // On a live connection, an unknown type resets it (and closes the host side).
    const host = await open(r, 41);
    await r.guest.send({ op: VsockOp.RW, type: 5, srcPort: 41, dstPort: 1234 });
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.ok(host.closed);
    assert.equal(r.device.connections, 0);
    await r.lb.close();
  });

  it('5.10.6.4: REQUEST to a port nothing listens on, and packets of no connection, get RST; a RST gets no reply', T, async () => {
    const r = await rig();
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 50, dstPort: 4321 });
    let p = await r.guest.next();
    assert.deepEqual([p.op, p.srcPort, p.dstPort], [VsockOp.RST, 4321, 50]);
    for (const op of [VsockOp.RW, VsockOp.SHUTDOWN, VsockOp.CREDIT_UPDATE, VsockOp.CREDIT_REQUEST, VsockOp.RESPONSE, VsockOp.INVALID, 77]) {
      await r.guest.send({ op, srcPort: 51, dstPort: 1234 });
      p = await r.guest.next();
      assert.equal(p.op, VsockOp.RST, `op ${op}`);
    }
    await r.guest.send({ op: VsockOp.RST, srcPort: 51, dstPort: 1234 });
    await probe(r);
    await r.lb.close();
  });

  it('untrusted guest: misaddressed, short or unmapped packets are dropped without a reply or a reset', T, async () => {
    const r = await rig();
    await r.guest.send({ op: VsockOp.REQUEST, srcCid: CID + 1, srcPort: 60, dstPort: 1234 }); // not the guest's CID
    await r.guest.send({ op: VsockOp.REQUEST, dstCid: 3, srcPort: 60, dstPort: 1234 }); // not the host
    const upper = new Uint8Array(44);
    upper[4] = 1; // src_cid upper 32 bits set (reserved, 5.10.6)
    await r.guest.send({}, undefined, upper);
    await r.guest.send({}, undefined, new Uint8Array(43)); // short header
    const addr = 0x7000_0000_0000;
    await r.guest.tx.submit([{ addr, len: 64 }]); // unmapped
    assert.equal(r.device.stats.dropped, 5);
    await probe(r);
    assert.equal(r.device.connections, 0);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('untrusted guest: an RW whose len exceeds the chain or the device bound resets the connection', T, async () => {
    const r = await rig({ maxPayload: 4096 });
    let host = await open(r, 70);
    await r.guest.send({ op: VsockOp.RW, srcPort: 70, dstPort: 1234, len: 100 }, new Uint8Array(10));
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.ok(host.closed);
    assert.equal(host.data.length, 0, 'nothing of the bad packet reached the host');
    host = await open(r, 71);
    await r.guest.send({ op: VsockOp.RW, srcPort: 71, dstPort: 1234 }, new Uint8Array(5000));
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.ok(host.closed);
    await r.lb.close();
  });

  it('a guest breaking its credit: bytes beyond the buf_alloc the device gave reset the connection (memory stays bounded)', T, async () => {
    const r = await rig({ bufAlloc: 1000 });
    // A host side that never consumes: the device's buffer fills.
    r.backend.listen(2000, (c) => {
      c.write = (d: Uint8Array): void => void c.received.push(d.slice());
    });
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 80, dstPort: 2000 });
    const resp = await r.guest.next();
    assert.equal(resp.op, VsockOp.RESPONSE);
    assert.equal(resp.bufAlloc, 1000, 'device/vsock/6: buf_alloc is the connection buffer');
    await r.guest.send({ op: VsockOp.RW, srcPort: 80, dstPort: 2000 }, new Uint8Array(600));
    await r.guest.send({ op: VsockOp.RW, srcPort: 80, dstPort: 2000 }, new Uint8Array(400));
    await probe(r); // exactly the credit: accepted, no reply
    await r.guest.send({ op: VsockOp.RW, srcPort: 80, dstPort: 2000 }, new Uint8Array(1));
    const p = await r.guest.next();
    assert.deepEqual([p.op, p.dstPort], [VsockOp.RST, 80]);
    assert.equal(r.device.connections, 0);
    await r.lb.close();
  });

  it('device/vsock/5, device/vsock/6: the device sends no more than the guest credit, and every packet carries buf_alloc and fwd_cnt', T, async () => {
    const r = await rig({ bufAlloc: 8192 });
    const host = await open(r, 90, 1000);
    await r.guest.send({ op: VsockOp.RW, srcPort: 90, dstPort: 1234, bufAlloc: 1000 }, new Uint8Array(300));
    const out = new Uint8Array(5000).map((_, i) => i & 0xff);
    host.hostSend(out);
    const p1 = await r.guest.next();
    assert.equal(p1.op, VsockOp.RW);
    assert.equal(p1.len, 1000, 'exactly the credit the guest gave');
    assert.deepEqual(p1.payload.subarray(0, 1000), out.subarray(0, 1000));
    assert.equal(p1.bufAlloc, 8192);
    assert.equal(p1.fwdCnt, 300, 'fwd_cnt counts the bytes the host consumed');
    await probe(r); // no more data without credit
    // The guest frees 1000 (fwd_cnt 1000): the next 1000 come.
    await r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 90, dstPort: 1234, bufAlloc: 1000, fwdCnt: 1000 });
    const p2 = await r.guest.next();
    assert.equal(p2.len, 1000);
    assert.deepEqual(p2.payload.subarray(0, 1000), out.subarray(1000, 2000));
    // A bigger buffer takes the rest (in rx buffers of 4096 bytes of payload).
    await r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 90, dstPort: 1234, bufAlloc: 1 << 20, fwdCnt: 2000 });
    const p3 = await r.guest.next();
    assert.equal(p3.len, 3000);
    assert.deepEqual(p3.payload.subarray(0, 3000), out.subarray(2000));
    await r.lb.close();
  });

  it('5.10.6.3: CREDIT_REQUEST gets a CREDIT_UPDATE', T, async () => {
    const r = await rig({ bufAlloc: 4096 });
    await open(r, 95);
    await r.guest.send({ op: VsockOp.RW, srcPort: 95, dstPort: 1234 }, new Uint8Array(100));
    await r.guest.send({ op: VsockOp.CREDIT_REQUEST, srcPort: 95, dstPort: 1234 });
    const p = await r.guest.next();
    assert.deepEqual([p.op, p.bufAlloc, p.fwdCnt], [VsockOp.CREDIT_UPDATE, 4096, 100]);
    await r.lb.close();
  });

  it('5.10.6.4: SHUTDOWN SEND ends the host stream; SHUTDOWN with both flags gets RST and closes the host side', T, async () => {
    const r = await rig();
    const host = await open(r, 100);
    await r.guest.send({ op: VsockOp.SHUTDOWN, flags: VsockShutdown.SEND, srcPort: 100, dstPort: 1234 });
    assert.ok(host.guestEnded);
    assert.ok(!host.closed);
    // The host can still send after the guest's half close.
    host.hostSend(new TextEncoder().encode('late'));
    const d = await r.guest.next();
    assert.equal(new TextDecoder().decode(d.payload.subarray(0, d.len)), 'late');
    await r.guest.send({ op: VsockOp.SHUTDOWN, flags: VsockShutdown.RECEIVE, srcPort: 100, dstPort: 1234 });
    const p = await r.guest.next();
    assert.deepEqual([p.op, p.dstPort], [VsockOp.RST, 100], 'flags are permanent: SEND then RECEIVE is both');
    assert.ok(host.closed);
    assert.equal(r.device.connections, 0);
    await r.lb.close();
  });

  it('5.10.6.4: the host closing sends SHUTDOWN (both) after its data; without the guest RST in time the device sends one', T, async () => {
    const r = await rig({ closeTimeoutMs: 30 });
    const host = await open(r, 110);
    host.hostSend(new Uint8Array(10));
    host.closeHost();
    const d = await r.guest.next();
    assert.deepEqual([d.op, d.len], [VsockOp.RW, 10]);
    const s = await r.guest.next();
    assert.deepEqual([s.op, s.flags], [VsockOp.SHUTDOWN, VsockShutdown.RECEIVE | VsockShutdown.SEND]);
    const rst = await r.guest.next(); // the guest never answers
    assert.equal(rst.op, VsockOp.RST);
    assert.equal(r.device.connections, 0);
    await r.lb.close();
  });

  it('the connection table is bounded: a REQUEST beyond maxConnections gets RST', T, async () => {
    const r = await rig({ maxConnections: 2 });
    await open(r, 1);
    await open(r, 2);
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 3, dstPort: 1234 });
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.equal(r.device.connections, 2);
    // A duplicate REQUEST on a live connection resets it.
    await r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    assert.equal((await r.guest.next()).op, VsockOp.RST);
    assert.equal(r.device.connections, 1);
    await r.lb.close();
  });

  it('device/vsock/4: tx is processed while rx has no buffers, until the held replies are exhausted; then it waits for rx', T, async () => {
    const r = await rig({}, 0);
    const sends: Promise<number>[] = [];
    let used = 0;
    for (let i = 0; i < 100; i++) sends.push(r.guest.send({ op: VsockOp.RW, srcPort: 3000 + i, dstPort: 1234 }).then((n) => (used++, n)));
    // The first 64 are answered (their RSTs held by the device); the rest wait.
    await Promise.all(sends.slice(0, 64));
    await new Promise((res) => setImmediate(res));
    assert.equal(used, 64);
    assert.equal(r.guest.packets.length, 0);
    r.guest.postRx(16);
    await Promise.all(sends);
    const ports = new Set<number>();
    for (let i = 0; i < 100; i++) ports.add((await r.guest.next()).dstPort);
    assert.equal(ports.size, 100, 'every packet got its RST, none lost');
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('device reset closes every host side; the device serves again after re-initialization', T, async () => {
    const r = await rig();
    const a = await open(r, 1);
    const b = await open(r, 2);
    await r.lb.close();
    assert.ok(a.closed && b.closed);
    assert.equal(r.device.connections, 0);
    const lb2 = await createLoopback(r.device);
    const vs = new VsockDriver(lb2.context);
    const s = await vs.connect(1234);
    await s.send(new Uint8Array([1, 2, 3]));
    await r.accepted.at(-1)!.until((c) => c.data.length === 3);
    vs.detach();
    await lb2.close();
  });

  it('driver/vsock/10, driver/vsock/11, driver/vsock/12: TRANSPORT_RESET ends connections, the driver re-reads guest_cid, listeners stay', T, async () => {
    const backend = new MemoryVsockBackend();
    const accepted: MemoryVsockConnection[] = [];
    backend.listen(1234, (c) => accepted.push(c));
    const device = new VsockDevice({ guestCid: CID, backend });
    const lb = await createLoopback(device);
    const vs = new VsockDriver(lb.context);
    assert.equal(vs.guestCid, CID);
    vs.listen(7000, () => undefined);
    const s = await vs.connect(1234);
    assert.ok(device.transportReset(CID + 10));
    await s.until(() => s.state === 'closed');
    assert.equal(s.closeReason, 'transport reset');
    assert.ok(accepted[0]!.closed, 'the host side was closed');
    assert.equal(vs.guestCid, CID + 10, 'guest_cid fetched again');
    assert.equal(vs.transportResets, 1);
    // The listener works with the new CID.
    const hc = await backend.connect(7000);
    hc.hostSend(new Uint8Array([9]));
    const s2 = await vs.connect(1234);
    await s2.send(new Uint8Array([4]));
    await accepted[1]!.until((c) => c.data.length === 1);
    vs.detach();
    await lb.close();
  });

  it('fuzz: arbitrary tx packets never throw, never need a reset, and keep the table bounded', T, async () => {
    const r = await rig({ maxConnections: 4, bufAlloc: 512, maxPayload: 256 });
    const ops = fc.record({
      op: fc.integer({ min: 0, max: 9 }),
      type: fc.constantFrom(1, 1, 1, 2, 0),
      srcPort: fc.integer({ min: 1, max: 6 }),
      dstPort: fc.constantFrom(1234, 1234, 9),
      flags: fc.integer({ min: 0, max: 7 }),
      bufAlloc: fc.integer({ min: 0, max: 4096 }),
      fwdCnt: fc.integer({ min: 0, max: 0xffff_ffff }),
      payload: fc.integer({ min: 0, max: 600 }),
      lenDelta: fc.integer({ min: -5, max: 5 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(ops, { maxLength: 30 }), async (list) => {
        for (const p of list) {
          await r.guest.send({ ...p, len: Math.max(0, p.payload + p.lenDelta) }, new Uint8Array(p.payload));
          for (const c of r.accepted) if (c.peer && !c.closed && c.data.length % 3 === 0) c.hostSend(new Uint8Array(100));
        }
        assert.ok(r.device.connections <= 4);
        assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
        r.guest.packets.length = 0;
      }),
      { numRuns: 60 },
    );
    await r.lb.close();
  });
});
