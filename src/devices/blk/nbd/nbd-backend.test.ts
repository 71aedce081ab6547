/**
 * NbdBackend under a BlkDevice (virtio requests from a driver in process, an NBD fake server
 * below): what each virtio-blk request becomes on the wire, server errors as IOERR, the block
 * size constraints (RMW below the minimum, splitting above the maximum) and the device
 * configuration they set.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlkDevice } from '../blk-device.js';
import { RawDriver, header, pattern, segment } from '../blk-test-support.js';
import { createTestPair } from '../test-pair.js';
import { BLK_WRITE_ZEROES_FLAG_UNMAP, BlkConfig, BlkReqType, BlkStatus } from '../../../spec/blk.js';
import { NbdBackend } from './nbd-backend.js';
import { FakeNbdServer, type FakeServerOptions } from './fake-nbd-server.js';
import { NbdCmd, NbdCmdFlag, NbdFlag } from './nbd-protocol.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virtio-ts-nbdbe-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withDisk(opts: FakeServerOptions, fn: (raw: RawDriver, srv: FakeNbdServer, be: NbdBackend, dev: BlkDevice) => Promise<void>): Promise<void> {
  const path = join(dir, `s${n++}.sock`);
  const srv = new FakeNbdServer(path, { size: 1 << 20, ...opts });
  await srv.listen();
  const be = await NbdBackend.open(`nbd+unix:///?socket=${path}`);
  try {
    const h = be.hints;
    const dev = new BlkDevice(be, { blockSize: h.blockSize, optIoSize: h.optIoSizeBytes / h.blockSize, sizeMax: be.client.maxPayload });
    const pair = createTestPair(dev);
    await fn(new RawDriver(pair.ctx), srv, be, dev);
  } finally {
    await be.close();
    await srv.stop();
  }
}

describe('NbdBackend under a virtio-blk device', { timeout: 30_000 }, () => {
  it('OUT, IN, FLUSH, DISCARD, WRITE_ZEROES (UNMAP=0 sends NO_HOLE, UNMAP=1 does not) become NBD commands', async () => {
    await withDisk({}, async (raw, srv) => {
      const data = pattern(8192, 7);
      assert.equal(await raw.status([header(BlkReqType.OUT, 8), data], [1]), BlkStatus.OK);
      const r = await raw.send([header(BlkReqType.IN, 8)], [8192, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.OK);
      assert.deepEqual(r.ins[0], data);
      assert.deepEqual(srv.data.subarray(4096, 4096 + 8192), data, 'the bytes are on the server');
      assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(64, 8)], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(8, 8, 0)], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(16, 8, BLK_WRITE_ZEROES_FLAG_UNMAP)], [1]), BlkStatus.OK);
      assert.ok(srv.data.subarray(4096, 8192).every((b) => b === 0), 'zeroed');
      const cmds = srv.requests.map((q) => [q.cmd, q.flags]);
      assert.deepEqual(cmds, [
        [NbdCmd.WRITE, 0],
        [NbdCmd.READ, 0],
        [NbdCmd.FLUSH, 0],
        [NbdCmd.TRIM, 0],
        [NbdCmd.WRITE_ZEROES, NbdCmdFlag.NO_HOLE],
        [NbdCmd.WRITE_ZEROES, 0],
      ]);
    });
  });

  it('a server error (EIO) on a read or a write: the virtio request gets IOERR; the next one is served', async () => {
    await withDisk({}, async (raw, srv) => {
      let fail = true;
      srv.hook = (q) => (fail && q.cmd !== NbdCmd.FLUSH ? { kind: 'error', errno: 5, structured: q.cmd === NbdCmd.READ } : { kind: 'normal' });
      assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.IOERR);
      const r = await raw.send([header(BlkReqType.IN, 0)], [512, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.IOERR);
      fail = false;
      assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.OK);
    });
  });

  it('without SEND_FLUSH, TRIM or WRITE_ZEROES: flush is a no-op, discard skipped, zeroes written', async () => {
    await withDisk({ flags: NbdFlag.HAS_FLAGS }, async (raw, srv, be) => {
      assert.equal(be.canUnmap, false);
      srv.data.fill(9, 0, 8192);
      assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(0, 8)], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 8)], [1]), BlkStatus.OK);
      assert.ok(srv.data.subarray(0, 4096).every((b) => b === 0));
      assert.deepEqual(srv.requests.map((q) => q.cmd), [NbdCmd.WRITE]);
    });
  });

  it('a read-only export: VIRTIO_BLK_F_RO, writes get IOERR and never reach the server', async () => {
    await withDisk({ flags: NbdFlag.HAS_FLAGS | NbdFlag.READ_ONLY }, async (raw, srv, be, dev) => {
      assert.equal(be.readOnly, true);
      assert.equal(dev.readOnly, true);
      assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.IOERR);
      assert.equal(srv.requests.length, 0);
    });
  });

  it('block sizes 4096/65536/131072: blk_size 4096, opt_io_size 16 blocks, size_max 128 KiB; an unaligned segment goes read-modify-write; a large request is split', async () => {
    await withDisk({ blockSize: [4096, 65536, 131072] }, async (raw, srv, _be, dev) => {
      const cfg = new Uint8Array(BlkConfig.SIZE);
      dev.readConfig(0, cfg, dev.offeredFeatures, true);
      const v = new DataView(cfg.buffer);
      assert.equal(v.getUint32(BlkConfig.BLK_SIZE, true), 4096);
      assert.equal(v.getUint32(BlkConfig.TOPOLOGY_OPT_IO_SIZE, true), 16);
      assert.equal(v.getUint32(BlkConfig.SIZE_MAX, true), 131072);
      srv.data.fill(0x33, 0, 16384);
      // Two guest segments of 1000 and 7192 bytes at sector 8: neither is a multiple of 4096.
      const data = pattern(8192, 4);
      assert.equal(await raw.status([header(BlkReqType.OUT, 8), data.subarray(0, 1000), data.subarray(1000)], [1]), BlkStatus.OK);
      assert.deepEqual(srv.data.subarray(4096, 12288), data);
      assert.ok(srv.data.subarray(0, 4096).every((b) => b === 0x33) && srv.data.subarray(12288, 16384).every((b) => b === 0x33), 'neighbours intact');
      for (const q of srv.requests) assert.ok(q.offset % 4096 === 0 && q.length % 4096 === 0, `aligned on the wire: ${q.offset}+${q.length}`);
      const r = await raw.send([header(BlkReqType.IN, 8)], [1000, 7192, 1]);
      assert.deepEqual(Buffer.concat([r.ins[0]!, r.ins[1]!]), Buffer.from(data));
      srv.requests.length = 0;
      const big = pattern(512 * 1024, 8);
      assert.equal(await raw.status([header(BlkReqType.OUT, 0), big], [1]), BlkStatus.OK);
      assert.deepEqual(srv.requests.map((q) => q.length), [131072, 131072, 131072, 131072], 'split at the maximum block size');
      assert.deepEqual(srv.data.subarray(0, big.length), big);
    });
  });
});
