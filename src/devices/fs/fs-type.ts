/** The registry record of virtio-fs (5.11): `virtio-ts fs`, vhost-user type "fs". */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsDriver } from './fs-driver.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { FS_CLI } from './cli.js';
import { FsDevice, type FsDeviceOptions } from './fs-device.js';

/** `createDevice` arguments (structured-cloneable). */
export interface FsDeviceArgs {
  /** The shared directory; default a fresh empty temporary directory. */
  readonly sharedDir?: string;
  /** The mount tag (5.11.4: UTF-8, 1..36 bytes). Default "virtio-ts". */
  readonly tag?: string;
  /** Request queues (num_request_queues, at least 1). Default 1. */
  readonly numRequestQueues?: number;
  /** Maximum queue size. Default 1024. */
  readonly queueSize?: number;
}

const O_RDONLY = 0;
const O_RDWR = 2;

/**
 * The registry record of virtio-fs: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const FS_TYPE: DeviceType = {
  name: 'fs',
  deviceId: DeviceId.FS,
  summary: 'share a host directory as a virtio-fs device over vhost-user',
  vhostUser: { type: 'fs', features: [] },
  // 5.11.4: tag[36] and num_request_queues (notify_buf_size only with NOTIFICATION), as QEMU asks.
  configSize: 40,
  cli: FS_CLI,
  createDevice(args?: unknown): FsDevice {
    const a = (args ?? {}) as FsDeviceArgs;
    const opts: FsDeviceOptions = {
      sharedDir: a.sharedDir ?? mkdtempSync(join(tmpdir(), 'virtio-ts-fs-')),
      tag: a.tag ?? 'virtio-ts',
      ...(a.numRequestQueues !== undefined ? { numRequestQueues: a.numRequestQueues } : {}),
      ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}),
    };
    return new FsDevice(opts);
  },
  matrixCase() {
    const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-fs-matrix-'));
    const content = Buffer.from('shared through virtio-fs\n'.repeat(200));
    writeFileSync(join(dir, 'hello.txt'), content);
    const device = new FsDevice({ sharedDir: dir, tag: 'matrix', queueSize: 64, maxWrite: 64 << 10 });
    return {
      device,
      async exercise(driver) {
        try {
          const fs = new FsDriver(driver.context);
          await fs.init();
          assert.ok(fs.minor >= 1 && fs.maxWrite === 64 << 10, `INIT negotiated (minor ${fs.minor}, max_write ${fs.maxWrite})`);
          const e = await fs.lookup(1n, 'hello.txt');
          assert.equal(e.attr.size, content.length);
          const fh = await fs.open(e.nodeid, O_RDONLY);
          // Two reads in flight at once, one crossing the end of the file.
          const [a, b] = await Promise.all([fs.read(e.nodeid, fh, 0, 3000), fs.read(e.nodeid, fh, 3000, 4096)]);
          assert.deepEqual(Buffer.concat([a!, b!]), content);
          await fs.release(e.nodeid, fh);
          // A file the driver creates and writes is on the host.
          const c = await fs.create(1n, 'from-guest.bin', 0o644, O_RDWR);
          const data = Buffer.alloc(10_000, 0x5a);
          assert.equal(await fs.write(c.entry.nodeid, c.fh, 0, data), data.length);
          await fs.release(c.entry.nodeid, c.fh);
          assert.deepEqual(readFileSync(join(dir, 'from-guest.bin')), data);
          const names = (await fs.readdir(1n)).map((d) => d.name).sort();
          assert.deepEqual(names, ['.', '..', 'from-guest.bin', 'hello.txt']);
          await fs.forget(e.nodeid, 1);
          await fs.forget(c.entry.nodeid, 1);
          assert.equal(device.host.inodeCount, 1, 'FORGET over hiprio emptied the inode table but the root');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  },
};
