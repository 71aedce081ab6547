/**
 * `virtio-ts balloon` as a process: the back-end serves the balloon over vhost-user and takes
 * JSON lines on its control socket; virtio-ts's vhost-user front-end and BalloonDriver are the
 * guest side (QEMU 7.2 has no vhost-user balloon front-end). Bounded in time; the process is
 * always ended.
 */
import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCli, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { BALLOON_STAT_NAMES, BalloonConfig } from '../../spec/balloon.js';
import { DeviceId } from '../../spec/device-id.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { BalloonDriver } from './balloon-driver.js';
import { hostMemoryStats } from './host-memory-stats.js';

/** A JSON-lines client: `ask` sends one request and resolves with its answer line. */
async function controlClient(path: string): Promise<{ ask: (req: unknown) => Promise<Record<string, unknown>>; sock: Socket }> {
  const sock = connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.setEncoding('utf8');
  let buf = '';
  const waiting: ((line: string) => void)[] = [];
  sock.on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    sock,
    ask: (req) =>
      new Promise((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as Record<string, unknown>));
        sock.write((typeof req === 'string' ? req : JSON.stringify(req)) + '\n');
      }),
  };
}

describe('virtio-ts balloon as a process', { timeout: 60_000 }, () => {
  it('the control socket sets the target, the driver follows, pages are released; stats by name; hinting rounds; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'b.sock');
      const ctl = join(dir, 'ctl.sock');
      const cli = startCli(['balloon', '--socket-path', sock, '--control', ctl, '--pages', '8']);
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      let client: Socket | null = null;
      try {
        await until(() => isSocket(sock) && isSocket(ctl) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BALLOON_TRADITIONAL, platform, configSize: BalloonConfig.SIZE });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
        const balloon = new BalloonDriver(driver.context, { autoAdjust: true, stats: hostMemoryStats, hinting: { maxPages: 64, blockPages: 16 } });
        await balloon.adjust();
        assert.equal(balloon.size, 8, 'the --pages target');
        const c = await controlClient(ctl);
        client = c.sock;
        const query = () => c.ask({ query: true });
        // The host raises the target: CONFIG_CHANGE_MSG reaches the driver, which inflates.
        assert.deepEqual(await c.ask({ target_pages: 40 }), { ok: true, target_pages: 40 });
        await until(() => balloon.size === 40, 10_000, 'the driver to inflate', child);
        let q = await query();
        for (let i = 0; i < 100 && q['actual'] !== 40; i++) q = await query();
        assert.equal(q['actual'], 40);
        assert.equal(q['ballooned_pages'], 40);
        assert.equal(q['released_bytes'], 40 * 4096, 'inflated pages given back with madvise');
        // Statistics by name: every tag of 5.5.6.4 (the driver sends this host's /proc values).
        const s = await c.ask({ stats: true });
        assert.equal(s['fresh'], true);
        assert.deepEqual(Object.keys(s['stats'] as object).sort(), [...BALLOON_STAT_NAMES].sort());
        // A free page hinting round, ended by the host.
        const h = await c.ask({ hint: 'start' });
        assert.ok(typeof h['cmd_id'] === 'number' && h['cmd_id'] >= 2);
        await until(() => balloon.freePageHinter!.heldPages === 64, 10_000, 'the hints', child);
        q = await query();
        for (let i = 0; i < 100 && q['hinted_bytes'] !== 64 * 4096; i++) q = await query();
        assert.equal(q['hinted_bytes'], 64 * 4096);
        assert.deepEqual(await c.ask({ hint: 'done' }), { cmd_id: 1 });
        await until(() => balloon.freePageHinter!.heldPages === 0, 10_000, 'the release on DONE', child);
        // Bad requests are answered, not fatal.
        assert.match(String((await c.ask('not json'))['error']), /not JSON/);
        assert.match(String((await c.ask({ target_pages: -1 }))['error']), /target_pages/);
        assert.match(String((await c.ask({ frobnicate: 1 }))['error']), /unknown request/);
        await c.ask({ target_pages: 0 });
        await until(() => balloon.size === 0, 10_000, 'the driver to deflate', child);
        balloon.detach();
        driver.reset();
        t.close();
        t = null;
        c.sock.end();
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
        assert.equal(isSocket(sock), false, 'the vhost-user socket is removed');
        assert.equal(isSocket(ctl), false, 'the control socket is removed');
      } finally {
        t?.close();
        client?.destroy();
        await cli.end();
      }
    });
  });
});
