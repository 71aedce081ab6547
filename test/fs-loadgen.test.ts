/**
 * The C virtio-fs front-end of the benchmark (bench/c/vhost-fs-loadgen.c, built here with gcc)
 * against `virtio-ts fs` and QEMU 7.2's C virtiofsd: --verify (a missing name is ENOENT; CREATE,
 * WRITE of patterns in random chunk sizes, GETATTR size, READ back in other sizes compared byte
 * for byte, an empty READ at the end, RELEASE, UNLINK, FORGET, ENOENT again) and a short run of
 * each job (lookup, create, randread, seqread, seqwrite) whose RESULT lines parse with non-zero
 * rates and the back-end's CPU seconds. A failing FUSE reply ends it with a message and exit 1,
 * and so does a wrong one (unique, error field, len) from a hostile device served in process.
 * Under CI=true a missing gcc, native addon or virtiofsd fails rather than skips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, runLoadgen } from '../bench/blk-vhost-bench.js';
import { buildFsLoadgen, parseFsLoadgenOutput } from '../bench/fs-loadgen.js';
import { QueueServer, type QueueRequest } from '../src/device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../src/device/types.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { ChainCursor } from '../src/queue/chain.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { spawnBackend, type BackendProcess } from '../src/vhost-user/frontend-process.js';
import { serveVhostUser } from '../src/vhost-user/server.js';

const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const inCI = process.env['CI'] === 'true';

function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = !hasGcc() ? 'gcc is not installed' : !nativePlatformAvailable() ? 'native addon not built' : !existsSync(VIRTIOFSD) ? `${VIRTIOFSD} is not installed` : false;
if (inCI && missing !== false) {
  it('gcc, the native addon and virtiofsd are present under CI', () => assert.fail(String(missing)));
}

/**
 * A virtio-fs device that answers every request wrongly, one way per `fault`: the reply's unique
 * is not the request's, its error field is positive, or its len is beyond the driver's buffers.
 */
class HostileFs implements VirtioDevice {
  readonly deviceId = DeviceId.FS;
  readonly offeredFeatures = F.VERSION_1 | F.EVENT_IDX;
  readonly queueMaxSizes = [256, 256];
  readonly configSize = 44;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly head = Buffer.alloc(40);
  private readonly reply = Buffer.alloc(80);

  constructor(private readonly fault: 'unique' | 'error' | 'len') {
    this.server = new QueueServer({ name: 'hostile-fs', numQueues: 2, handler: () => (req: QueueRequest) => this.serve(req) });
  }

  private serve(req: QueueRequest): number {
    this.reader.reset(req.chain).read(this.head);
    const unique = this.head.readBigUInt64LE(8);
    const len = this.fault === 'len' ? 1 << 20 : this.reply.length;
    this.reply.fill(0);
    this.reply.writeUInt32LE(len, 0);
    this.reply.writeInt32LE(this.fault === 'error' ? 5 : 0, 4);
    this.reply.writeBigUInt64LE(this.fault === 'unique' ? unique + 7n : unique, 8);
    this.reply.writeUInt32LE(7, 16); // FUSE_INIT out: major 7, minor 31, max_write 1 MiB
    this.reply.writeUInt32LE(31, 20);
    this.reply.writeUInt32LE(1 << 20, 36);
    return this.writer.reset(req.chain).write(this.reply);
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }
  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }
  reset(): void {
    this.server.reset();
  }
}

interface Backend {
  readonly name: string;
  start(sock: string, share: string): Promise<BackendProcess>;
}

const backends: readonly Backend[] = [
  {
    name: 'virtio-ts fs',
    start: (sock, share) => spawnBackend(process.execPath, [CLI, 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', 'lg', '--queue-size', '256'], sock),
  },
  {
    name: "QEMU 7.2's C virtiofsd",
    start: (sock, share) => spawnBackend(VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${share}`, '-o', 'cache=auto', '--thread-pool-size=0'], sock),
  },
];

describe('vhost-fs-loadgen (the C virtio-fs front-end) against both back-ends', { skip: inCI ? false : missing, timeout: 60_000 }, () => {
  let base: string;
  let share: string;
  let loadgen: string;
  let n = 0;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'vts-fslg-'));
    share = join(base, 'share');
    mkdirSync(join(share, 'scratch'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(share, `f${i}`), 'x');
    writeFileSync(join(share, 'big.bin'), randomBytes(8 << 20));
    writeFileSync(join(share, 'written.bin'), randomBytes(8 << 20));
    loadgen = buildFsLoadgen(join(base, 'vhost-fs-loadgen'));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  /** Runs the load generator against a fresh back-end (virtiofsd serves one connection). */
  async function against(b: Backend, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
    const sock = join(base, `fs${n++}.sock`);
    const p = await b.start(sock, share);
    try {
      const pid = p.child.pid ?? 0;
      const run = await runLoadgen(loadgen, ['--socket', sock, '--timeout-ms', '10000', ...args.map((a) => (a === '$PID' ? String(pid) : a))], 25_000);
      assert.equal(run.timedOut, false, `${run.stdout}${run.stderr}`);
      return { code: run.code, stdout: run.stdout, stderr: `${run.stderr}\n--- back-end ---\n${p.output()}`, pid };
    } finally {
      await p.stop(2000);
    }
  }

  for (const b of backends) {
    it(`${b.name}: --verify writes patterns, reads them back in other chunk sizes intact, ENOENT for a missing name, and cleans up`, async () => {
      const run = await against(b, ['--verify', '--verify-bytes', String(2 << 20), '--qd', '8']);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const out = parseFsLoadgenOutput(run.stdout);
      assert.ok(out.verify?.ok, run.stdout);
      const f = out.verify.fields;
      assert.equal(Number(f.get('region')), 2 << 20);
      assert.equal(Number(f.get('bytes_written')), 2 << 20);
      assert.equal(Number(f.get('bytes_read')), 2 << 20);
      assert.ok(Number(f.get('writes')) > 1 && Number(f.get('reads')) > 1, 'several chunks each way');
      assert.equal(out.info?.get('fuse')?.startsWith('7.'), true, run.stdout);
      assert.ok(Number(out.info?.get('max_write')) >= 4096);
      assert.deepEqual(readdirSync(share).filter((e) => e.startsWith('vfl-verify-')), [], 'the verify file is unlinked on the host');
    });

    it(`${b.name}: one short run of each job; RESULT lines parse with non-zero rates and the back-end's CPU seconds`, async () => {
      const run = await against(b, ['--duration', '0.4', '--span-mib', '8', '--count', '50', '--dir', 'scratch', '--cpu-pid', '$PID', '--job', 'lookup', '--job', 'create', '--job', 'randread', '--job', 'seqread:131072', '--job', 'seqwrite:262144:4']);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const out = parseFsLoadgenOutput(run.stdout);
      assert.deepEqual(out.results.map((r) => r.job), ['lookup', 'create', 'randread', 'seqread', 'seqwrite']);
      for (const r of out.results) {
        assert.ok(r.ops > 0 && r.opsPerSec > 0, `${r.job}: ${r.ops} operations`);
        assert.ok(r.secs >= 0.4 && r.secs < 15, `${r.job}: ${r.secs} s`);
        assert.ok(r.latP50Us > 0 && r.latP50Us <= r.latP99Us && r.latP99Us <= r.latMaxUs * 1.01, `${r.job} latencies`);
        assert.ok(r.cpuS >= 0 && r.backendCpuS >= 0);
        // Every used length is the reply's out header len (FORGET's: 0, nothing written).
        assert.equal(r.lenMismatches, 0, `${r.job}: used lengths`);
      }
      const [, , rand, seq, write] = out.results;
      assert.equal(rand?.bs, 4096);
      assert.equal(seq?.bs, 131072);
      assert.equal(write?.bs, 262144);
      assert.equal(write?.qd, 4);
      for (const r of [rand, seq, write]) assert.ok((r?.mibPerSec ?? 0) > 0, `${r?.job} MiB/s`);
      assert.ok(Math.abs((seq?.mibPerSec ?? 0) - ((seq?.opsPerSec ?? 0) * 131072) / (1 << 20)) < 1, 'MiB/s is ops/s times the chunk');
      // The back-end worked for 2 s in all: its process tree used CPU time, and it is counted.
      assert.ok(out.results.reduce((s, r) => s + r.backendCpuS, 0) > 0, 'back-end CPU seconds are read');
      assert.deepEqual(readdirSync(join(share, 'scratch')), [], 'every created file was unlinked');
    });

    it(`${b.name}: an error reply ends the program with a message and exit status 1`, async () => {
      const run = await against(b, ['--duration', '0.2', '--job', 'randread', '--read-file', 'no-such-file']);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stderr, /vhost-fs-loadgen: LOOKUP of 'no-such-file' .*failed: No such file or directory/);
      assert.equal(parseFsLoadgenOutput(run.stdout).results.length, 0);
    });
  }

  it('a back-end that answers wrongly (unique, error field, len) ends it with a message and exit status 1', async () => {
    const expected = { unique: /INIT: reply for unique \d+, the request was \d+/, error: /INIT: error field 5 is not a negative errno/, len: /INIT: out header len 1048576 \(buffers 512\)/ } as const;
    for (const fault of ['unique', 'error', 'len'] as const) {
      const sock = join(base, `hostile-${fault}.sock`);
      const server = await serveVhostUser({ device: new HostileFs(fault), socketPath: sock });
      try {
        const run = await runLoadgen(loadgen, ['--socket', sock, '--timeout-ms', '5000', '--duration', '0.2', '--job', 'lookup'], 20_000);
        assert.equal(run.timedOut, false, run.stderr);
        assert.equal(run.code, 1, `${fault}: ${run.stdout}${run.stderr}`);
        assert.match(run.stderr, expected[fault], fault);
        assert.equal(parseFsLoadgenOutput(run.stdout).info, null, `${fault}: no INFO line after a bad FUSE_INIT reply`);
      } finally {
        await server.close();
      }
    }
  });
});
