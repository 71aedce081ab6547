/**
 * A real Linux guest (QEMU 7.2, q35, vhost-user-blk-pci) on `virtio-ts blk --nbd`: the disk lives
 * in a qcow2 image served by qemu-nbd. The guest writes a pattern with O_DIRECT, reads it back,
 * reports its sha256, reads what the host seeded, discards a whole qcow2 cluster (TRIM with
 * --discard=unmap: it reads as zeroes afterwards), flushes; after it
 * powered off and both processes ended, `qemu-img compare` checks the qcow2 image against the
 * expected raw image. The same again over TLS: qemu-nbd with a `tls-creds-x509` object that
 * verifies the client, `virtio-ts blk --nbd nbds+unix://... --nbd-tls-ca/-cert/-key` (credentials
 * made by openssl at run time). Under CI a missing QEMU, kernel, qemu-nbd or nbdkit fails the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  bootGuest,
  ensureGuestDeps,
  inCI,
  isSocket,
  makeTempDir,
  onPath,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  GuestError,
  GuestFailure,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';
import { xorshiftBytes } from './support/v86-pattern.js';
import { makeNbdTlsCredentials } from './support/nbd-tls-certs.js';
import { nbdServerAccepting } from './support/nbd-servers.js';

function deps(): string | false {
  const g = ensureGuestDeps();
  if (!g.ok) return g.reason;
  const missing = ['qemu-nbd', 'qemu-img', 'openssl'].filter((t) => !onPath(t));
  if (missing.length === 0) return false;
  const reason = `${missing.join(', ')} missing; run (as root) scripts/install-guest-deps.sh`;
  if (inCI) throw new GuestError(GuestFailure.MISSING_DEPS, reason);
  return reason;
}
const skip = deps();

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const MiB = 1 << 20;
const IMAGE_SIZE = 8 * MiB;
const PATTERN_OFFSET = 64 * 1024;
const PATTERN_LEN = 256 * 1024;
const SEED_OFFSET = 2 * MiB;
const SEED_LEN = 16 * 1024;
const ZERO_OFFSET = 4 * MiB;
const ZERO_LEN = 64 * 1024;

/** The xorshift test bytes every guest test uses (test/support/v86-pattern.ts), as a Buffer. */
const pattern = (len: number, seed: number): Buffer => Buffer.from(xorshiftBytes(len, seed));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const script = `
wait_path /dev/vda || fail "no /dev/vda"
result size_sectors "$(cat /sys/block/vda/size)"
result discard_max "$(cat /sys/block/vda/queue/discard_max_bytes)"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} oflag=direct conv=notrunc 2>/tmp/dd.err || fail "write: $(cat /tmp/dd.err)"
dd if=/dev/vda of=/tmp/back.bin bs=4096 skip=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} iflag=direct 2>/tmp/dd.err || fail "read: $(cat /tmp/dd.err)"
cmp /pattern.bin /tmp/back.bin || fail "read-back differs"
result readback_sha256 "$(sha256sum /tmp/back.bin | cut -d' ' -f1)"
dd if=/dev/vda of=/tmp/seed.bin bs=4096 skip=${SEED_OFFSET / 4096} count=${SEED_LEN / 4096} iflag=direct 2>/dev/null || fail "seed read"
result seed_sha256 "$(sha256sum /tmp/seed.bin | cut -d' ' -f1)"
blkdiscard -o ${ZERO_OFFSET} -l ${ZERO_LEN} /dev/vda 2>/tmp/bd.err && result discarded ok || result discarded "$(cat /tmp/bd.err)"
sync
blockdev --flushbufs /dev/vda || fail "flush"
`;

describe('virtio-ts blk --nbd: a real Linux guest on a qcow2 image served by qemu-nbd (QEMU 7.2, q35)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-nbd-guest-');
  });
  after(async () => {
    await tmp?.remove();
  });

  for (const tls of [false, true]) {
    it(`${tls ? 'over TLS (nbds+unix, X.509 with a client certificate): ' : ''}O_DIRECT writes and reads with sha256, discard, flush; qemu-img compare against the expected image`, async (t) => {
      const seed = pattern(SEED_LEN, 0xbeef);
      const writePattern = pattern(PATTERN_LEN, 0x5eed);
      // The seeded image: raw, converted to qcow2 (with bytes also where the guest discards).
      const seedRaw = Buffer.alloc(IMAGE_SIZE);
      seed.copy(seedRaw, SEED_OFFSET);
      seedRaw.fill(0x77, ZERO_OFFSET, ZERO_OFFSET + ZERO_LEN);
      await writeFile(tmp.file('seed.raw'), seedRaw);
      const img = tmp.file(`disk-${tls}.qcow2`);
      execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', tmp.file('seed.raw'), img], { timeout: 30_000 });

      const nbdSock = tmp.file(`nbd-${tls}.sock`);
      const creds = tls ? makeNbdTlsCredentials(tmp.file('creds')) : null;
      const tlsServerArgs = creds === null ? [] : ['--object', `tls-creds-x509,id=tls0,dir=${creds.serverDir},endpoint=server,verify-peer=on`, '--tls-creds', 'tls0'];
      const tlsClientArgs = creds === null ? [] : ['--nbd-tls-ca', creds.caCert, '--nbd-tls-cert', creds.clientCert, '--nbd-tls-key', creds.clientKey];
      const nbd = startProcess('qemu-nbd', ['--socket', nbdSock, '--format', 'qcow2', '--persistent', '--shared=4', '--discard=unmap', ...tlsServerArgs, img]);
      let be: ManagedProcess | null = null;
      try {
        await waitForPath(nbdSock, { process: nbd, timeoutMs: 15_000 });
        await nbdServerAccepting({ path: nbdSock }, nbd);
        const sock = tmp.file(`blk-${tls}.sock`);
        be = startProcess(process.execPath, [CLI, 'blk', '--socket-path', sock, '--nbd', `nbd${tls ? 's' : ''}+unix:///?socket=${nbdSock}`, '--nbd-connections', '2', ...tlsClientArgs]);
        await waitForPath(sock, { process: be, timeoutMs: 15_000 });
        const backend = be;
        const res = await bootGuest({
          machine: 'q35',
          modules: ['virtio_blk'],
          script,
          extraFiles: [{ path: '/pattern.bin', data: writePattern }],
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,disable-legacy=on,num-queues=1'],
          smp: 1,
          memfd: true,
          timeoutMs: 120_000,
        }).catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\n----- virtio-ts blk -----\n${backend.output()}`, { cause: e });
        });
        t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
        const ended = await be.stop(5000);
        const log = be.output();
        await withConsole(res, log, () => {
          assert.deepEqual(ended, { code: 0, signal: null }, 'virtio-ts blk ends cleanly on SIGTERM');
          assert.equal(isSocket(sock), false, 'it removed its socket');
          assert.equal(res.results.get('size_sectors'), String(IMAGE_SIZE / 512));
          assert.equal(res.results.get('readback_sha256'), sha256(writePattern), 'the guest read back what it wrote');
          assert.equal(res.results.get('seed_sha256'), sha256(seed), 'the guest read what the host seeded');
          assert.equal(res.results.get('discarded'), 'ok', 'BLKDISCARD through DISCARD (NBD TRIM)');
          assert.match(log, /NBD export .*2 connections, structured replies/);
          if (tls) assert.match(log, /NBD export nbds\+unix:.*, over TLSv1\.[23]/, 'the export is served over TLS');
        });
      } finally {
        await be?.stop(5000);
        assert.deepEqual(await nbd.stop(5000), { code: 0, signal: null }, `qemu-nbd ends cleanly\n${nbd.output()}`);
      }
      const expected = Buffer.from(seedRaw);
      writePattern.copy(expected, PATTERN_OFFSET);
      expected.fill(0, ZERO_OFFSET, ZERO_OFFSET + ZERO_LEN);
      await writeFile(tmp.file('expected.raw'), expected);
      // Exit 0: identical contents (1 is a difference, 2 an error).
      execFileSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', img, tmp.file('expected.raw')], { timeout: 30_000 });
    });
  }
});
