/**
 * The live queue inspector in a real browser: `virtio-ts blk --inspect 127.0.0.1:0` (through the
 * held-write launcher, so one write stays in flight on demand) serves a vhost-user front-end in
 * this process that writes and reads the disk, while headless Chromium (Debian's `chromium`,
 * driven by playwright-core; no browser download) shows the page. The figures move while I/O
 * runs; once it stops they equal the driver's own request count, the back-end's QueueStats (its
 * `--metrics` endpoint) and the ring indices the front-end sees in its own memory. A held write
 * appears as a chain in flight; clicking it shows its descriptors. A ring the driver breaks shows
 * DEVICE_NEEDS_RESET with its reason. Screenshots are kept in test-artifacts/ (inspector.png,
 * inspector-needs-reset.png). Under CI=true a missing Chromium fails the test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { get } from 'node:http';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { CliError, parseCommandLine } from '../src/cli/args.js';
import { isSocket, until, withDir } from '../src/cli/cli-test-helpers.js';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import type { DriverQueueAddresses } from '../src/driver/types.js';
import { loadNativePlatform } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { SplitLayout } from '../src/spec/ring.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAUNCHER = join(ROOT, 'dist/src/cli/held-write-blk.js');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
/** Writes at or past this byte never complete (held-write-blk.ts). */
const HOLD_FROM = 2 << 20;
const CHUNK = 4096;
/** Bound of the whole run; every process and the browser are ended within it. */
const RUN_MS = 50_000;

const missing = existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install chromium)`;
if (missing !== null && process.env['CI'] === 'true') throw new Error(`CI=true: ${missing}`);

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name}\\{device="blk",queue="0"\\} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in the exposition`);
  return Number(m[1]);
}

/** The text of a queue-0 cell of the blk device on the page. */
function cell(page: Page, field: string): Promise<string> {
  return page.locator(`[data-device="blk"] tr[data-queue="0"] [data-field="${field}"]`).innerText();
}

/** Resolves `p`, or rejects after `ms` (closing a browser must not hang the test). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('live queue inspector', { timeout: 90_000 }, () => {
  it('--inspect takes a loopback HOST:PORT only, on every back-end command', () => {
    for (const cmd of ['blk', 'rng', 'net', 'crypto', 'fs']) {
      const extra = cmd === 'blk' ? ['--memory', '1M'] : cmd === 'fs' ? ['--shared-dir', '/tmp', '--tag', 't'] : [];
      const ok = parseCommandLine([cmd, '--socket-path', '/tmp/s', ...extra, '--inspect', '127.0.0.1:0']);
      assert.equal(ok.kind, 'device', cmd);
      if (ok.kind === 'device') assert.deepEqual(ok.options.inspect, { host: '127.0.0.1', port: 0 }, cmd);
    }
    for (const bad of ['0.0.0.0:8080', '192.168.1.1:80', 'example.com:80', '127.0.0.1', '[::]:1']) {
      assert.throws(
        () => parseCommandLine(['blk', '--socket-path', '/tmp/s', '--memory', '1M', '--inspect', bad]),
        (e: unknown) => e instanceof CliError && /^--inspect: /.test(e.message),
        bad,
      );
    }
  });

  it('Chromium shows the blk back-end live: figures move, then match the driver, QueueStats and the ring; a held chain shows its descriptors', { skip: missing ?? false }, async () => {
    const { chromium } = await import('playwright-core');
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'blk.sock');
      const child = spawn(process.execPath, [LAUNCHER, String(HOLD_FROM), 'blk', '--memory', '4M', '--socket-path', sock, '--inspect', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
      let t: VhostUserDriverTransport | null = null;
      let browser: Browser | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(err) && /inspector at /.test(err) && /metrics at /.test(err), 10_000, 'the back-end', child);
        const pageUrl = /inspector at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(err)![1]!;
        const metricsUrl = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(err)![1]!;

        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BLOCK, platform, memorySize: 8 << 20 });
        // Where the front-end put its rings: read back from its own memory below.
        const rings: DriverQueueAddresses[] = [];
        const setup = t.setupQueue.bind(t);
        t.setupQueue = (i, a) => {
          rings[i] = a;
          setup(i, a);
        };
        // A split ring: its avail and used idx are what the front-end and the page both read
        // (packed rings are covered in process by src/inspector/device-snapshot.test.ts).
        const driver = await startVhostUserDriver(t, { wantedFeatures: ((1n << 64n) - 1n) & ~F.RING_PACKED, queueSizes: [64] });
        const blk = new BlkDriver(driver.context);
        const memory = t.memory;
        const ring = rings[0]!;

        browser = await bounded(chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'], timeout: 20_000 }), 25_000, 'launching Chromium');
        const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
        page.setDefaultTimeout(15_000);
        await page.goto(pageUrl);
        await page.locator('[data-device="blk"] [data-status-bit="DRIVER_OK"].on').waitFor();
        assert.equal(await page.locator('#conn').innerText(), 'live');
        assert.equal(await page.locator('[data-device="blk"] tr[data-feature="VERSION_1"] [data-field="negotiated"]').innerText(), '✓');

        // I/O for three seconds at least, and until the page has shown the request count move
        // (bounded: a loaded machine may delay the page's updates).
        let requests = 0;
        const data = new Uint8Array(CHUNK);
        const seen: number[] = [];
        const end = Date.now() + 3000;
        const latest = Date.now() + 15_000;
        let lastLook = 0;
        const moved = (): boolean => new Set(seen.filter((n) => n > 0)).size >= 2;
        for (let i = 0; (Date.now() < end || !moved()) && Date.now() < latest; i++) {
          const sector = (i % 256) * (CHUNK / 512);
          data.fill(i & 0xff);
          await blk.write(sector, data);
          assert.equal((await blk.read(sector, CHUNK))[0], i & 0xff);
          requests += 2;
          if (Date.now() - lastLook > 900) {
            lastLook = Date.now();
            seen.push(Number(await cell(page, 'requests')));
          }
        }
        assert.ok(moved() && seen.at(-1)! > seen[0]!, `the request count moved while I/O ran: ${seen.join(', ')}`);

        // Quiet: the page settles on the driver's count, the back-end's counters and the ring.
        await page.waitForFunction(`document.querySelector('[data-device="blk"] tr[data-queue="0"] [data-field="requests"]')?.textContent === '${requests}'`);
        const metrics = await fetchText(metricsUrl);
        const availIdx = memory.readU16(ring.driverAddr + SplitLayout.AVAIL_IDX);
        const usedIdx = memory.readU16(ring.deviceAddr + SplitLayout.USED_IDX);
        assert.equal(availIdx, requests & 0xffff, 'the front-end made every request available');
        const shown = {
          requests: Number(await cell(page, 'requests')),
          completed: Number(await cell(page, 'completed')),
          bytesRead: Number(await page.locator('[data-device="blk"] tr[data-queue="0"] [data-field="bytes-read"]').getAttribute('data-value')),
          bytesWritten: Number(await page.locator('[data-device="blk"] tr[data-queue="0"] [data-field="bytes-written"]').getAttribute('data-value')),
          availIdx: Number(await cell(page, 'avail-idx')),
          lastAvail: Number(await cell(page, 'last-avail')),
          usedIdx: Number(await cell(page, 'used-idx')),
          nextUsed: Number(await cell(page, 'next-used')),
          inFlight: Number(await cell(page, 'in-flight')),
        };
        assert.deepEqual(shown, {
          requests: sample(metrics, 'virtio_queue_requests_total'),
          completed: sample(metrics, 'virtio_queue_completed_total'),
          bytesRead: sample(metrics, 'virtio_queue_read_bytes_total'),
          bytesWritten: sample(metrics, 'virtio_queue_written_bytes_total'),
          availIdx,
          lastAvail: availIdx,
          usedIdx,
          nextUsed: usedIdx,
          inFlight: 0,
        });
        assert.equal(shown.completed, requests);
        // Each write carries a 16-byte header and the data; a read's data comes back with its status.
        assert.equal(shown.bytesRead, (requests / 2) * (16 + CHUNK) + (requests / 2) * 16);
        assert.match(await cell(page, 'kick-suppression'), /avail_event|enabled|disabled/);
        await page.waitForFunction(`Number(document.querySelector('canvas[data-plot="requests"]')?.dataset.max ?? 0) > 0`);

        // A write the back-end holds: one chain in flight; its descriptors on click.
        const held = blk.write(HOLD_FROM / 512, new Uint8Array(CHUNK).fill(0xee));
        held.catch(() => undefined);
        await until(() => /HELD write offset=/.test(err), 10_000, 'the held write', child);
        const chainButton = page.locator('[data-device="blk"] [data-chains-queue="0"] button.chain').first();
        await chainButton.waitFor();
        await page.waitForFunction(`document.querySelector('[data-device="blk"] tr[data-queue="0"] [data-field="in-flight"]')?.textContent === '1'`);
        await chainButton.click();
        const rows = page.locator('[data-device="blk"] [data-field="chain-detail"] tr.desc');
        await rows.first().waitFor();
        const descs = await rows.evaluateAll((trs) =>
          trs.map((tr) => ({
            addr: tr.querySelector('[data-field="desc-addr"]')!.textContent!,
            len: Number(tr.querySelector('[data-field="desc-len"]')!.textContent),
            flags: tr.querySelector('[data-field="desc-flags"]')!.textContent!,
          })),
        );
        // Header (16, readable), data (CHUNK, readable), status (1, WRITE); behind an INDIRECT descriptor or not.
        const direct = descs.filter((d) => !d.flags.includes('INDIRECT'));
        assert.deepEqual(
          direct.map((d) => [d.len, d.flags.includes('WRITE')]),
          [
            [16, false],
            [CHUNK, false],
            [1, true],
          ],
          JSON.stringify(descs),
        );
        const base = 1 << 20; // VhostUserDriverTransport's default guestBase
        for (const d of descs) assert.ok(Number(d.addr) >= base && Number(d.addr) < base + (8 << 20), `${d.addr} inside the front-end's memory`);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, 'inspector.png'), fullPage: true });

        // A driver error: avail idx more than the queue size ahead (2.7.6). The ring breaks, the
        // device sets DEVICE_NEEDS_RESET, and the page shows the bit, the reason and the log line.
        const availNow = memory.readU16(ring.driverAddr + SplitLayout.AVAIL_IDX);
        memory.writeU16(ring.driverAddr + SplitLayout.AVAIL_IDX, (availNow + ring.size + 8) & 0xffff);
        t.notify(0);
        const reason = page.locator('[data-device="blk"] [data-field="needs-reset"]');
        await reason.waitFor();
        assert.match(await reason.innerText(), /^DEVICE_NEEDS_RESET: .*avail idx \d+ is \d+ ahead/);
        await page.locator('[data-device="blk"] [data-status-bit="DEVICE_NEEDS_RESET"].on').waitFor();
        await page.locator('#reset-log li', { hasText: 'DEVICE_NEEDS_RESET' }).waitFor();
        assert.equal(await cell(page, 'state'), 'broken');
        await page.screenshot({ path: join(ARTIFACTS, 'inspector-needs-reset.png'), fullPage: true });

        await bounded(browser.close(), 10_000, 'closing Chromium');
        browser = null;
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await bounded(closed, 10_000, 'the back-end ending'), 0, err);
      } finally {
        clearTimeout(killer);
        if (browser) await bounded(browser.close(), 10_000, 'closing Chromium').catch(() => undefined);
        t?.close();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await closed;
        }
      }
    });
  });
});
