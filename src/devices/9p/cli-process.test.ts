/**
 * `virtio-ts 9p` as a process: the back-end serves a host directory over vhost-user (QEMU 7.2
 * has no vhost-user 9p front-end, so virtio-ts's own front-end and P9Driver are the other end):
 * version, attach, create, write, read back, readdir, checked on the host; --translate-uid/-gid
 * give the created file to the attach uid and request gid mapped to the host's (as root);
 * SIGTERM ends it cleanly. Bounded in time; the process is always ended.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCli, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { P9Errno } from '../../spec/9p.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { P9Driver, P9RemoteError } from './p9-driver.js';

describe('virtio-ts 9p as a process', { timeout: 60_000 }, () => {
  it('serves the shared directory to a vhost-user front-end; --read-only refuses changes; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const share = join(dir, 'share');
      mkdirSync(share);
      writeFileSync(join(share, 'host.txt'), 'from the host');
      for (const readOnly of [false, true]) {
        const sock = join(dir, `9p-${readOnly}.sock`);
        const maps = ['--translate-uid', '1000:4321:1', '--translate-gid', '2000:8765:1'];
        const args = ['9p', '--socket-path', sock, '--shared-dir', share, '--tag', 'proc', '--msize', '65536', ...(readOnly ? ['--read-only'] : maps)];
        const cli = startCli(args);
        const { child, closed } = cli;
        let t: VhostUserDriverTransport | null = null;
        try {
          await until(() => isSocket(sock) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
          t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.NINEP, platform });
          const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
          const p9 = new P9Driver(driver.context, { msize: 128 << 10 });
          assert.equal((await p9.version()).msize, 65536, '--msize bounds the session');
          const root = p9.newFid();
          await p9.attach(root, '', '', 1000);
          const h = p9.newFid();
          await p9.walk(root, h, ['host.txt']);
          await p9.lopen(h, 0);
          assert.equal((await p9.read(h, 0, 100)).toString(), 'from the host');
          const c = p9.newFid();
          await p9.walk(root, c, []);
          if (readOnly) {
            await assert.rejects(p9.lcreate(c, 'no.txt', 2, 0o644), (e: unknown) => e instanceof P9RemoteError && e.errno === P9Errno.EROFS);
          } else {
            await p9.lcreate(c, 'guest.txt', 2, 0o644, 2000);
            assert.equal(await p9.write(c, 0, Buffer.from('from the driver')), 15);
            // The owner: guest uid 1000 (the attach's) and gid 2000 (the request's), on the host
            // 4321:8765 through the maps when the back-end may chown (root), else its own user.
            const host = lstatSync(join(share, 'guest.txt'));
            const root0 = process.geteuid?.() === 0;
            assert.deepEqual([host.uid, host.gid], root0 ? [4321, 8765] : [process.geteuid?.(), process.getegid?.()]);
            if (root0) {
              const a = await p9.getattr(c);
              assert.deepEqual([a.uid, a.gid], [1000, 2000], 'Rgetattr in the guest\'s ids');
            }
            await p9.clunk(c);
            assert.equal(readFileSync(join(share, 'guest.txt'), 'utf8'), 'from the driver');
          }
          const d = p9.newFid();
          await p9.walk(root, d, []);
          await p9.lopen(d, 0);
          const names = (await p9.readdirAll(d)).map((e) => e.name).sort();
          assert.deepEqual(names, ['.', '..', 'guest.txt', 'host.txt']);
          p9.detach();
          driver.reset();
          t.close();
          t = null;
          child.kill('SIGTERM');
          assert.equal(await closed, 0, cli.err());
          assert.equal(isSocket(sock), false, 'the socket is removed');
        } finally {
          t?.close();
          await cli.end();
        }
      }
    });
  });
});
