/**
 * `--stats-interval` and `--metrics` on a back-end process: a vhost-user front-end reads entropy
 * from `virtio-ts rng`, and the Prometheus endpoint and the stats line report exactly the
 * requests and bytes the front-end's driver saw. The endpoint listens on loopback only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EntropyDriver } from '../devices/entropy/entropy-driver.js';
import { loadNativePlatform } from '../platform/native-platform.js';
import { DeviceId } from '../spec/device-id.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../vhost-user/frontend-transport.js';
import { CliError, parseCommandLine } from './args.js';
import { CLI, RUN_MS, isSocket, until, withDir } from './cli-test-helpers.js';
import { formatBytes, formatStatsLine } from './stats-report.js';

function fetchText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The value of a sample `name{device="rng",queue="0"}` in a text exposition. */
function sample(text: string, name: string): number {
  const m = new RegExp(`^${name}\\{device="rng",queue="0"\\} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in the exposition`);
  return Number(m[1]);
}

describe('back-end counters: --stats-interval and --metrics', { timeout: 60_000 }, () => {
  it('options: --metrics takes a loopback HOST:PORT only; --stats-interval 1..86400 seconds', () => {
    const rng = (extra: string[]) => parseCommandLine(['rng', '--socket-path', '/tmp/s', ...extra]);
    const ok = rng(['--metrics', '127.0.0.1:9100', '--stats-interval', '5']);
    assert.equal(ok.kind, 'device');
    if (ok.kind === 'device') {
      assert.deepEqual(ok.options.metrics, { host: '127.0.0.1', port: 9100 });
      assert.equal(ok.options.statsIntervalMs, 5000);
    }
    for (const good of ['[::1]:0', 'localhost:65535', '127.1.2.3:80']) assert.equal(rng(['--metrics', good]).kind, 'device', good);
    for (const bad of ['0.0.0.0:9100', '10.0.0.1:9100', '127.0.0.256:1', 'example.com:80', '127.0.0.1', '127.0.0.1:65536', ':9100', '[::]:1']) {
      assert.throws(() => rng(['--metrics', bad]), CliError, bad);
    }
    for (const bad of ['0', '86401', '1.5', '-1']) assert.throws(() => rng(['--stats-interval', bad]), CliError, bad);
  });

  it('the stats line: queues with traffic, the request rate since the last line, bytes in short units', () => {
    const zero = { kicks: 0, calls: 0, requests: 0, completed: 0, dropped: 0, bytesRead: 0, bytesWritten: 0, errors: 0, inFlight: 0 };
    const now = [
      { ...zero, queue: 0, kicks: 3, calls: 2, requests: 30, completed: 29, bytesWritten: 3 * 1024 * 1024, inFlight: 1 },
      { ...zero, queue: 1 },
    ];
    const line = formatStatsLine('blk', now, [{ ...zero, queue: 0, requests: 10 }], 2);
    assert.equal(line, 'virtio-ts blk stats: q0 req=30 (10.0/s) rd=0B wr=3.0MiB err=0 inflight=1 kicks=3 calls=2\n');
    assert.equal(formatStatsLine('rng', [{ ...zero, queue: 0 }], [], 1), 'virtio-ts rng stats: idle\n');
    assert.equal(formatBytes(1536), '1.5KiB');
  });

  it('a front-end reads entropy: /metrics and the stats line count its 40 requests and 20 KiB; other paths are 404', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'rng.sock');
      const child = spawn(process.execPath, [CLI, 'rng', '--socket-path', sock, '--metrics', '127.0.0.1:0', '--stats-interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
      let t: VhostUserDriverTransport | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(err) && /metrics at /.test(err), 10_000, 'the back-end to serve', child);
        const url = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(err)![1]!;
        const before = await fetchText(url);
        assert.equal(before.status, 200);
        assert.match(before.body, /^process_cpu_seconds_total /m, 'process metrics too');
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.ENTROPY, platform });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [16] });
        const rng = new EntropyDriver(driver.context, { chunk: 512 });
        assert.equal((await rng.read(20_480)).length, 20_480);
        const m = await fetchText(url);
        assert.equal(m.status, 200);
        assert.equal(sample(m.body, 'virtio_queue_requests_total'), 40);
        assert.equal(sample(m.body, 'virtio_queue_completed_total'), 40);
        assert.equal(sample(m.body, 'virtio_queue_written_bytes_total'), 20_480);
        assert.equal(sample(m.body, 'virtio_queue_read_bytes_total'), 0);
        assert.equal(sample(m.body, 'virtio_queue_errors_total'), 0);
        assert.equal(sample(m.body, 'virtio_queue_in_flight'), 0);
        const kicks = sample(m.body, 'virtio_queue_kicks_total');
        assert.ok(kicks >= 1 && kicks <= 40, `kicks ${kicks}`);
        assert.ok(sample(m.body, 'virtio_queue_calls_total') >= 1);
        assert.equal((await fetchText(url.replace('/metrics', '/other'))).status, 404);
        await until(() => /virtio-ts rng stats: q0 req=40 \(.*\/s\) rd=0B wr=20\.0KiB err=0 inflight=0 kicks=\d+ calls=\d+\n/.test(err), 10_000, 'a stats line with the requests', child);
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, err);
      } finally {
        clearTimeout(killer);
        t?.close();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await closed;
        }
      }
    });
  });

  it('crypto serves its metrics too (it runs on runBackend with its QEMU quirks hook)', async () => {
    await withDir(async (dir) => {
      const sock = join(dir, 'crypto.sock');
      const child = spawn(process.execPath, [CLI, 'crypto', '--socket-path', sock, '--metrics', '127.0.0.1:0', '--stats-interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
      try {
        await until(() => isSocket(sock) && /serving virtio-crypto, 1 data queue, at most 256 sessions/.test(err) && /metrics at /.test(err), 10_000, 'the back-end to serve', child);
        const url = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(err)![1]!;
        const m = await fetchText(url);
        assert.equal(m.status, 200);
        assert.match(m.body, /^process_cpu_seconds_total /m);
        child.kill('SIGTERM');
        assert.equal(await closed, 0, err);
      } finally {
        clearTimeout(killer);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await closed;
        }
      }
    });
  });
});
