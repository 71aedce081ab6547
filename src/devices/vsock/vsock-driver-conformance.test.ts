/**
 * The vsock driver against a scripted device: the test writes the device's packets by hand and
 * reads every packet the driver sends, so what the driver puts in its headers is observed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { VSOCK_CONFIG_LAYOUT, VSOCK_HOST_CID, VSOCK_RXQ, VSOCK_TXQ, VsockF, VsockHdr, VsockOp, VsockType } from '../../spec/vsock.js';
import { createLoopback } from '../../testing/loopback.js';
import { VsockHeader } from './vsock-header.js';
import { VsockDriver } from './vsock-driver.js';

const T = { timeout: 20_000 };
const CID = 11;

interface Sent {
  readonly h: VsockHeader;
  readonly payload: Uint8Array;
}

class ScriptedVsockDevice implements VirtioDevice {
  readonly deviceId = DeviceId.VSOCK;
  constructor(readonly offeredFeatures: bigint = VsockF.STREAM | F.VERSION_1) {
    this.server = new QueueServer({
      name: 'scripted-vsock',
      numQueues: 3,
      handler: (i) =>
        i === VSOCK_RXQ
          ? (req): void => void this.rx.push(req)
          : i === VSOCK_TXQ
            ? (req): number | void => this.onTx(req)
            : (): void => undefined,
    });
  }
  readonly queueMaxSizes = [64, 64, 64];
  readonly configSize = 8;
  /** Hold tx buffers instead of completing them (a full tx queue). */
  holdTx = false;
  readonly sent: Sent[] = [];
  readonly heldTx: QueueRequest[] = [];
  private readonly rx: QueueRequest[] = [];
  private waiters: (() => void)[] = [];
  private readonly server: QueueServer;
  private le = true;

  readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    encodeConfig(VSOCK_CONFIG_LAYOUT, { guest_cid: CID }, features, offset, dst, le);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.server.activate(ctx);
  }
  onQueueNotify(i: number): void {
    this.server.onQueueNotify(i);
  }
  reset(): void {
    this.server.reset();
  }

  /** Puts a packet from the host into the next rx buffer. */
  inject(f: Partial<Pick<VsockHeader, 'srcPort' | 'dstPort' | 'op' | 'type' | 'flags' | 'bufAlloc' | 'fwdCnt'>>, payload = new Uint8Array(0)): void {
    const req = this.rx.shift();
    assert.ok(req, 'the driver keeps rx buffers posted');
    const h = new VsockHeader().set(VSOCK_HOST_CID, f.srcPort ?? 0, CID, f.dstPort ?? 0, f.op ?? 0, payload.length, f.flags ?? 0, f.bufAlloc ?? 65536, f.fwdCnt ?? 0);
    h.type = f.type ?? VsockType.STREAM;
    const w = new ChainCursor(true).reset(req.chain);
    let n = w.write(h.encode(this.le));
    n += w.write(payload);
    this.server.complete(req, n);
  }

  /** The next packet the driver sends. */
  async next(): Promise<Sent> {
    while (this.sent.length === 0) await new Promise<void>((r) => this.waiters.push(r));
    return this.sent.shift()!;
  }

  private onTx(req: QueueRequest): number | void {
    const all = new Uint8Array(req.chain.readableBytes);
    new ChainCursor(false).reset(req.chain).read(all);
    const h = new VsockHeader();
    h.bytes.set(all.subarray(0, VsockHdr.SIZE));
    h.decode(this.le);
    this.sent.push({ h, payload: all.slice(VsockHdr.SIZE) });
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
    if (this.holdTx) {
      this.heldTx.push(req);
      return;
    }
    return 0;
  }
}

describe('vsock driver conformance (scripted device)', () => {
  it('driver/vsock/8: a packet of unknown type gets RST from the driver', T, async () => {
    const dev = new ScriptedVsockDevice();
    const lb = await createLoopback(dev);
    const vs = new VsockDriver(lb.context);
    vs.listen(100, () => assert.fail('no connection for an unknown type'));
    dev.inject({ op: VsockOp.REQUEST, type: 9, srcPort: 7, dstPort: 100 });
    const p = await dev.next();
    assert.deepEqual([p.h.op, p.h.srcCid, p.h.dstCid, p.h.srcPort, p.h.dstPort], [VsockOp.RST, CID, VSOCK_HOST_CID, 100, 7]);
    assert.equal(vs.openSockets, 0);
    vs.detach();
    await lb.close();
  });

  it('driver/vsock/2: with no vsock feature bit offered (so none negotiated) the driver still does stream sockets', T, async () => {
    const dev = new ScriptedVsockDevice(F.VERSION_1);
    const lb = await createLoopback(dev);
    assert.equal(lb.driver.features & (VsockF.STREAM | VsockF.SEQPACKET | VsockF.NO_IMPLIED_STREAM), 0n);
    const vs = new VsockDriver(lb.context);
    const connecting = vs.connect(300);
    const req = await dev.next();
    assert.deepEqual([req.h.op, req.h.type, req.h.dstPort], [VsockOp.REQUEST, VsockType.STREAM, 300]);
    dev.inject({ op: VsockOp.RESPONSE, srcPort: 300, dstPort: req.h.srcPort });
    const s = await connecting;
    assert.equal(s.state, 'open');
    vs.detach();
    await lb.close();
  });

  it('driver/vsock/6, driver/vsock/7: every packet of a stream carries the driver buf_alloc and fwd_cnt, from guest_cid', T, async () => {
    const dev = new ScriptedVsockDevice();
    const lb = await createLoopback(dev);
    const vs = new VsockDriver(lb.context, { bufAlloc: 32768 });
    const accepted = new Promise<import('./vsock-socket.js').VsockSocket>((r) => vs.listen(100, r));
    dev.inject({ op: VsockOp.REQUEST, srcPort: 7, dstPort: 100 });
    const resp = await dev.next();
    assert.deepEqual([resp.h.op, resp.h.srcCid, resp.h.bufAlloc, resp.h.fwdCnt], [VsockOp.RESPONSE, CID, 32768, 0]);
    const s = await accepted;
    dev.inject({ op: VsockOp.RW, srcPort: 7, dstPort: 100 }, new Uint8Array(10).fill(1));
    assert.equal((await s.recv())?.length, 10);
    await s.send(new Uint8Array([1, 2, 3]));
    const rw = await dev.next();
    assert.deepEqual([rw.h.op, rw.h.len, rw.h.bufAlloc, rw.h.fwdCnt], [VsockOp.RW, 3, 32768, 10], 'fwd_cnt counts the bytes read');
    assert.deepEqual([...rw.payload], [1, 2, 3]);
    dev.inject({ op: VsockOp.CREDIT_REQUEST, srcPort: 7, dstPort: 100 });
    const cu = await dev.next();
    assert.deepEqual([cu.h.op, cu.h.bufAlloc, cu.h.fwdCnt], [VsockOp.CREDIT_UPDATE, 32768, 10]);
    vs.detach();
    await lb.close();
  });

  it('driver/vsock/4: rx is processed while tx buffers are not returned', T, async () => {
    const dev = new ScriptedVsockDevice();
    const lb = await createLoopback(dev);
    const vs = new VsockDriver(lb.context);
    const accepted = new Promise<import('./vsock-socket.js').VsockSocket>((r) => vs.listen(100, r));
    dev.inject({ op: VsockOp.REQUEST, srcPort: 7, dstPort: 100 });
    await dev.next();
    const s = await accepted;
    dev.holdTx = true;
    const sending = s.send(new Uint8Array(100)); // its tx buffer is not returned
    sending.catch(() => undefined);
    await dev.next();
    // More packets than rx buffers: each is read (and its buffer reposted) with tx still held.
    for (let i = 0; i < 40; i++) {
      dev.inject({ op: VsockOp.RW, srcPort: 7, dstPort: 100 }, new Uint8Array([i]));
      assert.deepEqual([...((await s.recv()) ?? [])], [i]);
    }
    assert.equal(dev.heldTx.length, 1, 'the tx buffer is still held');
    vs.detach();
    await lb.close();
  });
});
