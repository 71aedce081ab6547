/**
 * Live migration of a running guest between two QEMU 7.2 processes on this machine while it does
 * I/O on a `virtio-ts blk` vhost-user back-end (issue 16 §4, vhost-user.rst "Migration").
 *
 * Shared storage, as vhost-user-blk migration works: back-end A serves the source QEMU and
 * back-end B the destination (started with `-incoming`), both over the same image file. The guest
 * writes 32 KiB blocks with O_DIRECT in a loop, reads each one back with O_DIRECT and compares it,
 * and reports every acknowledged write on its console. The host migrates it over a Unix socket
 * in the middle of the loop; the loop carries on on the destination; then the guest reads every
 * block it wrote back and compares, and the host compares the image.
 *
 * What it proves: the source back-end logged the pages it wrote while QEMU's dirty log was on
 * (its log says so, with the number of page marks), so the read buffers the device filled during
 * pre-copy reach the destination (each read-back is compared by the guest, before and after the
 * move); the ring state moves with GET_VRING_BASE / SET_VRING_BASE (the destination serves the
 * next request where the source stopped); no acknowledged write is lost.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QmpClient } from '../src/transport/x-remote/qmp-client.js';
import {
  GuestError,
  GuestFailure,
  TRANSPORT_MODULES,
  buildInitramfs,
  ensureGuestDeps,
  findCloudKernel,
  makeRawImage,
  makeTempDir,
  qemuArgv,
  repoRoot,
  runQemu,
  startProcess,
  waitForPath,
  type GuestConsole,
  type GuestResult,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const BLOCK = 32 * 1024;
const CHUNKS = 16;
const IMAGE_SIZE = 16 << 20;
/** The guest loops over the disk's blocks (wrapping) until the host says it moved. */
const MAX_BLOCKS = IMAGE_SIZE / BLOCK;
/** Writes acknowledged on the source before the host starts the migration. */
const BEFORE_MIGRATION = 8;
/** Writes the destination must acknowledge before the host tells the guest to stop. */
const AFTER_MIGRATION = 8;
const RUN_TIMEOUT_MS = 240_000;

/** Chunk c of the guest's pattern file: xorshift bytes seeded by c, so every chunk differs. */
function chunk(c: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  let x = (0x9e3779b9 ^ (c * 0x85ebca6b)) >>> 0 || 1;
  for (let i = 0; i < BLOCK; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * The writer runs in the background (block i gets chunk i mod 16, then is read back and
 * compared); the foreground waits for the host's `moved` line, stops the writer, and checks every
 * block written so far once more.
 */
const SCRIPT = `
wait_path /dev/vda || fail "no /dev/vda"
for c in $(seq 0 ${CHUNKS - 1}); do dd if=/pattern.bin of=/c$c bs=${BLOCK} skip=$c count=1 2>/dev/null; done
(
  i=0
  while [ ! -e /tmp/stop ] && [ $i -lt ${MAX_BLOCKS} ]; do
    c=/c$((i % ${CHUNKS}))
    dd if=$c of=/dev/vda bs=${BLOCK} seek=$i count=1 oflag=direct conv=notrunc 2>/tmp/w.err || { echo "RESULT error=write $i: $(cat /tmp/w.err)"; exit 1; }
    echo "RESULT w=$i"
    dd if=/dev/vda of=/tmp/r bs=${BLOCK} skip=$i count=1 iflag=direct 2>/tmp/r.err || { echo "RESULT error=read $i"; exit 1; }
    cmp -s $c /tmp/r || { echo "RESULT error=read-back $i differs"; exit 1; }
    i=$((i + 1))
  done
  echo $i > /tmp/written
) &
writer=$!
host_wait moved || fail "no word from the host"
touch /tmp/stop
wait $writer || fail "writer failed"
n=$(cat /tmp/written)
result written "$n"
i=0
while [ $i -lt $n ]; do
  dd if=/dev/vda of=/tmp/r bs=${BLOCK} skip=$i count=1 iflag=direct 2>/dev/null || fail "final read $i"
  cmp -s /c$((i % ${CHUNKS})) /tmp/r || fail "block $i differs after the move"
  i=$((i + 1))
done
result verified "$n"
`;

async function startBlk(sock: string, img: string): Promise<ManagedProcess> {
  // -v: every vhost-user message is logged, so the test sees what QEMU asked of each side.
  const p = startProcess(process.execPath, [CLI, 'blk', '--socket-path', sock, '--image', img, '-v']);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts blk did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/** Polls `query-migrate` until the migration ends; resolves with its final state. */
async function waitMigration(qmp: QmpClient, timeoutMs: number): Promise<Record<string, unknown>> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const st = (await qmp.execute('query-migrate')) as Record<string, unknown>;
    if (st['status'] === 'completed' || st['status'] === 'failed' || st['status'] === 'cancelled') return st;
    if (performance.now() > end) throw new Error(`migration not done after ${timeoutMs} ms: ${JSON.stringify(st)}`);
    // Polled, not waited on: QMP has no blocking "until done" command in 7.2.
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('virtio-ts blk: live migration between two QEMU 7.2 processes (vhost-user, shared image)', { skip, timeout: RUN_TIMEOUT_MS + 60_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-migrate-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('the guest writes and reads through the move; dirty pages logged on the source; nothing acknowledged is lost', async (t) => {
    const img = tmp.file('disk.img');
    await makeRawImage(img, IMAGE_SIZE);
    const pattern = Buffer.concat(Array.from({ length: CHUNKS }, (_, c) => chunk(c)));
    const kernel = findCloudKernel();
    const initrd = await buildInitramfs({
      kernel,
      modules: [...TRANSPORT_MODULES.q35, 'virtio_blk'],
      initScript: SCRIPT,
      extraFiles: [{ path: '/pattern.bin', data: pattern }],
    });
    const sockA = tmp.file('a.sock');
    const sockB = tmp.file('b.sock');
    const qmpA = tmp.file('a.qmp');
    const qmpB = tmp.file('b.qmp');
    const migSock = tmp.file('migrate.sock');
    const backendA = await startBlk(sockA, img);
    const backendB = await startBlk(sockB, img);
    const side = (sock: string, qmp: string): string[] =>
      qemuArgv({
        machine: 'q35',
        kernel: kernel.image,
        initrd,
        memfd: true,
        memoryMiB: 128,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,id=disk0', '-qmp', `unix:${qmp},server=on,wait=off`],
      });

    // The destination first: it waits for the incoming stream.
    let destConsole: GuestConsole | null = null;
    let destWrites = 0;
    let toldMoved = false;
    let migrated = false;
    const destRun = runQemu('qemu-system-x86_64', [...side(sockB, qmpB), '-incoming', `unix:${migSock}`], {
      timeoutMs: RUN_TIMEOUT_MS,
      onLine: (line, guest) => {
        destConsole = guest;
        if (/^RESULT w=\d+$/.test(line)) destWrites++;
        if (migrated && !toldMoved && destWrites >= AFTER_MIGRATION) {
          toldMoved = true;
          guest.send('moved\n');
        }
      },
    });
    destRun.catch(() => undefined); // awaited below; a failure is reported there
    const lastSourceWrite = { value: -1 };
    let startMigration: () => void = () => undefined;
    const sourceReady = new Promise<void>((resolve) => {
      startMigration = resolve;
    });
    const sourceRun = runQemu('qemu-system-x86_64', side(sockA, qmpA), {
      timeoutMs: RUN_TIMEOUT_MS,
      onLine: (line) => {
        const m = /^RESULT w=(\d+)$/.exec(line);
        if (m) {
          lastSourceWrite.value = Number(m[1]);
          if (lastSourceWrite.value + 1 >= BEFORE_MIGRATION) startMigration();
        }
      },
    });
    // The source never reports an exit: it ends paused after the move and is told to quit.
    const sourceEnded: Promise<GuestError | GuestResult> = sourceRun.catch((e: unknown) => e as GuestError);
    let destRes: GuestResult | undefined;
    let migration: Record<string, unknown> = {};
    try {
      await Promise.race([sourceReady, sourceEnded.then((r) => Promise.reject(new Error(`source ended before the writes began: ${r instanceof Error ? r.message : ''}`)))]);
      const src = await QmpClient.connect(qmpA, 10_000);
      const dst = await QmpClient.connect(qmpB, 10_000);
      try {
        // QEMU's default bandwidth limit (32 MiB/s) would only make the move slower.
        await src.execute('migrate-set-parameters', { 'max-bandwidth': 1 << 30 });
        await src.execute('migrate', { uri: `unix:${migSock}` });
        migration = await waitMigration(src, 120_000);
        assert.equal(migration['status'], 'completed', `migration: ${JSON.stringify(migration)}`);
        const st = (await dst.execute('query-status')) as { status: string; running: boolean };
        assert.equal(st.running, true, `destination runs after the move: ${JSON.stringify(st)}`);
        migrated = true;
        // The writer may have done its eight writes on the destination already.
        if (!toldMoved && destWrites >= AFTER_MIGRATION && destConsole !== null) {
          toldMoved = true;
          (destConsole as GuestConsole).send('moved\n');
        }
        await src.execute('quit').catch(() => undefined); // the source exits while answering
      } finally {
        src.close();
        dst.close();
      }
      destRes = await destRun;
    } finally {
      const ends = await Promise.all([sourceEnded, destRun.catch((e: unknown) => e)]);
      void ends;
      await backendA.stop(5000);
      await backendB.stop(5000);
    }
    const source = await sourceEnded;
    assert.ok(source instanceof GuestError && source.failure === GuestFailure.QEMU_FAILED, 'the source QEMU quit after the move, its guest gone');
    const logA = backendA.output();
    const logB = backendB.output();
    await writeFile(join(tmp.path, '..', 'vts-migration-a.log'), logA).catch(() => undefined);
    await writeFile(join(tmp.path, '..', 'vts-migration-b.log'), logB).catch(() => undefined);
    t.diagnostic(`migration: ${JSON.stringify({ status: migration['status'], 'total-time': migration['total-time'], downtime: migration['downtime'], ram: migration['ram'] })}`);
    t.diagnostic(`source acknowledged writes 0..${lastSourceWrite.value}; destination ${destWrites}; guest wrote ${destRes.results.get('written')}`);

    const written = Number(destRes.results.get('written'));
    assert.ok(written >= BEFORE_MIGRATION + AFTER_MIGRATION, `writes before and after the move: ${written}\n${destRes.output}`);
    assert.equal(destRes.results.get('verified'), String(written), 'every block read back on the destination');
    assert.ok(destWrites >= AFTER_MIGRATION, 'the destination acknowledged writes');
    // The source back-end logged what it wrote while QEMU's dirty log was on.
    const marks = /dirty page logging (?:off|ended with the session): (\d+) page marks/.exec(logA);
    assert.match(logA, /dirty page logging on/, `source back-end log:\n${logA}`);
    assert.ok(marks && Number(marks[1]) > 0, `page marks on the source:\n${logA}`);
    assert.doesNotMatch(logB, /dirty page logging on/, 'the destination was not asked to log');
    // The image holds every acknowledged block.
    const image = await readFile(img);
    for (let i = 0; i < written; i++) {
      assert.ok(image.subarray(i * BLOCK, (i + 1) * BLOCK).equals(chunk(i % CHUNKS)), `block ${i} in the image`);
    }
    assert.ok(image.subarray(written * BLOCK, (written + 1) * BLOCK).every((b) => b === 0), 'nothing past the last write');
  });
});
