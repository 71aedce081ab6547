/**
 * The minimal peer drivers (NetClient, FsClient) over a recording fake DriverContext: the bytes
 * they put on each queue, the queue each request goes to, and how they take completions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import type { DriverContext } from '../../driver/types.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, Segment } from '../../queue/types.js';
import { F } from '../../spec/features.js';
import { FS_HIPRIO_QUEUE, FS_REQUEST_QUEUE, FuseInHeader, FuseOpcode, FuseOutHeader } from '../../spec/fs.js';
import { NET_RX_QUEUE, NET_TX_QUEUE, NetHdr } from '../../spec/net.js';
import { FsClient, FuseError } from './fs-client.js';
import { NET_RX_BUFFER, NetClient, ethernetFrame } from './net-client.js';

interface Added {
  out: Segment[];
  inn: Segment[];
  token: number;
}

class FakeQueue implements DriverQueue<number> {
  readonly packed = false;
  readonly added: Added[] = [];
  private readonly used: [number, number][] = [];
  lastUsedLen = 0;
  constructor(readonly size: number) {}
  get freeCount(): number {
    return this.size - this.added.length;
  }
  add(out: readonly Segment[], inn: readonly Segment[], token: number): boolean {
    if (this.added.length >= this.size) return false;
    this.added.push({ out: [...out], inn: [...inn], token });
    return true;
  }
  kick(): boolean {
    return true;
  }
  notificationData(): number {
    return 0;
  }
  takeUsed(): number | undefined {
    const u = this.used.shift();
    if (!u) return undefined;
    this.lastUsedLen = u[1];
    return u[0];
  }
  disableInterrupts(): void {}
  enableInterrupts(): boolean {
    return false;
  }
  /** The device side: completes the oldest added buffer with `len` bytes written. */
  complete(len: number): Added {
    const a = this.added.shift();
    assert.ok(a, 'nothing to complete');
    this.used.push([a.token, len]);
    return a;
  }
}

class FakeContext implements DriverContext {
  readonly memory = new GuestMemory([{ guestBase: 0x1000, bytes: new Uint8Array(1 << 20) }]);
  readonly dma = new DmaAllocator(0x1000, 1 << 20);
  readonly littleEndian = true;
  readonly queues: FakeQueue[];
  readonly kicks: number[] = [];
  readonly configWrites: number[] = [];
  private readonly cbs: (() => void)[] = [];
  constructor(
    readonly features: bigint,
    readonly numQueues: number,
  ) {
    this.queues = Array.from({ length: numQueues }, () => new FakeQueue(8));
  }
  queue(index: number): DriverQueue<number> {
    return this.queues[index]!;
  }
  kick(index: number): void {
    this.kicks.push(index);
  }
  onUsed(index: number, cb: () => void): void {
    this.cbs[index] = cb;
  }
  onConfigChange(): void {}
  readConfig(_offset: number, len: number): Uint8Array {
    return new Uint8Array(len);
  }
  writeConfig(offset: number): void {
    this.configWrites.push(offset);
  }
  interrupt(index: number): void {
    this.cbs[index]?.();
  }
  bytes(s: Segment): Uint8Array {
    const b = new Uint8Array(s.len);
    this.memory.read(s.addr, b);
    return b;
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('NetClient', () => {
  it('driver/net/14, driver/net/15, driver/net/16: a transmitted frame follows a 12-byte all-zero header, device-readable only', async () => {
    const ctx = new FakeContext(F.VERSION_1, 2);
    const net = new NetClient(ctx);
    const frame = ethernetFrame(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), net.address, 0x88b5, Uint8Array.of(1, 2, 3));
    assert.equal(frame.length, 60, 'padded to the minimum frame');
    const sent = net.send(frame);
    const tx = ctx.queues[NET_TX_QUEUE]!;
    assert.equal(tx.added.length, 1);
    assert.deepEqual(ctx.kicks, [NET_TX_QUEUE]);
    const a = tx.added[0]!;
    assert.equal(a.inn.length, 0);
    const bytes = ctx.bytes(a.out[0]!);
    assert.equal(bytes.length, NetHdr.SIZE + 60);
    assert.deepEqual(bytes.subarray(0, NetHdr.SIZE), new Uint8Array(NetHdr.SIZE), 'flags, gso_type, num_buffers zero');
    assert.deepEqual(bytes.subarray(NetHdr.SIZE), frame);
    tx.complete(0);
    ctx.interrupt(NET_TX_QUEUE);
    await sent;
    assert.equal(ctx.dma.freeBytes, 1 << 20, 'buffer freed');
  });

  it('driver/net/4: without VIRTIO_NET_F_MAC the address is locally administered', () => {
    const net = new NetClient(new FakeContext(F.VERSION_1, 2));
    assert.equal(net.mac, null);
    assert.equal(net.address[0]! & 0x02, 0x02);
    assert.throws(() => new NetClient(new FakeContext(F.VERSION_1, 2), { address: Uint8Array.of(0, 1, 2, 3, 4, 5) }));
  });

  it('driver/net/44: receive buffers are device-writable and at least 1526 bytes; the header is stripped', async () => {
    const ctx = new FakeContext(F.VERSION_1, 2);
    const net = new NetClient(ctx);
    const got = net.receive(3, 2, 5000);
    const rx = ctx.queues[NET_RX_QUEUE]!;
    assert.equal(rx.added.length, 2, 'depth 2 posted');
    for (const a of rx.added) {
      assert.equal(a.out.length, 0);
      assert.ok(a.inn[0]!.len >= 1526 && a.inn[0]!.len === NET_RX_BUFFER);
    }
    for (let i = 0; i < 3; i++) {
      const a = rx.added[0]!;
      ctx.memory.fill(a.inn[0]!.addr, NetHdr.SIZE + 60, 0x10 + i);
      rx.complete(NetHdr.SIZE + 60);
      ctx.interrupt(NET_RX_QUEUE);
      await flush();
    }
    const frames = await got;
    assert.deepEqual(
      frames.map((f) => [f.length, f[0]]),
      [
        [60, 0x10],
        [60, 0x11],
        [60, 0x12],
      ],
    );
  });
});

describe('FsClient', () => {
  function reply(ctx: FakeContext, q: FakeQueue, error: number, body: Uint8Array = new Uint8Array(0)): void {
    const a = q.added[0]!;
    const req = ctx.bytes(a.out[0]!);
    const unique = new DataView(req.buffer).getBigUint64(FuseInHeader.UNIQUE, true);
    const out = new Uint8Array(FuseOutHeader.SIZE + body.length);
    const v = new DataView(out.buffer);
    v.setUint32(FuseOutHeader.LEN, out.length, true);
    v.setInt32(FuseOutHeader.ERROR, error, true);
    v.setBigUint64(FuseOutHeader.UNIQUE, unique, true);
    out.set(body, FuseOutHeader.SIZE);
    ctx.memory.write(a.inn[0]!.addr, out);
    q.complete(out.length);
    ctx.interrupt(ctx.queues.indexOf(q));
  }

  it('driver/fs/3, driver/fs/4: normal requests go to the request queue, FORGET only to hiprio', async () => {
    const ctx = new FakeContext(F.VERSION_1, 2);
    const fs = new FsClient(ctx);
    const req = ctx.queues[FS_REQUEST_QUEUE]!;
    const hi = ctx.queues[FS_HIPRIO_QUEUE]!;
    const lookup = fs.lookup(1n, 'x');
    assert.equal(req.added.length, 1);
    assert.equal(hi.added.length, 0);
    const sent = ctx.bytes(req.added[0]!.out[0]!);
    const dv = new DataView(sent.buffer);
    assert.equal(dv.getUint32(FuseInHeader.OPCODE, true), FuseOpcode.LOOKUP);
    assert.equal(dv.getUint32(FuseInHeader.LEN, true), sent.length);
    assert.equal(new TextDecoder().decode(sent.subarray(FuseInHeader.SIZE)), 'x\0');
    reply(ctx, req, -2);
    await assert.rejects(lookup, (e: unknown) => e instanceof FuseError && e.errno === 2);
    const forget = fs.forget(5n, 1);
    assert.equal(hi.added.length, 1);
    assert.equal(req.added.length, 0);
    assert.equal(hi.added[0]!.inn.length, 0, 'FORGET has no reply');
    assert.equal(new DataView(ctx.bytes(hi.added[0]!.out[0]!).buffer).getUint32(FuseInHeader.OPCODE, true), FuseOpcode.FORGET);
    hi.complete(0);
    ctx.interrupt(FS_HIPRIO_QUEUE);
    await forget;
    assert.deepEqual(ctx.configWrites, [], 'driver/fs/1: no config writes');
  });

  it('a reply carrying another request\'s unique is refused', async () => {
    const ctx = new FakeContext(F.VERSION_1, 2);
    const fs = new FsClient(ctx);
    const req = ctx.queues[FS_REQUEST_QUEUE]!;
    const p = fs.getattr(1n);
    const a = req.added[0]!;
    const out = new Uint8Array(FuseOutHeader.SIZE);
    new DataView(out.buffer).setUint32(FuseOutHeader.LEN, out.length, true);
    new DataView(out.buffer).setBigUint64(FuseOutHeader.UNIQUE, 999n, true);
    ctx.memory.write(a.inn[0]!.addr, out);
    req.complete(out.length);
    ctx.interrupt(FS_REQUEST_QUEUE);
    await assert.rejects(p, /another request/);
  });
});
