/**
 * The built `virtio-ts blk` and `rng` serving: they end cleanly on SIGTERM/SIGINT and remove
 * their socket (vhost-user.rst, Backend program conventions), replace a stale socket, serve an
 * inherited listening fd (`--fd`), and serve one front-end at a time, taking the next after a
 * disconnect.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { VhostUserFrontend } from '../vhost-user/frontend.js';
import { F } from '../spec/features.js';
import { FrontendReq, VHOST_USER_F_PROTOCOL_FEATURES } from '../vhost-user/messages.js';
import { EXIT } from './args.js';
import { isSocket, runCli, until, withDir } from './cli-test-helpers.js';
import { loadPlatform } from './serve.js';

describe('virtio-ts back-ends serving', { timeout: 120_000 }, () => {
  it('SIGTERM ends a serving back-end cleanly (exit code 0) and removes its socket; SIGINT too', async () => {
    await withDir(async (dir) => {
      for (const [cmd, sig] of [
        [['blk', '--memory', '1M'], 'SIGTERM'],
        [['rng'], 'SIGTERM'],
        [['blk', '--memory', '64K', '--read-only'], 'SIGINT'],
      ] as const) {
        const sock = join(dir, `${cmd[0]}-${sig}.sock`);
        const r = await runCli([...cmd, '--socket-path', sock], async (child, err) => {
          await until(() => isSocket(sock) && /serving /.test(err()), 10_000, 'the socket', child);
          child.kill(sig);
        });
        assert.deepEqual({ code: r.code, signal: r.signal }, { code: EXIT.OK, signal: null }, r.err);
        assert.equal(existsSync(sock), false, `${sock} removed`);
        assert.match(r.err, new RegExp(`${sig}: shutting down`));
      }
    });
  });

  it('a stale socket file (nobody listening) is replaced', async () => {
    await withDir(async (dir) => {
      const sock = join(dir, 'stale.sock');
      // Leave a stale socket file the way a killed process would: bind and listen, then close the
      // fd without unlinking. (A net.Server cannot do this: libuv unlinks a pipe's path when its
      // handle closes, so the file would be gone and the test would prove nothing.)
      const platform = loadPlatform();
      platform.close(platform.listenUnix(sock));
      assert.ok(isSocket(sock), 'a stale socket file is left');
      const r = await runCli(['rng', '--socket-path', sock], async (child, err) => {
        await until(() => /serving /.test(err()), 10_000, 'the back-end to serve', child);
        // The replacement listens: a connection is accepted.
        await new Promise<void>((resolve, reject) => {
          const c = createConnection({ path: sock });
          c.once('connect', () => {
            c.destroy();
            resolve();
          });
          c.once('error', reject);
        });
        child.kill('SIGTERM');
      });
      assert.equal(r.code, EXIT.OK, r.err);
      assert.equal(existsSync(sock), false);
    });
  });

  it('the verbosity switch: default logs connections at info and no debug; -v adds each message received; -q logs nothing but errors', async () => {
    const platform = loadPlatform();
    await withDir(async (dir) => {
      const logs: Record<string, string> = {};
      for (const [name, flags] of [
        ['default', []],
        ['verbose', ['-v']],
        ['quiet', ['-q']],
      ] as const) {
        const sock = join(dir, `${name}.sock`);
        let fe: VhostUserFrontend | null = null;
        try {
          const r = await runCli(['blk', '--memory', '64K', '--socket-path', sock, ...flags], async (child, err) => {
            await until(() => isSocket(sock), 10_000, 'the socket', child);
            fe = new VhostUserFrontend(platform, platform.connectUnix(sock), 3000);
            await fe.getFeatures();
            fe.close();
            fe = null;
            // The disconnect is logged at info; give the quiet run the same chance to (wrongly) log it.
            if (name !== 'quiet') await until(() => /disconnected/.test(err()), 10_000, 'the disconnect', child);
            else await until(() => child.exitCode === null, 10_000, 'the child', child);
            child.kill('SIGTERM');
          });
          assert.equal(r.code, EXIT.OK, r.err);
          logs[name] = r.err;
        } finally {
          (fe as VhostUserFrontend | null)?.close();
        }
      }
      assert.match(logs['default']!, / INFO vhost-user: front-end 1 connected/);
      assert.doesNotMatch(logs['default']!, / DEBUG /);
      assert.match(logs['verbose']!, / DEBUG vhost-user: <- GET_FEATURES/);
      assert.match(logs['verbose']!, / INFO vhost-user: front-end 1 connected/);
      assert.equal(logs['quiet'], '', '-q: nothing on stderr when nothing fails');
    });
  });

  it('--fd: serves the listening socket it inherited, and one front-end at a time, the next after a disconnect', async () => {
    const platform = loadPlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'fd.sock');
      const listenFd = platform.listenUnix(sock);
      let a: VhostUserFrontend | null = null;
      let b: VhostUserFrontend | null = null;
      try {
        const r = await runCli(
          ['blk', '--fd', '3', '--memory', '1M', '-v'],
          async (child, err) => {
            await until(() => /serving /.test(err()), 10_000, 'the back-end to serve', child);
            a = new VhostUserFrontend(platform, platform.connectUnix(sock), 3000);
            const fa = await a.getFeatures();
            assert.ok((fa & F.VERSION_1) !== 0n, 'VIRTIO_F_VERSION_1 offered');
            assert.ok((fa & (1n << BigInt(VHOST_USER_F_PROTOCOL_FEATURES))) !== 0n, 'VHOST_USER_F_PROTOCOL_FEATURES offered');
            // A second front-end waits in the backlog while the first is served.
            b = new VhostUserFrontend(platform, platform.connectUnix(sock), 1000);
            b.send(FrontendReq.GET_FEATURES);
            await assert.rejects(b.next(), (e: unknown) => (e as { code?: string }).code === 'TIMEOUT', 'no answer while another front-end is served');
            a.close();
            a = null;
            const fb = await b.getFeatures();
            assert.equal(fb, fa, 'the next front-end is served after the first left');
            child.kill('SIGTERM');
          },
          [listenFd],
        );
        assert.equal(r.code, EXIT.OK, r.err);
        assert.match(r.err, /front-end 1 connected/);
        assert.match(r.err, /front-end 1 disconnected/);
        assert.match(r.err, /front-end 2 connected/);
        assert.ok(isSocket(sock), 'an inherited socket is not the back-end\'s to remove');
      } finally {
        (a as VhostUserFrontend | null)?.close();
        (b as VhostUserFrontend | null)?.close();
        platform.close(listenFd);
      }
    });
  });
});
