/** The registry record of the 9P transport (device id 9): `virtio-ts 9p`, vhost-user type "9p". */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceId } from '../../spec/device-id.js';
import { P9QidType } from '../../spec/9p.js';
import type { DeviceType } from '../device-type.js';
import { P9_CLI } from './cli.js';
import { P9Device, type P9DeviceOptions } from './p9-device.js';
import { P9Driver } from './p9-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface P9DeviceArgs {
  /** The shared directory; default a fresh empty temporary directory. */
  readonly sharedDir?: string;
  /** Mount tag in the config space (the guest mounts by it); default `virtio-ts`. */
  readonly tag?: string;
  /** Every change refused with EROFS. */
  readonly readOnly?: boolean;
  /** Largest msize offered at Tversion, bytes (default P9_DEFAULT_MAX_MSIZE, 512 KiB). */
  readonly maxMsize?: number;
  /** Maximum virtqueue size offered (default 128). */
  readonly queueSize?: number;
}

const O_RDONLY = 0;
const O_RDWR = 2;

/**
 * The registry record of 9P transport: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const P9_TYPE: DeviceType = {
  name: '9p',
  deviceId: DeviceId.NINEP,
  summary: 'share a host directory as a virtio 9P (9P2000.L) device over vhost-user',
  vhostUser: { type: '9p', features: [] },
  // tag_len and the longest tag (P9_TAG_MAX_BYTES): the vhost-user front-end reads this much.
  configSize: 2 + 32,
  cli: P9_CLI,
  createDevice(args?: unknown): P9Device {
    const a = (args ?? {}) as P9DeviceArgs;
    const opts: P9DeviceOptions = {
      sharedDir: a.sharedDir ?? mkdtempSync(join(tmpdir(), 'virtio-ts-9p-')),
      tag: a.tag ?? 'virtio-ts',
      ...(a.readOnly !== undefined ? { readOnly: a.readOnly } : {}),
      ...(a.maxMsize !== undefined ? { maxMsize: a.maxMsize } : {}),
      ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}),
    };
    return new P9Device(opts);
  },
  matrixCase() {
    const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-9p-matrix-'));
    const content = Buffer.from('shared through virtio-9p\n'.repeat(200));
    writeFileSync(join(dir, 'hello.txt'), content);
    const device = new P9Device({ sharedDir: dir, tag: 'matrix', queueSize: 64, maxMsize: 16 << 10 });
    return {
      device,
      async exercise(driver) {
        try {
          const p9 = new P9Driver(driver.context, { msize: 32 << 10 });
          // virtio-ts's vhost-user front-end asks no configuration of device id 9: the tag reads empty there.
          assert.ok(['matrix', ''].includes(p9.mountTag), `mount tag "${p9.mountTag}"`);
          assert.deepEqual(await p9.version(), { msize: 16 << 10, version: '9P2000.L' });
          const root = p9.newFid();
          assert.equal((await p9.attach(root)).type, P9QidType.DIR);
          const f = p9.newFid();
          const [q] = await p9.walk(root, f, ['hello.txt']);
          assert.equal(q!.type, P9QidType.FILE);
          assert.equal((await p9.getattr(f)).size, content.length);
          await p9.lopen(f, O_RDONLY);
          // Two reads in flight at once, one crossing the end of the file.
          const [a, b] = await Promise.all([p9.read(f, 0, 3000), p9.read(f, 3000, 4096)]);
          assert.deepEqual(Buffer.concat([a!, b!]), content);
          await p9.clunk(f);
          // A file the driver creates and writes is on the host (in several messages: msize 16 KiB).
          const c = p9.newFid();
          await p9.walk(root, c, []);
          await p9.lcreate(c, 'from-guest.bin', O_RDWR, 0o644);
          const data = Buffer.alloc(40_000, 0x5a);
          for (let off = 0; off < data.length; ) off += await p9.write(c, off, data.subarray(off));
          await p9.clunk(c);
          assert.deepEqual(readFileSync(join(dir, 'from-guest.bin')), data);
          await p9.mkdir(root, 'sub', 0o755);
          const d = p9.newFid();
          await p9.walk(root, d, []);
          await p9.lopen(d, O_RDONLY);
          const names = (await p9.readdirAll(d)).map((e) => e.name).sort();
          assert.deepEqual(names, ['.', '..', 'from-guest.bin', 'hello.txt', 'sub']);
          await p9.clunk(d);
          await p9.clunk(root);
          assert.equal(device.server9p.fids.size, 0, 'every fid clunked');
          assert.equal(device.host.inodeCount, 1, 'clunks gave every inode back but the root');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  },
};
