/**
 * The benchmark's load generator (bench/c/vhost-blk-loadgen.c) is a real vhost-user-blk front-end:
 * against qemu-storage-daemon it negotiates, writes patterns, flushes and reads them back intact,
 * and what it wrote is in the image file; against a disk that discards writes its check fails;
 * its benchmark jobs report sane figures on both completion paths (call eventfd and polling).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { ensureGuestDeps, makeTempDir, makeRawImage, startProcess, waitForPath, type ManagedProcess, type TempDir } from './support/guest.js';
import { GuestError, GuestFailure } from './support/guest-errors.js';
import { inCI } from './support/guest-host.js';
import { buildLoadgen, parseLoadgenOutput, qsdArgs, runLoadgen } from '../bench/blk-vhost-bench.js';

const deps = ensureGuestDeps();

function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The loadgen's pattern (splitmix64 of seed + word * golden ratio), for checking the image. */
function patternWord(seed: bigint, word: bigint): bigint {
  const M = (1n << 64n) - 1n;
  let z = (seed + word * 0x9e3779b97f4a7c15n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

// gcc builds the native addon too, so CI has it; if not, this fails there rather than skipping.
if (inCI && !hasGcc()) throw new GuestError(GuestFailure.MISSING_DEPS, 'gcc is not installed');
const skip = !deps.ok ? deps.reason : hasGcc() ? false : 'gcc is not installed';

describe('vhost-blk-loadgen against qemu-storage-daemon', { skip, timeout: 120_000 }, () => {
  let dir: TempDir;
  let loadgen: string;
  const procs: ManagedProcess[] = [];

  before(async () => {
    dir = await makeTempDir('vts-lg-');
    loadgen = buildLoadgen(dir.file('vhost-blk-loadgen'));
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await dir.remove();
  });

  async function startQsd(name: string, disk: Parameters<typeof qsdArgs>[1]): Promise<{ socket: string; qsd: ManagedProcess }> {
    const socket = dir.file(`${name}.sock`);
    const qsd = startProcess('qemu-storage-daemon', qsdArgs(socket, disk));
    procs.push(qsd);
    await waitForPath(socket, { timeoutMs: 15_000, process: qsd });
    return { socket, qsd };
  }

  it('writes, flushes and reads back patterns through a file image (--verify), and the image holds them', async () => {
    const image = dir.file('disk.raw');
    const imageBytes = 16 << 20;
    await makeRawImage(image, imageBytes);
    const { socket, qsd } = await startQsd('file', { image });
    const region = 4 << 20;
    const run = await runLoadgen(loadgen, ['--socket', socket, '--verify', '--duration', '2', '--verify-bytes', String(region), '--verify-qd', '16', '--timeout-ms', '10000'], 60_000);
    assert.equal(run.timedOut, false, run.stderr);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}\n--- qsd ---\n${qsd.output()}`);
    const out = parseLoadgenOutput(run.stdout);
    assert.ok(out.verify?.ok, run.stdout);
    const f = out.verify.fields;
    assert.ok(Number(f.get('rounds')) >= 1);
    assert.equal(Number(f.get('region')), region);
    assert.equal(Number(f.get('bytes_read')), Number(f.get('bytes_written')));
    assert.equal(Number(f.get('bytes_read')) % region, 0);
    assert.ok(Number(f.get('flushes')) >= 1, 'qsd offers VIRTIO_BLK_F_FLUSH, so every round flushes');
    // What the loadgen read back is on the disk itself: the last round's pattern, word by word
    // at a few places, and nothing beyond the region.
    const seed = BigInt(f.get('last_seed') ?? 'x');
    const fh = await open(image, 'r');
    try {
      const buf = Buffer.alloc(8);
      for (const off of [0, 8, 4096, 65536 + 504, region - 8]) {
        await fh.read(buf, 0, 8, off);
        assert.equal(buf.readBigUInt64LE(0), patternWord(seed, BigInt(off / 8)), `word at ${off}`);
      }
      await fh.read(buf, 0, 8, region);
      assert.equal(buf.readBigUInt64LE(0), 0n, 'the region ends where asked');
    } finally {
      await fh.close();
    }
    assert.equal(out.info?.get('capacity_sectors'), String(imageBytes / 512));
  });

  it('--verify fails against a disk that reads zeroes (the comparison is real)', async () => {
    const { socket } = await startQsd('null', { nullBytes: 16 << 20 });
    const run = await runLoadgen(loadgen, ['--socket', socket, '--verify', '--duration', '1', '--verify-bytes', String(1 << 20)], 60_000);
    assert.equal(run.timedOut, false);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const out = parseLoadgenOutput(run.stdout);
    assert.equal(out.verify?.ok, false, run.stdout);
  });

  it('benchmark jobs: call eventfd and polling, depth 1 and 32, with and without EVENT_IDX', async () => {
    const { socket } = await startQsd('bench', { nullBytes: 64 << 20 });
    const jobs = ['c1:rand:4096:1:call', 'p32:rand:4096:32:poll', 'c32:seq:65536:32:call'];
    for (const eventIdx of ['on', 'off']) {
      const args = ['--socket', socket, '--duration', '0.4', '--event-idx', eventIdx, ...jobs.flatMap((j) => ['--job', j])];
      const run = await runLoadgen(loadgen, args, 60_000);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const out = parseLoadgenOutput(run.stdout);
      assert.equal(out.info?.get('event_idx'), eventIdx === 'on' ? '1' : '0');
      assert.deepEqual(out.results.map((r) => r.job), ['c1', 'p32', 'c32']);
      for (const r of out.results) {
        assert.ok(r.ios > 0 && r.iops > 0, `${r.job}: ${r.ios} ios`);
        assert.ok(r.latP50Us > 0 && r.latP50Us <= r.latP99Us && r.latP99Us <= r.latMaxUs * 1.01, `${r.job} latencies`);
        assert.equal(r.lenMismatches, 0, `${r.job}: used lengths are data + status`);
        assert.ok(r.secs >= 0.4 && r.secs < 20, `${r.job}: ${r.secs} s`);
      }
    }
  });

  it('fails cleanly (exit 1, no hang) when nothing listens on the socket', async () => {
    const run = await runLoadgen(loadgen, ['--socket', dir.file('nobody.sock'), '--timeout-ms', '200'], 30_000);
    assert.equal(run.timedOut, false);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /connect .*nobody\.sock/);
  });
});
