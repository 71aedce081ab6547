/**
 * The NBD backend over TLS (NBD_OPT_STARTTLS, `nbds://`, `nbds+unix://`) against real servers:
 * nbdkit `--tls=require` with X.509 certificates and with a pre-shared key, qemu-nbd with a
 * `tls-creds-x509` object (qcow2 image, `qemu-img compare` afterwards) and a `tls-creds-psk` one. Every server here requires
 * TLS, so a request that succeeds went over TLS. Also the failures, each a typed NbdError: a
 * wrong CA and a host name mismatch (TLS_CERTIFICATE), a wrong PSK (TLS_HANDSHAKE), a server
 * with TLS off (TLS_UNAVAILABLE: no plaintext fallback), and a TLS server asked in plaintext
 * (TLS_REQUIRED); and reconnection over TLS after nbdkit is killed with SIGKILL mid-stream.
 *
 * Credentials are made by `openssl` at run time in a temporary directory; servers listen on Unix
 * sockets and 127.0.0.1 only, and every one is ended by the test with a time bound. Under CI a
 * missing nbdkit, qemu-nbd, qemu-img or openssl fails the test; elsewhere it skips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { RawDriver, header, pattern, segment } from '../src/devices/blk/blk-test-support.js';
import { NbdBackend } from '../src/devices/blk/nbd/nbd-backend.js';
import { NbdError, NbdFault } from '../src/devices/blk/nbd/nbd-error.js';
import { parsePskFile, type NbdTlsOptions } from '../src/devices/blk/nbd/nbd-tls.js';
import { createTestPair } from '../src/devices/blk/test-pair.js';
import { runMain } from '../src/cli/cli-test-helpers.js';
import { BlkReqType, BlkStatus } from '../src/spec/blk.js';
import { makeTempDir, startProcess, waitForPath, type ManagedProcess, type TempDir } from './support/guest-process.js';
import { nbdServerAccepting, nbdToolsMissing, type NbdServerAddress } from './support/nbd-servers.js';
import { makeNbdTlsCredentials, type NbdTlsCredentials } from './support/nbd-tls-certs.js';

const TOOLS = ['qemu-nbd', 'qemu-img', 'nbdkit', 'openssl'] as const;

const skip = nbdToolsMissing(TOOLS);
const MiB = 1 << 20;

type Target = NbdServerAddress;

async function startServer(cmd: string, args: readonly string[], target: Target): Promise<ManagedProcess> {
  const p = startProcess(cmd, args);
  try {
    if ('path' in target) await waitForPath(target.path, { process: p, timeoutMs: 15_000 });
    await nbdServerAccepting(target, p);
  } catch (e) {
    await p.stop();
    throw new Error(`${cmd} did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/** A TCP port free on 127.0.0.1 a moment ago (the kernel's choice). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function virtioDisk(be: NbdBackend): RawDriver {
  const h = be.hints;
  const pair = createTestPair(new BlkDevice(be, { blockSize: h.blockSize, optIoSize: h.optIoSizeBytes / h.blockSize }), { memSize: 16 * MiB });
  return new RawDriver(pair.ctx);
}

const isNbd = (fault: NbdFault) => (e: unknown) => e instanceof NbdError && e.fault === fault;

/**
 * Writes, write-zeroes (NO_HOLE), discard (TRIM), flush and reads through a BlkDevice on `be`,
 * checking every byte read against what was written; returns the expected first `span` bytes.
 */
async function roundTrip(be: NbdBackend, span: number): Promise<Buffer> {
  const raw = virtioDisk(be);
  const expected = Buffer.alloc(span);
  const writes = [0, 256, 1000, 4096].map((sector, i) => ({ sector, data: pattern(64 * 1024, i + 21) }));
  const statuses = await Promise.all(writes.map((w) => raw.status([header(BlkReqType.OUT, w.sector), w.data], [1])));
  assert.deepEqual(statuses, writes.map(() => BlkStatus.OK));
  for (const w of writes) expected.set(w.data, w.sector * 512);
  assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(8, 16, 0)], [1]), BlkStatus.OK);
  expected.fill(0, 8 * 512, 24 * 512);
  // DISCARD is advisory: the bytes are not checked afterwards, only that the server took it.
  assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(6000, 64)], [1]), BlkStatus.OK);
  assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
  for (const w of writes) {
    const r = await raw.send([header(BlkReqType.IN, w.sector)], [64 * 1024, 1]);
    assert.equal(r.ins[1]![0], BlkStatus.OK);
    assert.deepEqual(Buffer.from(r.ins[0]!), expected.subarray(w.sector * 512, w.sector * 512 + 64 * 1024));
  }
  return expected;
}

describe('virtio-ts blk over NBD with TLS: nbdkit and qemu-nbd', { skip, timeout: 180_000 }, () => {
  let tmp: TempDir;
  let creds: NbdTlsCredentials;
  let x509: NbdTlsOptions;
  before(async () => {
    tmp = await makeTempDir('vts-nbd-tls-');
    creds = makeNbdTlsCredentials(tmp.file('creds'));
    x509 = { ca: readFileSync(creds.caCert) };
  });
  after(async () => {
    await tmp?.remove();
  });

  it('nbdkit --tls=require, X.509: round trip over two TLS connections (unix socket); over TCP the certificate must name the host: wrong CA and wrong name are TLS_CERTIFICATE', async () => {
    const sock = tmp.file('x509.sock');
    const srv = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--unix', sock, '--tls=require', `--tls-certificates=${creds.serverDir}`, 'memory', String(16 * MiB)], { path: sock });
    try {
      const be = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: x509, connections: 2 });
      try {
        assert.equal(be.client.connectionCount, 2, 'CAN_MULTI_CONN: each connection did its own TLS handshake');
        await roundTrip(be, 8 * MiB);
      } finally {
        await be.close();
      }
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { ca: readFileSync(creds.wrongCaCert) } }), isNbd(NbdFault.TLS_CERTIFICATE), 'a CA that did not sign the server');
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { ...x509, hostname: 'other.example' } }), isNbd(NbdFault.TLS_CERTIFICATE), 'a name the certificate does not carry');
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`), isNbd(NbdFault.TLS_CERTIFICATE), 'no CA given: the system store does not know the test CA');
      await assert.rejects(NbdBackend.open(`nbd+unix:///?socket=${sock}`), isNbd(NbdFault.TLS_REQUIRED), 'plaintext asked of a TLS-only server');
      const ok = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { ...x509, hostname: 'localhost' } });
      await ok.close();
    } finally {
      await srv.stop(5000);
    }
    const port = await freePort();
    const tcp = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--ipaddr', '127.0.0.1', '--port', String(port), '--tls=require', `--tls-certificates=${creds.serverDir}`, 'memory', String(4 * MiB)], { port });
    try {
      // The certificate names 127.0.0.1 (an IP SAN): the URI's host is checked against it.
      const be = await NbdBackend.open(`nbds://127.0.0.1:${port}/`, { tls: x509 });
      const raw = virtioDisk(be);
      const data = pattern(128 * 1024, 5);
      assert.equal(await raw.status([header(BlkReqType.OUT, 64), data], [1]), BlkStatus.OK);
      const r = await raw.send([header(BlkReqType.IN, 64)], [128 * 1024, 1]);
      assert.deepEqual(r.ins[0], data);
      await be.close();
      await assert.rejects(NbdBackend.open(`nbds://127.0.0.1:${port}/`, { tls: { ...x509, hostname: 'storage.example' } }), isNbd(NbdFault.TLS_CERTIFICATE));
    } finally {
      await tcp.stop(5000);
    }
  });

  it('nbdkit --tls=require --tls-psk: round trip with the key; a wrong key or an unknown identity is TLS_HANDSHAKE', async () => {
    const sock = tmp.file('psk.sock');
    const srv = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--unix', sock, '--tls=require', `--tls-psk=${creds.pskFile}`, 'memory', String(16 * MiB)], { path: sock });
    try {
      const psk = parsePskFile(await readFile(creds.pskFile, 'utf8'));
      const be = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { psk }, connections: 2 });
      try {
        await roundTrip(be, 8 * MiB);
      } finally {
        await be.close();
      }
      const wrong = parsePskFile(await readFile(creds.wrongPskFile, 'utf8'));
      assert.equal(wrong.identity, psk.identity);
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { psk: wrong } }), isNbd(NbdFault.TLS_HANDSHAKE), 'same identity, another key');
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { psk: { identity: 'nobody', key: psk.key } } }), isNbd(NbdFault.TLS_HANDSHAKE), 'an identity the server does not know');
    } finally {
      await srv.stop(5000);
    }
  });

  it('nbdkit --tls=off: nbds fails with TLS_UNAVAILABLE (no plaintext fallback); the CLI says so in one line (exit 1)', async () => {
    const sock = tmp.file('off.sock');
    const srv = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--unix', sock, '--tls=off', 'memory', String(MiB)], { path: sock });
    try {
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: x509 }), isNbd(NbdFault.TLS_UNAVAILABLE));
      const r = await runMain(['blk', '--socket-path', tmp.file('cli-off.sock'), '--nbd', `nbds+unix:///?socket=${sock}`, '--nbd-tls-ca', creds.caCert]);
      assert.equal(r.code, 1);
      assert.match(r.err, /^virtio-ts: nbd: the server does not offer TLS \(NBD_OPT_STARTTLS answered NBD_REP_ERR_\w+\).*\(BACKEND_IO\)\n$/);
      // The same server in plaintext works: the refusal above is about TLS only.
      const plain = await NbdBackend.open(`nbd+unix:///?socket=${sock}`);
      await plain.close();
    } finally {
      await srv.stop(5000);
    }
  });

  it('the CLI with --nbd-tls-ca and a wrong CA: one-line TLS_CERTIFICATE error (exit 1); an unreadable PSK file (exit 1, INVALID_ARGUMENT)', async () => {
    const sock = tmp.file('cli.sock');
    const srv = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--unix', sock, '--tls=require', `--tls-certificates=${creds.serverDir}`, 'memory', String(MiB)], { path: sock });
    try {
      const r = await runMain(['blk', '--socket-path', tmp.file('cli-1.sock'), '--nbd', `nbds+unix:///?socket=${sock}`, '--nbd-tls-ca', creds.wrongCaCert]);
      assert.equal(r.code, 1);
      assert.match(r.err, /^virtio-ts: nbd: .*the server's certificate is not accepted: .*\n$/);
      const p = await runMain(['blk', '--socket-path', tmp.file('cli-2.sock'), '--nbd', `nbds+unix:///?socket=${sock}`, '--nbd-tls-psk', tmp.file('none.psk')]);
      assert.equal(p.code, 1);
      assert.match(p.err, /^virtio-ts: nbd: cannot read the PSK file .*none\.psk.*\(INVALID_ARGUMENT\)\n$/);
    } finally {
      await srv.stop(5000);
    }
  });

  it('nbdkit over TLS killed (SIGKILL) and restarted in the middle of a write stream: every write succeeds once, none is lost', async () => {
    const img = tmp.file('restart.img');
    const SIZE = 16 * MiB;
    await writeFile(img, Buffer.alloc(SIZE));
    const sock = tmp.file('restart.sock');
    const args = ['--foreground', '--exit-with-parent', '--unix', sock, '--tls=require', `--tls-certificates=${creds.serverDir}`, 'file', img];
    let srv = await startServer('nbdkit', args, { path: sock });
    try {
      const be = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: x509, retryTimeoutMs: 15_000 });
      try {
        const raw = virtioDisk(be);
        const WRITES = 192;
        const LEN = 32 * 1024;
        let next = 0;
        let acked = 0;
        let restarted: Promise<void> | null = null;
        const worker = async (): Promise<void> => {
          while (next < WRITES) {
            const i = next++;
            const st = await raw.status([header(BlkReqType.OUT, (i * LEN) / 512), pattern(LEN, i + 1000)], [1]);
            assert.equal(st, BlkStatus.OK, `write ${i}`);
            acked++;
            if (acked === 48 && restarted === null) {
              restarted = (async () => {
                srv.child.kill('SIGKILL');
                await srv.exited;
                await new Promise((r) => setTimeout(r, 300));
                if (existsSync(sock)) await rm(sock);
                srv = await startServer('nbdkit', args, { path: sock });
              })();
            }
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        await restarted;
        assert.equal(acked, WRITES);
        assert.ok(be.client.reconnects >= 1, `reconnected over TLS (${be.client.reconnects})`);
        assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
        const file = await readFile(img);
        for (let i = 0; i < WRITES; i++) {
          assert.ok(file.subarray(i * LEN, (i + 1) * LEN).equals(pattern(LEN, i + 1000)), `write ${i} is in the image`);
        }
      } finally {
        await be.close();
      }
    } finally {
      await srv.stop(5000);
    }
  });

  it('qemu-nbd with tls-creds-psk (keys.psk): round trip over TLS with the pre-shared key; the wrong key is TLS_HANDSHAKE', async () => {
    const img = tmp.file('psk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(8 * MiB)], { timeout: 30_000 });
    const sock = tmp.file('qemu-nbd-psk.sock');
    const srv = await startServer('qemu-nbd', ['--socket', sock, '--format', 'qcow2', '--persistent', '--object', `tls-creds-psk,id=psk0,dir=${creds.pskDir},endpoint=server`, '--tls-creds', 'psk0', img], { path: sock });
    try {
      const psk = parsePskFile(await readFile(creds.pskFile, 'utf8'), creds.pskIdentity);
      const be = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { psk } });
      try {
        await roundTrip(be, 8 * MiB);
      } finally {
        await be.close();
      }
      const wrong = parsePskFile(await readFile(creds.wrongPskFile, 'utf8'));
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: { psk: wrong } }), isNbd(NbdFault.TLS_HANDSHAKE));
    } finally {
      assert.deepEqual(await srv.stop(5000), { code: 0, signal: null }, `qemu-nbd ends cleanly\n${srv.output()}`);
    }
  });

  it('qemu-nbd with tls-creds-x509 (endpoint=server, client certificate verified), qcow2: writes, write-zeroes, discard, flush over TLS; qemu-img compare with the expected image', async () => {
    const img = tmp.file('tls.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(8 * MiB)], { timeout: 30_000 });
    const sock = tmp.file('qemu-nbd-tls.sock');
    const srv = await startServer(
      'qemu-nbd',
      ['--socket', sock, '--format', 'qcow2', '--persistent', '--shared=4', '--discard=unmap',
        '--object', `tls-creds-x509,id=tls0,dir=${creds.serverDir},endpoint=server,verify-peer=on`, '--tls-creds', 'tls0', img],
      { path: sock },
    );
    let expected: Buffer;
    try {
      await assert.rejects(NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls: x509 }), isNbd(NbdFault.TLS_HANDSHAKE), 'verify-peer=on: no client certificate, no session');
      const tls: NbdTlsOptions = { ...x509, cert: readFileSync(creds.clientCert), key: readFileSync(creds.clientKey) };
      const be = await NbdBackend.open(`nbds+unix:///?socket=${sock}`, { tls, connections: 2 });
      try {
        assert.equal(be.client.connectionCount, 2);
        expected = await roundTrip(be, 8 * MiB);
      } finally {
        await be.close();
      }
    } finally {
      assert.deepEqual(await srv.stop(5000), { code: 0, signal: null }, `qemu-nbd ends cleanly\n${srv.output()}`);
    }
    // The discarded range reads back as zeroes from qcow2 (it was never written).
    const raw = tmp.file('tls-expected.raw');
    await writeFile(raw, expected);
    execFileSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', img, raw], { timeout: 30_000 });
  });
});
