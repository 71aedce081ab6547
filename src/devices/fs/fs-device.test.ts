/**
 * FsDevice (5.11) through rings: its configuration, the FsClient driver over split and packed
 * rings, the hiprio queue served apart from the request queues, and chains the device cannot
 * answer (unmapped buffers, no room for a reply header) returned without a crash or a reset.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { FsConfig, FuseOpcode } from '../../spec/fs.js';
import { FsClient } from '../../vhost-user/peers/fs-client.js';
import { createTestPair } from '../blk/test-pair.js';
import { FsDevice, type FsDeviceOptions } from './fs-device.js';
import { Raw, fuseRequest } from './fs-test-support.js';

const T = { timeout: 20_000 };
const dirs: string[] = [];
const devices: FsDevice[] = [];

function shareDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vts-fsdev-'));
  dirs.push(d);
  writeFileSync(join(d, 'a.txt'), 'alpha');
  return d;
}

function setup(opts: Partial<FsDeviceOptions> = {}, packed = false) {
  const dir = shareDir();
  const device = new FsDevice({ sharedDir: dir, tag: 't', queueSize: 64, ...opts });
  devices.push(device);
  const pair = createTestPair(device, { packed });
  return { dir, device, pair };
}

describe('FsDevice', T, () => {
  after(() => {
    for (const d of devices) d.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('device/fs/1: num_request_queues is 1 or more; the tag fills tag[36]; hiprio + request queues; no notification feature', () => {
    const dir = shareDir();
    for (const n of [1, 3]) {
      const d = new FsDevice({ sharedDir: dir, tag: 'my-tag', numRequestQueues: n });
      devices.push(d);
      assert.equal(d.deviceId, DeviceId.FS);
      assert.equal(d.configSize, FsConfig.SIZE);
      assert.equal(d.queueMaxSizes.length, 1 + n, 'hiprio and the request queues');
      const cfg = Buffer.alloc(FsConfig.SIZE, 0xff);
      d.readConfig(0, cfg, F.VERSION_1, true);
      assert.equal(cfg.readUInt32LE(FsConfig.NUM_REQUEST_QUEUES), n);
      assert.equal(cfg.subarray(0, 6).toString(), 'my-tag');
      assert.ok(cfg.subarray(6, 36).every((b) => b === 0), 'the rest of the tag is NUL');
      assert.equal(cfg.readUInt32LE(FsConfig.NOTIFY_BUF_SIZE), 0, 'notify_buf_size absent without VIRTIO_FS_F_NOTIFICATION');
      assert.equal(d.offeredFeatures & 1n, 0n, 'VIRTIO_FS_F_NOTIFICATION not offered (no notification queue)');
      const be = Buffer.alloc(4);
      d.readConfig(FsConfig.NUM_REQUEST_QUEUES, be, 0n, false);
      assert.equal(be.readUInt32BE(0), n, 'legacy big-endian config');
      // driver/fs/1 forbids driver writes; one changes nothing.
      d.writeConfig();
      d.readConfig(0, cfg, F.VERSION_1, true);
      assert.equal(cfg.readUInt32LE(FsConfig.NUM_REQUEST_QUEUES), n);
    }
    const full = new FsDevice({ sharedDir: dir, tag: 'x'.repeat(36) });
    devices.push(full);
    const c = Buffer.alloc(36);
    full.readConfig(0, c, F.VERSION_1, true);
    assert.equal(c.toString(), 'x'.repeat(36), 'a 36-byte tag has no terminator');
    assert.throws(() => new FsDevice({ sharedDir: dir, tag: 'x'.repeat(37) }), /tag/);
    assert.throws(() => new FsDevice({ sharedDir: dir, tag: '' }), /tag/);
    assert.throws(() => new FsDevice({ sharedDir: dir, tag: 't', numRequestQueues: 0 }), /numRequestQueues/);
    assert.throws(() => new FsDevice({ sharedDir: join(dir, 'nope'), tag: 't' }), /shared directory/);
  });

  for (const packed of [false, true]) {
    it(`the FsClient driver: INIT, LOOKUP, READ, CREATE + WRITE, READDIR, FORGET (${packed ? 'packed' : 'split'})`, async () => {
      const { dir, device, pair } = setup({}, packed);
      const fs = new FsClient(pair.ctx);
      await fs.init();
      assert.equal(fs.minor, 31);
      const e = await fs.lookup(1n, 'a.txt');
      const fh = await fs.open(e.nodeid, 0);
      assert.equal(Buffer.from(await fs.read(e.nodeid, fh, 0, 100)).toString(), 'alpha');
      await fs.release(e.nodeid, fh);
      const c = await fs.create(1n, 'b.txt', 0o644, 2);
      await fs.write(c.entry.nodeid, c.fh, 0, Buffer.from('beta'));
      await fs.release(c.entry.nodeid, c.fh);
      assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'beta');
      assert.deepEqual((await fs.readdir(1n)).map((x) => x.name).sort(), ['.', '..', 'a.txt', 'b.txt']);
      await fs.forget(e.nodeid, 1);
      assert.equal(device.host.inodeCount, 2, 'a.txt forgotten, b.txt still looked up');
      assert.deepEqual(pair.resets, []);
    });
  }

  it('device/fs/3: the hiprio queue is served while a request queue has work waiting', async () => {
    const { device, pair } = setup();
    const raw = new Raw(pair.ctx);
    await raw.init();
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.LOOKUP, 1, Buffer.from('a.txt\0')), [16 + 128]), 16 + 128);
    assert.equal(device.host.inodeCount, 2);
    const nodeid = 2;
    // A GETATTR sits in the request queue, not yet noticed by the device.
    const pending = raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), [16 + 104], { kick: false });
    const forget = Buffer.alloc(8);
    forget.writeBigUInt64LE(1n);
    assert.equal(await raw.add(0, fuseRequest(FuseOpcode.FORGET, nodeid, forget), []), 0, 'FORGET returned without a reply');
    assert.equal(device.host.inodeCount, 1, 'the FORGET took effect before the waiting request was served');
    pair.ctx.kick(1);
    assert.equal(await pending, 16 + 104, 'the request queue is served when notified');
  });

  it('a chain with an unmapped buffer or no room for a reply header: returned with nothing written, no reset', async () => {
    const { device, pair } = setup();
    const raw = new Raw(pair.ctx);
    await raw.init();
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), [16], { bogusIn: true }), 0);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), [8]), 0);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), []), 0);
    assert.equal(device.malformed, 3);
    // A reply that does not fit (GETATTR needs 104 bytes): an error header, not a partial reply.
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), [40]), 16);
    assert.deepEqual(pair.resets, []);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.GETATTR, 1, new Uint8Array(16)), [16 + 104]), 16 + 104, 'still serving');
  });

  it('requests and replies split as a Linux guest splits them, at every alignment of each buffer: the same replies as from one aligned buffer', async () => {
    const { dir, pair } = setup();
    const long = 'L'.repeat(255); // NAME_MAX: a 256-byte argument, a 296-byte request in one buffer
    writeFileSync(join(dir, long), 'long');
    const raw = new Raw(pair.ctx);
    await raw.init();
    const mem = pair.ctx.memory;
    /** The reply of a chain of `outs` and reply buffers `ins`, each buffer skewed; nothing written around or past the reply. */
    const ask = async (outs: Uint8Array[], ins: number[], skew: number[]): Promise<Buffer> => {
      const r = raw.addMany(1, outs, ins, { skew, kick: false });
      // Each reply buffer and the 4 bytes on either side (its own allocation's) filled first.
      for (const [i, a] of r.inAddrs.entries()) mem.write(a - 4, Buffer.alloc(ins[i]! + 8, 0xa5));
      pair.ctx.kick(1);
      const n = await r.done;
      const parts: Buffer[] = [];
      for (const [i, a] of r.inAddrs.entries()) {
        const b = Buffer.alloc(ins[i]! + 8);
        mem.read(a - 4, b);
        assert.ok(b.subarray(0, 4).every((x) => x === 0xa5) && b.subarray(4 + ins[i]!).every((x) => x === 0xa5), 'nothing written outside the reply buffers');
        parts.push(b.subarray(4, 4 + ins[i]!));
      }
      const all = Buffer.concat(parts);
      assert.ok(all.subarray(n).every((x) => x === 0xa5), 'nothing written past the used length');
      return all.subarray(0, n);
    };
    const cases = [
      { op: FuseOpcode.LOOKUP, nodeid: 1, args: Buffer.from('a.txt\0'), out: [16, 128] },
      { op: FuseOpcode.LOOKUP, nodeid: 1, args: Buffer.from(`${long}\0`), out: [16, 128] },
      { op: FuseOpcode.GETATTR, nodeid: 1, args: Buffer.alloc(16), out: [16, 104] },
    ];
    for (const c of cases) {
      const whole = Buffer.from(fuseRequest(c.op, c.nodeid, c.args));
      const expect = await ask([whole], [c.out[0]! + c.out[1]!], [0, 0]);
      assert.equal(expect.readInt32LE(4), 0, 'the reference request succeeds');
      assert.equal(expect.length, c.out[0]! + c.out[1]!);
      // The header and the arguments in two buffers, the reply's header and body in two (as
      // Linux's virtio_fs sends them), each at any of the four offsets from a word boundary.
      for (let k = 0; k < 256; k++) {
        const skew = [k & 3, (k >> 2) & 3, (k >> 4) & 3, (k >> 6) & 3];
        const got = await ask([whole.subarray(0, 40), whole.subarray(40)], c.out, skew);
        assert.deepEqual(got, expect, `opcode ${c.op}, ${c.args.length}-byte argument, buffers skewed ${skew.join('/')}`);
      }
      for (let k = 1; k < 4; k++) assert.deepEqual(await ask([whole], [c.out[0]! + c.out[1]!], [k, 4 - k]), expect, 'one buffer each, off a word boundary');
    }
  });

  it('zero-copy READ and WRITE: data moves between the file and guest memory (a READ reply over three buffers); a WRITE whose size disagrees with its chain is EINVAL and writes nothing', async () => {
    const { dir, device, pair } = setup();
    const raw = new Raw(pair.ctx);
    await raw.init();
    // CREATE by hand (a second driver on the queue would take its used-buffer callback): a fresh
    // device hands out nodeid 2 and fh 1.
    const createIn = Buffer.concat([Buffer.from(new Uint32Array([2 | 0o100, 0o644, 0, 0]).buffer), Buffer.from('zc.bin\0')]);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.CREATE, 1, createIn), [16 + 128 + 16]), 16 + 128 + 16);
    assert.equal(device.host.handle(1).nodeid, 2);
    const c = { fh: 1, entry: { nodeid: 2 } };
    const u64 = (v: bigint | number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(v));
      return b;
    };
    const writeIn = (size: number): Buffer => Buffer.concat([u64(c.fh), u64(0), Buffer.from(new Uint32Array([size, 0]).buffer), Buffer.alloc(16)]);
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    // 300,000 bytes of data, written from guest memory straight to the file.
    const req = Buffer.from(fuseRequest(FuseOpcode.WRITE, Number(c.entry.nodeid), Buffer.concat([writeIn(data.length), data])));
    assert.equal(await raw.add(1, req, [16 + 8]), 16 + 8);
    assert.deepEqual(readFileSync(join(dir, 'zc.bin')), data);
    // A size one byte larger than the data carried: EINVAL, the file is unchanged.
    const bad = Buffer.from(fuseRequest(FuseOpcode.WRITE, Number(c.entry.nodeid), Buffer.concat([writeIn(5001), Buffer.alloc(5000, 0xee)])));
    const out = await raw.add(1, bad, [16 + 8]);
    assert.equal(out, 16, 'an error header only');
    assert.deepEqual(readFileSync(join(dir, 'zc.bin')), data, 'nothing written');
    // READ into a reply area split over three buffers (the header and data land across them).
    const readIn = Buffer.concat([u64(c.fh), u64(1000), Buffer.from(new Uint32Array([200_000, 0]).buffer), Buffer.alloc(16)]);
    const n = await raw.add(1, fuseRequest(FuseOpcode.READ, Number(c.entry.nodeid), readIn), [10, 100_000, 100_006]);
    assert.equal(n, 16 + 200_000);
    assert.equal(device.malformed, 0);
  });

  it('READ and WRITE scattered over 1,100 guest buffers each: one preadv/pwritev per 1,024 spans, the data in order', async () => {
    const dir = shareDir();
    const device = new FsDevice({ sharedDir: dir, tag: 't', queueSize: 2048 });
    devices.push(device);
    const pair = createTestPair(device, { queueSize: 2048, memSize: 16 << 20 });
    const raw = new Raw(pair.ctx);
    await raw.init();
    const createIn = Buffer.concat([Buffer.from(new Uint32Array([2 | 0o100, 0o644, 0, 0]).buffer), Buffer.from('scatter.bin\0')]);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.CREATE, 1, createIn), [16 + 128 + 16]), 16 + 128 + 16);
    const SEG = 900;
    const N = 1100;
    const data = Buffer.alloc(SEG * N);
    for (let i = 0; i < data.length; i++) data[i] = (i * 29 + (i >> 8)) & 0xff;
    const io = (size: number, offset: number): Buffer => {
      const b = Buffer.alloc(40);
      b.writeBigUInt64LE(1n, 0); // fh 1
      b.writeBigUInt64LE(BigInt(offset), 8);
      b.writeUInt32LE(size, 16);
      return b;
    };
    const head = Buffer.from(fuseRequest(FuseOpcode.WRITE, 2, io(data.length, 0)));
    head.writeUInt32LE(head.length + data.length, 0);
    const segs = Array.from({ length: N }, (_, i) => data.subarray(i * SEG, (i + 1) * SEG));
    const w = raw.addMany(1, [head, ...segs], [16 + 8]);
    assert.equal(await w.done, 16 + 8);
    assert.deepEqual(readFileSync(join(dir, 'scatter.bin')), data, 'the file is the data, in span order');
    const r = raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, io(data.length, 0))], [16, ...Array.from({ length: N }, () => SEG)]);
    assert.equal(await r.done, 16 + data.length);
    const back = Buffer.alloc(data.length);
    r.inAddrs.slice(1).forEach((addr, i) => pair.ctx.memory.read(addr, back, i * SEG, SEG));
    assert.deepEqual(back, data, 'the READ reply is the file, in span order');
  });

  it('READ and WRITE over buffers in two guest memory regions, their order changing between requests: each byte lands where its request put its buffer', async () => {
    const { dir, pair } = setup();
    const raw = new Raw(pair.ctx);
    await raw.init();
    const createIn = Buffer.concat([Buffer.from(new Uint32Array([2 | 0o100, 0o644, 0, 0]).buffer), Buffer.from('regions.bin\0')]);
    assert.equal(await raw.add(1, fuseRequest(FuseOpcode.CREATE, 1, createIn), [16 + 128 + 16]), 16 + 128 + 16);
    // The one 8 MiB region becomes two (the same bytes): guest [0, 4 MiB) and [4 MiB, 8 MiB).
    const MiB = 1 << 20;
    const all = pair.memory.bytesOf(0);
    pair.memory.replaceRegions([
      { guestBase: 0, bytes: all.subarray(0, 4 * MiB) },
      { guestBase: 4 * MiB, bytes: all.subarray(4 * MiB) },
    ]);
    const A = 3 * MiB + 512 * 1024; // region 0, above what the test's allocator hands out
    const B = 6 * MiB; // region 1
    const SEG = 8192;
    let token = 1000;
    const chain = (outs: readonly { addr: number; len: number }[], ins: readonly { addr: number; len: number }[]): Promise<number> => {
      const t = token++;
      const done = new Promise<number>((resolve) => {
        pair.ctx.onUsed(1, () => {
          const q = pair.ctx.queue(1);
          do {
            for (let x = q.takeUsed(); x !== undefined; x = q.takeUsed()) if (x === t) resolve(q.lastUsedLen);
          } while (q.enableInterrupts());
        });
      });
      assert.ok(pair.ctx.queue(1).add(outs, ins, t));
      pair.ctx.kick(1);
      return done;
    };
    const io = (size: number): Buffer => {
      const b = Buffer.alloc(40);
      b.writeBigUInt64LE(1n, 0); // fh 1
      b.writeUInt32LE(size, 16);
      return b;
    };
    const data = Buffer.alloc(2 * SEG);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    // WRITE: its data in region 0 then region 1.
    const head = Buffer.from(fuseRequest(FuseOpcode.WRITE, 2, io(data.length)));
    head.writeUInt32LE(head.length + data.length, 0);
    const headAt = pair.ctx.dma.alloc(head.length);
    pair.memory.write(headAt, head);
    pair.memory.write(A, data.subarray(0, SEG));
    pair.memory.write(B, data.subarray(SEG));
    const replyAt = pair.ctx.dma.alloc(64);
    assert.equal(await chain([{ addr: headAt, len: head.length }, { addr: A, len: SEG }, { addr: B, len: SEG }], [{ addr: replyAt, len: 16 + 8 }]), 16 + 8);
    assert.deepEqual(readFileSync(join(dir, 'regions.bin')), data, 'the file is the data, in buffer order');
    const readAt = pair.ctx.dma.alloc(64);
    pair.memory.write(readAt, fuseRequest(FuseOpcode.READ, 2, io(data.length)));
    const readReq = { addr: readAt, len: 80 };
    // READ into region 1 then region 0 (the other order from the WRITE before it).
    pair.memory.fill(A, 2 * SEG, 0);
    pair.memory.fill(B, 2 * SEG, 0);
    assert.equal(await chain([readReq], [{ addr: replyAt, len: 16 }, { addr: B + SEG, len: SEG }, { addr: A + SEG, len: SEG }]), 16 + data.length);
    assert.deepEqual(Buffer.from(pair.memory.slice(B + SEG, SEG)), data.subarray(0, SEG), 'first half in region 1');
    assert.deepEqual(Buffer.from(pair.memory.slice(A + SEG, SEG)), data.subarray(SEG), 'second half in region 0');
    // READ into region 1 only: one view where the request before had two.
    assert.equal(await chain([readReq], [{ addr: replyAt, len: 16 }, { addr: B + 3 * SEG, len: 2 * SEG }]), 16 + data.length);
    assert.deepEqual(Buffer.from(pair.memory.slice(B + 3 * SEG, 2 * SEG)), data, 'the whole file in region 1');
    // And region 0 only again.
    assert.equal(await chain([readReq], [{ addr: replyAt, len: 16 }, { addr: A + 3 * SEG, len: 2 * SEG }]), 16 + data.length);
    assert.deepEqual(Buffer.from(pair.memory.slice(A + 3 * SEG, 2 * SEG)), data, 'the whole file in region 0');
  });

  it('device reset forgets every inode and handle; the driver must INIT again', async () => {
    const { device, pair } = setup();
    const fs = new FsClient(pair.ctx);
    await fs.init();
    const e = await fs.lookup(1n, 'a.txt');
    await fs.open(e.nodeid, 0);
    assert.equal(device.host.handleCount, 1);
    device.reset();
    assert.equal(device.host.handleCount, 0);
    assert.equal(device.host.inodeCount, 1);
    assert.equal(device.fuse.initialized, false);
  });
});
