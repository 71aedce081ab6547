/**
 * `virtio-ts blk --threads 2` serving a real Linux guest (QEMU 7.2, q35, 2 vCPUs,
 * vhost-user-blk-pci num-queues=2): each queue on its own worker thread. A writer pinned to each
 * vCPU (blk-mq: one hardware queue per CPU) writes a pattern with O_DIRECT and reads it back;
 * the guest's sha256 of what it read must be the pattern's, the host compares the image byte for
 * byte, and the per-queue counters (`--stats-interval`, counted by the worker threads into shared
 * memory) show both queues carried requests, each ring's stop logged by the thread that owns it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bootGuest, ensureGuestDeps, makeRawImage, makeTempDir, repoRoot, startProcess, waitForPath, withConsole, type TempDir } from './support/guest.js';
import { xorshiftBytes } from './support/v86-pattern.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

const IMAGE_SIZE = 8 << 20;
const BLOCKS = 64;
/** Writer c writes BLOCKS 4 KiB blocks at 1 MiB + c * 2 MiB. */
const base = (c: number): number => (1 << 20) + c * (2 << 20);

/** The xorshift test bytes every guest test uses (test/support/v86-pattern.ts), as a Buffer. */
const pattern = (len: number, seed: number): Buffer => Buffer.from(xorshiftBytes(len, seed));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const script = `
wait_path /dev/vda || fail "no /dev/vda"
result nr_hw_queues "$(ls /sys/block/vda/mq | wc -l)"
result nproc "$(nproc)"
for c in 0 1; do
  taskset -c $c dd if=/pattern$c.bin of=/dev/vda bs=4096 seek=$(( (${1 << 20} + c * ${2 << 20}) / 4096 )) count=${BLOCKS} oflag=direct conv=notrunc 2>/tmp/w$c.err &
done
wait || true
for c in 0 1; do
  taskset -c $c dd if=/dev/vda of=/tmp/r$c.bin bs=4096 skip=$(( (${1 << 20} + c * ${2 << 20}) / 4096 )) count=${BLOCKS} iflag=direct 2>/tmp/r$c.err || fail "read $c: $(cat /tmp/r$c.err)"
  result read\${c}_sha256 "$(sha256sum /tmp/r$c.bin | cut -d' ' -f1)"
done
sync
blockdev --flushbufs /dev/vda || fail "flush"
`;

describe('virtio-ts blk --threads: queues on worker threads serving a real guest (QEMU 7.2)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-threads-guest-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('q35, 2 vCPUs, num-queues=2 on 2 ring threads: O_DIRECT writes and reads on both queues, sha256 and image compared', async (t) => {
    const img = tmp.file('disk.img');
    await makeRawImage(img, IMAGE_SIZE);
    const sock = tmp.file('blk.sock');
    const patterns = [pattern(BLOCKS * 4096, 0x7a11), pattern(BLOCKS * 4096, 0x7a12)];
    const be = startProcess(process.execPath, [CLI, 'blk', '--socket-path', sock, '--image', img, '--num-queues', '2', '--threads', '2', '--stats-interval', '1']);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 30_000 });
      const res = await bootGuest({
        machine: 'q35',
        modules: ['virtio_blk'],
        script,
        extraFiles: patterns.map((data, c) => ({ path: `/pattern${c}.bin`, data })),
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,disable-legacy=on,num-queues=2'],
        smp: 2,
        memfd: true,
        timeoutMs: 120_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts blk -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`guest /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      // The next counters line printed after the guest ended holds every request it made.
      const seen = be.output().length;
      const deadline = Date.now() + 10_000;
      let statsLine: string | undefined;
      while (statsLine === undefined && Date.now() < deadline) {
        statsLine = be.output().slice(seen).split('\n').find((l) => l.includes('virtio-ts blk stats:') && l.includes('q1 '));
        if (statsLine === undefined) await new Promise<void>((resolve) => be.child.stderr!.once('data', () => resolve()));
      }
      const ended = await be.stop(10_000);
      const log = be.output();
      await withConsole(res, log, async () => {
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM (its threads too)');
        assert.equal(res.results.get('nproc'), '2');
        assert.equal(res.results.get('nr_hw_queues'), '2', 'the guest built two hardware queues');
        for (const c of [0, 1]) assert.equal(res.results.get(`read${c}_sha256`), sha256(patterns[c]!), `writer ${c} read back what it wrote`);
        const image = await readFile(img);
        const expected = Buffer.alloc(IMAGE_SIZE);
        for (const c of [0, 1]) patterns[c]!.copy(expected, base(c));
        const diff = image.findIndex((b, i) => b !== expected[i]);
        assert.equal(diff, -1, `image differs from the expected bytes at offset ${diff}`);
        // Per-queue counters, counted by the ring threads into shared memory.
        assert.ok(statsLine !== undefined, 'a counters line after the guest ended');
        for (const q of [0, 1]) {
          const m = new RegExp(`q${q} req=(\\d+)`).exec(statsLine);
          assert.ok(m && Number(m[1]) > 0, `queue ${q} carried requests: ${statsLine}`);
        }
        assert.match(log, /2 ring threads serving 2 queues/);
        // Each ring was served (and stopped) by the thread owning it: ring i on thread i mod 2.
        for (const q of [0, 1]) assert.match(log, new RegExp(`\\[ring thread ${q}\\] INFO ring ${q} stopped: [1-9]\\d* buffers served`), `ring ${q} on thread ${q}`);
      });
    } finally {
      await be.stop();
    }
  });
});
