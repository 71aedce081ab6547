/**
 * The `virtio-ts blk` back-end serving a real Linux guest through QEMU 7.2's vhost-user-blk:
 * q35 with modern PCI, microvm with virtio-mmio version 2, the packed ring, transitional PCI
 * driven through its legacy interface, event_idx off, two queues on two vCPUs, and a back-end
 * killed with SIGKILL in the middle of a write loop and restarted (reconnect with inflight
 * tracking). Every run writes known patterns with O_DIRECT, reads them back, flushes, powers off,
 * and the host compares the image byte for byte.
 *
 * The back-end runs as the built CLI in a child process, as a user would run it.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bootGuest,
  ensureGuestDeps,
  isSocket,
  makeRawImage,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  type GuestMachine,
  type GuestResult,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const HELD_WRITE_BLK = join(repoRoot, 'dist', 'src', 'cli', 'held-write-blk.js');

// 6 Reserved Feature Bits / 5.2.3.
const BIT = { RO: 5, FLUSH: 9, MQ: 12, EVENT_IDX: 29, VERSION_1: 32, RING_PACKED: 34 } as const;

const IMAGE_SIZE = 4 << 20;
const SECTOR = 512;
const PATTERN_OFFSET = 64 * 1024;
const PATTERN_LEN = 128 * 1024;
const SEED_OFFSET = 1 << 20;
const SEED_LEN = 8192;

/** xorshift bytes: every position differs from a fill, and different seeds differ. */
function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Starts `virtio-ts blk` on `sock` and resolves once it listens. */
async function startBlk(
  sock: string,
  img: string,
  extra: readonly string[] = [],
  o: { holdWritesFrom?: number; onLine?: (line: string) => void } = {},
): Promise<ManagedProcess> {
  // The held-write launcher is `virtio-ts blk` with writes past a byte offset never completed.
  const cmd = o.holdWritesFrom === undefined ? [CLI] : [HELD_WRITE_BLK, String(o.holdWritesFrom)];
  const p = startProcess(process.execPath, [...cmd, 'blk', '--socket-path', sock, '--image', img, ...extra], o.onLine ? { onLine: o.onLine } : {});
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts blk did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/**
 * Guest: report the disk's features, write the pattern with O_DIRECT, read it back with O_DIRECT,
 * compare, flush (sync and BLKFLSBUF), read the host's seed region.
 */
const blkScript = `
wait_path /dev/vda || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result features "$(virtio_features "$dev")"
result size_sectors "$(cat /sys/block/vda/size)"
result nr_hw_queues "$(ls /sys/block/vda/mq | wc -l)"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} oflag=direct conv=notrunc 2>/tmp/dd.err || fail "write: $(cat /tmp/dd.err)"
dd if=/dev/vda of=/tmp/back.bin bs=4096 skip=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} iflag=direct 2>/tmp/dd.err || fail "read: $(cat /tmp/dd.err)"
cmp /pattern.bin /tmp/back.bin || fail "read-back differs"
result readback_sha256 "$(sha256sum /tmp/back.bin | cut -d' ' -f1)"
sync
blockdev --flushbufs /dev/vda || fail "flush"
dd if=/dev/vda of=/tmp/seed.bin bs=4096 skip=${SEED_OFFSET / 4096} count=${SEED_LEN / 4096} iflag=direct 2>/dev/null || fail "seed read"
result seed_sha256 "$(sha256sum /tmp/seed.bin | cut -d' ' -f1)"
`;

/** microvm: MagicValue and Version registers of the disk's MMIO window (4.2.2). */
const mmioScript = `
base=$(grep LNRO0005 /proc/iomem | head -n 1 | sed 's/^ *\\([0-9a-f]*\\)-.*/\\1/')
[ -n "$base" ] || fail "no virtio-mmio region in /proc/iomem"
result mmio_magic "$(devmem 0x$base 32)"
result mmio_version "$(devmem $((0x$base + 4)) 32)"
`;

/**
 * Two queues on two vCPUs: a writer pinned to each CPU (blk-mq maps one hardware queue per CPU),
 * each reads its blocks back, then the per-queue run counts from blk-mq debugfs.
 */
const mqScript = `
mount -t debugfs none /sys/kernel/debug 2>/dev/null
for c in 0 1; do
  taskset -c $c dd if=/pattern.bin of=/dev/vda bs=4096 seek=$((${(2 * SEED_OFFSET) / 4096} + c * 64)) count=32 oflag=direct conv=notrunc 2>/tmp/mq$c.err &
done
wait || true
for c in 0 1; do
  taskset -c $c dd if=/dev/vda of=/tmp/mq$c.bin bs=4096 skip=$((${(2 * SEED_OFFSET) / 4096} + c * 64)) count=32 iflag=direct 2>/dev/null || fail "mq read $c"
  cmp /tmp/mq$c.bin /pattern.bin || fail "mq read-back $c differs"
done
# blk-mq debugfs: how often each hardware queue was run (dispatched requests to the driver).
for q in 0 1; do
  result hctx\${q}_run "$(cat /sys/kernel/debug/block/vda/hctx$q/run 2>/dev/null)"
done
result nproc "$(nproc)"
`;

describe('virtio-ts blk: vhost-user back-end serving a real Linux guest (QEMU 7.2)', { skip, timeout: 600_000 }, () => {
  let tmp: TempDir;
  const writePattern = pattern(PATTERN_LEN, 0x5eed);
  const seed = pattern(SEED_LEN, 0xbeef);

  before(async () => {
    tmp = await makeTempDir('vts-vublk-');
  });
  after(async () => {
    await tmp?.remove();
  });

  async function seededImage(name: string): Promise<string> {
    const img = tmp.file(name);
    await makeRawImage(img, IMAGE_SIZE);
    const fh = await open(img, 'r+');
    try {
      await fh.write(seed, 0, seed.length, SEED_OFFSET);
    } finally {
      await fh.close();
    }
    return img;
  }

  interface Run {
    machine: GuestMachine;
    device: string;
    smp?: number;
    backendArgs?: string[];
    extraScript?: string;
    /** Replaces the O_DIRECT round-trip script. */
    script?: string;
    append?: string;
  }

  /** Back-end up, guest run, back-end stopped (SIGTERM: it must end cleanly), image read. */
  async function blkRun(t: TestContext, name: string, r: Run): Promise<{ res: GuestResult; image: Buffer; backendLog: string }> {
    const img = await seededImage(`${name}.img`);
    const sock = tmp.file(`${name}.sock`);
    const be = await startBlk(sock, img, r.backendArgs);
    try {
      const res = await bootGuest({
        machine: r.machine,
        modules: ['virtio_blk'],
        script: (r.script ?? blkScript) + (r.extraScript ?? ''),
        extraFiles: [{ path: '/pattern.bin', data: writePattern }],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `${r.device},chardev=c0`],
        append: r.append ?? '',
        smp: r.smp ?? 1,
        memfd: true,
        timeoutMs: 60_000,
      }).catch(async (e: unknown) => {
        // The guest console is in the error; add the back-end's log.
        throw new Error(`${(e as Error).message}\n----- virtio-ts blk -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`${name}: /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      const ended = await be.stop(5000);
      assert.deepEqual(ended, { code: 0, signal: null }, `back-end ends cleanly on SIGTERM\n${be.output()}`);
      assert.equal(isSocket(sock), false, 'back-end removed its socket');
      return { res, image: await readFile(img), backendLog: be.output() };
    } finally {
      await be.stop();
    }
  }

  function checkDisk(res: GuestResult, image: Buffer): void {
    assert.equal(res.results.get('size_sectors'), String(IMAGE_SIZE / SECTOR), 'capacity');
    assert.equal(res.results.get('readback_sha256'), sha256(writePattern), 'guest read back what it wrote');
    assert.equal(res.results.get('seed_sha256'), sha256(seed), 'guest read what the host put in the image');
    // Byte for byte: the pattern where the guest wrote it, the seed intact, zeros elsewhere.
    const expected = Buffer.alloc(IMAGE_SIZE);
    writePattern.copy(expected, PATTERN_OFFSET);
    seed.copy(expected, SEED_OFFSET);
    const mqBase = 2 * SEED_OFFSET;
    if (res.results.has('nproc')) {
      writePattern.copy(expected, mqBase, 0, 32 * 4096);
      writePattern.copy(expected, mqBase + 64 * 4096, 0, 32 * 4096);
    }
    assert.equal(image.length, IMAGE_SIZE);
    const diff = image.findIndex((b, i) => b !== expected[i]);
    assert.equal(diff, -1, `image differs from the expected bytes at offset ${diff}`);
  }

  function bit(res: GuestResult, n: number): boolean {
    const f = res.results.get('features');
    assert.ok(f !== undefined && /^[01]{64}$/.test(f), `features string: ${String(f)}`);
    return f[n] === '1';
  }

  it('q35, modern PCI (vhost-user-blk-pci, disable-legacy=on): O_DIRECT writes and reads reach the image', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'q35', { machine: 'q35', device: 'vhost-user-blk-pci,disable-legacy=on,num-queues=1' });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      assert.ok(bit(res, BIT.VERSION_1), 'VIRTIO_F_VERSION_1');
      assert.ok(bit(res, BIT.FLUSH), 'VIRTIO_BLK_F_FLUSH: the guest flushes through the device');
      assert.ok(bit(res, BIT.EVENT_IDX), 'VIRTIO_F_EVENT_IDX offered and used by default');
      assert.equal(bit(res, BIT.RING_PACKED), false, 'split ring unless packed=on');
    });
  });

  it('microvm, virtio-mmio version 2 (vhost-user-blk): O_DIRECT round trip', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'microvm', {
      machine: 'microvm',
      device: 'vhost-user-blk,num-queues=1',
      extraScript: mmioScript,
      append: 'iomem=relaxed',
    });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      assert.equal(res.results.get('mmio_magic')?.toLowerCase(), '0x74726976', 'MagicValue "virt"');
      assert.equal(Number(res.results.get('mmio_version')), 2, 'MMIO version 2');
      assert.ok(bit(res, BIT.VERSION_1), 'VIRTIO_F_VERSION_1');
    });
  });

  it('q35, packed=on: the guest negotiated VIRTIO_F_RING_PACKED (bit 34) and its I/O reaches the image', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'packed', { machine: 'q35', device: 'vhost-user-blk-pci,disable-legacy=on,num-queues=1,packed=on' });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      assert.ok(bit(res, BIT.RING_PACKED), 'VIRTIO_F_RING_PACKED negotiated');
      assert.ok(bit(res, BIT.VERSION_1), 'VIRTIO_F_VERSION_1');
    });
  });

  it('q35, transitional PCI driven through the legacy interface (disable-legacy=off,disable-modern=on)', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'legacy', {
      machine: 'q35',
      device: 'vhost-user-blk-pci,disable-legacy=off,disable-modern=on,num-queues=1',
    });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      // A legacy driver sees only 32 feature bits: VERSION_1 cannot have been negotiated.
      assert.equal(bit(res, BIT.VERSION_1), false, 'legacy interface: no VIRTIO_F_VERSION_1');
    });
  });

  it('q35, event_idx=off: the driver and device work without event suppression indices', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'noevidx', { machine: 'q35', device: 'vhost-user-blk-pci,disable-legacy=on,num-queues=1,event_idx=off' });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      assert.equal(bit(res, BIT.EVENT_IDX), false, 'VIRTIO_F_EVENT_IDX not negotiated');
    });
  });

  it('q35, two queues on two vCPUs (num-queues=2, -smp 2): writers pinned to each CPU, both queues used', async (t) => {
    const { res, image, backendLog } = await blkRun(t, 'mq', {
      machine: 'q35',
      device: 'vhost-user-blk-pci,disable-legacy=on,num-queues=2',
      smp: 2,
      backendArgs: ['--num-queues', '2'],
      extraScript: mqScript,
    });
    await withConsole(res, backendLog, () => {
      checkDisk(res, image);
      assert.ok(bit(res, BIT.MQ), 'VIRTIO_BLK_F_MQ');
      assert.equal(res.results.get('nproc'), '2');
      assert.equal(res.results.get('nr_hw_queues'), '2', 'the guest built two hardware queues');
      for (const q of [0, 1]) {
        const n = Number(res.results.get(`hctx${q}_run`));
        assert.ok(n > 0, `requests went through hardware queue ${q} (run ${String(res.results.get(`hctx${q}_run`))})`);
      }
      // Host side: the back-end's per-ring totals (logged when a ring stops) show both rings carried requests.
      for (const q of [0, 1]) {
        const served = [...backendLog.matchAll(new RegExp(`ring ${q} stopped: (\\d+) buffers served`, 'g'))].map((m) => Number(m[1]));
        assert.ok(served.some((n) => n > 0), `ring ${q} served requests (logged totals: ${JSON.stringify(served)})`);
      }
    });
  });

  it('q35, --read-only --serial: the guest sees a read-only disk (VIRTIO_BLK_F_RO) with the serial, its write fails, the image is untouched', async (t) => {
    const SERIAL = 'vts-ro-serial-1';
    const roScript = `
wait_path /dev/vda || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result features "$(virtio_features "$dev")"
result ro "$(cat /sys/block/vda/ro)"
result serial "$(cat /sys/block/vda/serial)"
if dd if=/pattern.bin of=/dev/vda bs=4096 seek=${PATTERN_OFFSET / 4096} count=1 oflag=direct conv=notrunc 2>/dev/null; then result write accepted; else result write refused; fi
dd if=/dev/vda of=/tmp/seed.bin bs=4096 skip=${SEED_OFFSET / 4096} count=${SEED_LEN / 4096} iflag=direct 2>/dev/null || fail "seed read"
result seed_sha256 "$(sha256sum /tmp/seed.bin | cut -d' ' -f1)"
`;
    const { res, image, backendLog } = await blkRun(t, 'readonly', {
      machine: 'q35',
      device: 'vhost-user-blk-pci,disable-legacy=on,num-queues=1',
      backendArgs: ['--read-only', '--serial', SERIAL],
      script: roScript,
    });
    await withConsole(res, backendLog, () => {
      assert.ok(bit(res, BIT.RO), 'VIRTIO_BLK_F_RO negotiated');
      assert.equal(res.results.get('ro'), '1', 'the guest marked the disk read-only');
      assert.equal(res.results.get('serial'), SERIAL, 'VIRTIO_BLK_T_GET_ID returned the serial');
      assert.equal(res.results.get('write'), 'refused', 'a write to the read-only disk fails');
      assert.equal(res.results.get('seed_sha256'), sha256(seed), 'reads work');
      const expected = Buffer.alloc(IMAGE_SIZE);
      seed.copy(expected, SEED_OFFSET);
      const diff = image.findIndex((b, i) => b !== expected[i]);
      assert.equal(diff, -1, `the image changed at offset ${diff}`);
    });
  });

  /**
   * The first back-end holds every write from block HOLD_AT on (it never completes them, and none
   * of their bytes reach the image); once it reports the held write it is killed with SIGKILL, so
   * the request is certainly in flight: taken from the ring and marked in the inflight area, not
   * completed. The plain back-end started on the same socket must resubmit it from the inflight
   * area (vhost-user.rst "Inflight I/O tracking") for the guest's write loop to finish.
   */
  interface ReconnectOpts {
    /** Concurrent writers in the guest (1). */
    writers?: number;
    /** Hold writes in flight at the kill (true), or kill between writes. */
    hold?: boolean;
    /** vCPUs (1); with more, writer w is pinned to CPU w % smp (blk-mq: one queue per CPU). */
    smp?: number;
    backendArgs?: string[];
  }

  async function reconnectRun(t: TestContext, name: string, device: string, o: ReconnectOpts = {}): Promise<GuestResult> {
    const writers = o.writers ?? 1;
    const hold = o.hold ?? true;
    const smp = o.smp ?? 1;
    const backendArgs = o.backendArgs ?? [];
    const BLOCK = 64 * 1024;
    const WRITES = 24;
    // Writer w writes blocks w, w + writers, ...; each stops at its first block from HOLD_AT on,
    // so once `writers` distinct blocks are held, that many requests are in flight at the kill.
    // Held in the middle of the loop: writes before and after the restart.
    const HOLD_AT = Math.min(6, Math.floor(WRITES / writers / 2)) * writers;
    const BASE = 2 << 20; // past the seed
    const blocks = pattern(BLOCK * WRITES, 0xc0ffee);
    const img = await seededImage(`${name}.img`);
    const sock = tmp.file(`${name}.sock`);
    const backends: ManagedProcess[] = [];
    const acked: number[] = [];
    let restart: Promise<void> | undefined;
    let restartError: unknown;
    let ackedBeforeKill = -1;
    const heldBlocks = new Set<number>();
    const killAndRestart = (): void => {
      if (restart !== undefined) return;
      const old = backends[0]!;
      ackedBeforeKill = acked.length;
      old.child.kill('SIGKILL');
      restart = (async () => {
        await old.exited;
        backends.push(await startBlk(sock, img, backendArgs));
      })().catch((e: unknown) => {
        restartError = e;
      });
    };
    backends.push(
      await startBlk(sock, img, backendArgs, {
        ...(hold ? { holdWritesFrom: BASE + HOLD_AT * BLOCK } : {}),
        onLine: (line) => {
          const m = /^HELD write offset=(\d+)/.exec(line);
          if (!m) return;
          heldBlocks.add(Math.floor((Number(m[1]) - BASE) / BLOCK));
          if (heldBlocks.size === writers) killAndRestart();
        },
      }),
    );
    // Each write is one dd with O_DIRECT; the guest prints its block number once dd returned.
    const script = `
wait_path /dev/vda || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result features "$(virtio_features "$dev")"
pids=
w=0
while [ $w -lt ${writers} ]; do
  ${smp > 1 ? `taskset -c $((w % ${smp})) ` : ''}sh /writer.sh $w &
  pids="$pids $!"
  w=$((w + 1))
done
for p in $pids; do wait $p || fail "a writer failed"; done
sync
blockdev --flushbufs /dev/vda || fail "flush"
result done ${WRITES}
`;
    // One writer: blocks $1, $1 + writers, ...
    const writerScript = `i=$1
while [ $i -lt ${WRITES} ]; do
  dd if=/blocks.bin of=/dev/vda bs=${BLOCK} skip=$i seek=$((${BASE / BLOCK} + i)) count=1 oflag=direct conv=notrunc 2>/tmp/dd$1.err || { echo "RESULT error=write $i: $(cat /tmp/dd$1.err)"; exit 1; }
  echo "ACK $i"
  i=$((i + ${writers}))
done
`;
    try {
      const res = await bootGuest({
        machine: 'q35',
        modules: ['virtio_blk'],
        script,
        smp,
        extraFiles: [
          { path: '/blocks.bin', data: blocks },
          { path: '/writer.sh', data: writerScript, mode: 0o755 },
        ],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock},reconnect=1`, '-device', `${device},chardev=c0`],
        memfd: true,
        timeoutMs: 120_000,
        onLine: (line) => {
          const m = /^ACK (\d+)$/.exec(line);
          if (!m) return;
          acked.push(Number(m[1]));
          // Without holding: killed between writes (the next may or may not have been posted).
          if (!hold && acked.length === HOLD_AT) killAndRestart();
        },
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- back-ends -----\n${backends.map((b) => b.output()).join('\n-----\n')}`, { cause: e });
      });
      await restart;
      assert.equal(restartError, undefined, String(restartError));
      t.diagnostic(`${name}: QEMU exited at ${res.totalMs.toFixed(0)} ms; ${backends.length} back-end runs`);
      const logs = backends.map((b) => b.output());
      await withConsole(res, `----- back-ends -----\n${logs.join('\n-----\n')}`, async () => {
        assert.equal(backends.length, 2, 'the back-end was killed and restarted during the run');
        assert.equal(backends[0]!.child.signalCode, 'SIGKILL');
        // The held writes cannot have been acknowledged before the kill.
        assert.ok(ackedBeforeKill >= 0 && ackedBeforeKill <= HOLD_AT, `killed before the held writes were acknowledged (${ackedBeforeKill} acknowledged then)`);
        const perRing = [...logs[1]!.matchAll(/ring (\d+): resubmitting (\d+) inflight buffers/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
        const resubmitted = perRing.reduce((a, [, n]) => a + n, 0);
        if (smp > 1 && hold) {
          const rings = new Set(perRing.map(([r]) => r));
          assert.equal(rings.size, Math.min(smp, writers), `held writes resubmitted on every queue (${JSON.stringify(perRing)})`);
        }
        t.diagnostic(`${name}: ${resubmitted} buffers resubmitted by the restarted back-end`);
        if (hold) {
          assert.deepEqual([...heldBlocks].sort((a, b) => a - b), Array.from({ length: writers }, (_, w) => HOLD_AT + w), 'each writer held at its first block from HOLD_AT');
          assert.ok(resubmitted >= writers, `the restarted back-end resubmitted the ${writers} held write(s) (${resubmitted})`);
        }
        assert.equal(res.results.get('done'), String(WRITES), 'the guest finished its write loop');
        const expectAcks = Array.from({ length: WRITES }, (_, i) => i);
        if (writers === 1) assert.deepEqual(acked, expectAcks, 'every write acknowledged, in order');
        else assert.deepEqual([...acked].sort((a, b) => a - b), expectAcks, 'every write acknowledged once');
        const ended = await backends[1]!.stop(5000);
        assert.deepEqual(ended, { code: 0, signal: null }, 'restarted back-end ends cleanly on SIGTERM');
        const image = await readFile(img);
        for (const i of acked) {
          const got = image.subarray(BASE + i * BLOCK, BASE + (i + 1) * BLOCK);
          const want = blocks.subarray(i * BLOCK, (i + 1) * BLOCK);
          if (!got.equals(want)) {
            const at = got.findIndex((b, k) => b !== want[k]);
            const where = blocks.indexOf(got.subarray(0, 64));
            assert.fail(
              `acknowledged write ${i} is ${at < 0 ? 'missing' : `torn at byte ${at}`} in the image ` +
                `(its first bytes ${where < 0 ? 'are not from the pattern' : `are block ${where / BLOCK}'s`})`,
            );
          }
        }
        assert.ok(image.subarray(SEED_OFFSET, SEED_OFFSET + SEED_LEN).equals(seed), 'seed untouched');
        assert.ok(image.subarray(BASE + WRITES * BLOCK).every((b) => b === 0), 'nothing written past the loop');
      });
      return res;
    } finally {
      await restart;
      for (const b of backends) await b.stop();
    }
  }

  it('reconnect (split ring): back-end killed with SIGKILL holding a write in flight, restarted on the same socket; the write is resubmitted, every acknowledged write is in the image, none torn', async (t) => {
    const res = await reconnectRun(t, 'reconnect', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1');
    assert.equal(bit(res, BIT.RING_PACKED), false, 'split ring');
  });

  it('reconnect (packed ring): the same with packed=on; the held write is resubmitted from the packed inflight area', async (t) => {
    const res = await reconnectRun(t, 'reconnect-packed', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1,packed=on');
    assert.ok(bit(res, BIT.RING_PACKED), 'VIRTIO_F_RING_PACKED negotiated');
  });

  it('reconnect (split ring, 4 writers): four writes held in flight at the kill are all resubmitted and reach the image', async (t) => {
    const res = await reconnectRun(t, 'reconnect-4', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1', { writers: 4 });
    assert.equal(bit(res, BIT.RING_PACKED), false, 'split ring');
  });

  it('reconnect (packed ring, 4 writers): four writes held in flight at the kill are all resubmitted and reach the image', async (t) => {
    const res = await reconnectRun(t, 'reconnect-packed-4', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1,packed=on', { writers: 4 });
    assert.ok(bit(res, BIT.RING_PACKED), 'VIRTIO_F_RING_PACKED negotiated');
  });

  it('reconnect (split and packed), killed between writes: the restarted back-end takes the rings up where they were', async (t) => {
    const split = await reconnectRun(t, 'reconnect-idle', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1', { hold: false });
    assert.equal(bit(split, BIT.RING_PACKED), false, 'split ring');
    const packed = await reconnectRun(t, 'reconnect-idle-packed', 'vhost-user-blk-pci,disable-legacy=on,num-queues=1,packed=on', { hold: false });
    assert.ok(bit(packed, BIT.RING_PACKED), 'VIRTIO_F_RING_PACKED negotiated');
  });

  it('reconnect, two queues on two vCPUs: a write held on each queue at the kill; both rings resubmit from their own inflight regions', async (t) => {
    const res = await reconnectRun(t, 'reconnect-mq', 'vhost-user-blk-pci,disable-legacy=on,num-queues=2', {
      writers: 2,
      smp: 2,
      backendArgs: ['--num-queues', '2'],
    });
    assert.ok(bit(res, BIT.MQ), 'VIRTIO_BLK_F_MQ');
  });
});
