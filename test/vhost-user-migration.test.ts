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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureGuestDeps, makeRawImage, makeTempDir, repoRoot, startProcess, waitForPath, type ManagedProcess, type TempDir } from './support/guest.js';
import { runMigration, type MigrationRunResult } from './support/migration.js';

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
    const sockA = tmp.file('a.sock');
    const sockB = tmp.file('b.sock');
    const backendA = await startBlk(sockA, img);
    const backendB = await startBlk(sockB, img);
    const disk = (sock: string): string[] => ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,id=disk0'];
    let lastSourceWrite = -1;
    let run: MigrationRunResult;
    try {
      run = await runMigration({
        modules: ['virtio_blk'],
        script: SCRIPT,
        extraFiles: [{ path: '/pattern.bin', data: pattern }],
        sourceArgs: disk(sockA),
        destinationArgs: disk(sockB),
        qmpSource: tmp.file('a.qmp'),
        qmpDestination: tmp.file('b.qmp'),
        migrationSocket: tmp.file('migrate.sock'),
        migrateWhen: (line) => {
          const m = /^RESULT w=(\d+)$/.exec(line);
          if (m) lastSourceWrite = Number(m[1]);
          return lastSourceWrite + 1 >= BEFORE_MIGRATION;
        },
        progressOnDestination: (line) => /^RESULT w=\d+$/.test(line),
        progressNeeded: AFTER_MIGRATION,
        timeoutMs: RUN_TIMEOUT_MS,
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n----- back-end A -----\n${backendA.output()}\n----- back-end B -----\n${backendB.output()}`, { cause: e });
    } finally {
      await backendA.stop(5000);
      await backendB.stop(5000);
    }
    const destRes = run.destination;
    const logA = backendA.output();
    const logB = backendB.output();
    const migration = run.migration;
    t.diagnostic(`migration: ${JSON.stringify({ status: migration['status'], 'total-time': migration['total-time'], downtime: migration['downtime'] })}`);
    t.diagnostic(`source acknowledged writes 0..${lastSourceWrite}; destination ${run.destinationProgress}; guest wrote ${destRes.results.get('written')}`);

    const written = Number(destRes.results.get('written'));
    assert.ok(written >= BEFORE_MIGRATION + AFTER_MIGRATION, `writes before and after the move: ${written}\n${destRes.output}`);
    assert.equal(destRes.results.get('verified'), String(written), 'every block read back on the destination');
    assert.ok(run.destinationProgress >= AFTER_MIGRATION, 'the destination acknowledged writes');
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
