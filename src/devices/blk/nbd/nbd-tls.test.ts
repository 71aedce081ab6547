/**
 * TLS settings and the STARTTLS negotiation without a real TLS server: the PSK file format, the
 * checks on X.509 / PSK combinations and files, a server that refuses NBD_OPT_STARTTLS
 * (TLS_UNAVAILABLE, never plaintext), one that injects plaintext behind its acknowledgement
 * (refused before TLS starts), and TLS settings given with a plaintext address (TLS_CONFIG).
 * The TLS sessions themselves are tested against nbdkit and qemu-nbd (test/blk-nbd-tls.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeNbdServer, type FakeServerOptions } from './fake-nbd-server.js';
import { NbdClient } from './nbd-client.js';
import { NbdError, NbdFault } from './nbd-error.js';
import { checkNbdTlsOptions, loadNbdTlsFiles, parsePskFile } from './nbd-tls.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virtio-ts-nbd-tls-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const isNbd = (fault: NbdFault, message?: RegExp) => (e: unknown) => e instanceof NbdError && e.fault === fault && (message === undefined || message.test(e.message));

async function withServer(opts: FakeServerOptions, fn: (srv: FakeNbdServer, path: string) => Promise<void>): Promise<void> {
  const path = join(dir, `s${n++}.sock`);
  const srv = new FakeNbdServer(path, opts);
  await srv.listen();
  try {
    await fn(srv, path);
  } finally {
    await srv.stop();
  }
}

describe('NBD TLS settings and STARTTLS', () => {
  it('PSK files are psktool format: identity:hexkey per line; the first entry, or the named one', () => {
    const text = '# keys\nalice:00ff10\nbob:abcdef01\n';
    assert.deepEqual(parsePskFile(text), { identity: 'alice', key: Buffer.from([0, 0xff, 0x10]) });
    assert.deepEqual(parsePskFile(text, 'bob'), { identity: 'bob', key: Buffer.from([0xab, 0xcd, 0xef, 0x01]) });
    for (const [bad, why] of [['alice:0g', /identity:hexkey/], ['alice:abc', /identity:hexkey/], [':00', /identity:hexkey/], ['nokey', /identity:hexkey/], ['', /no key/]] as const) {
      assert.throws(() => parsePskFile(bad), (e: unknown) => isNbd(NbdFault.TLS_CONFIG, why)(e) && (e as NbdError).code === 'INVALID_ARGUMENT', bad);
    }
    assert.throws(() => parsePskFile(text, 'carol'), isNbd(NbdFault.TLS_CONFIG, /no key for "carol"/));
  });

  it('X.509 and PSK do not mix; a certificate needs its key; unreadable files are TLS_CONFIG', () => {
    const psk = { identity: 'a', key: Buffer.from([1]) };
    assert.throws(() => checkNbdTlsOptions({ psk, ca: 'x' }), isNbd(NbdFault.TLS_CONFIG, /excludes certificates/));
    assert.throws(() => checkNbdTlsOptions({ cert: 'x' }), isNbd(NbdFault.TLS_CONFIG, /needs its key/));
    assert.throws(() => checkNbdTlsOptions({ key: 'x' }), isNbd(NbdFault.TLS_CONFIG, /needs its key/));
    assert.throws(() => checkNbdTlsOptions({ psk: { identity: 'a', key: Buffer.alloc(0) } }), isNbd(NbdFault.TLS_CONFIG, /empty PSK/));
    checkNbdTlsOptions({ psk });
    checkNbdTlsOptions({ ca: 'x', cert: 'y', key: 'z', hostname: 'h' });
    assert.throws(() => loadNbdTlsFiles({ caFile: join(dir, 'missing.pem') }), isNbd(NbdFault.TLS_CONFIG, /cannot read the CA file .*missing\.pem/));
    const pskFile = join(dir, 'k.psk');
    writeFileSync(pskFile, 'alice:0102\n');
    assert.deepEqual(loadNbdTlsFiles({ pskFile, hostname: 'h' }), { hostname: 'h', psk: { identity: 'alice', key: Buffer.from([1, 2]) } });
    assert.throws(() => loadNbdTlsFiles({ pskIdentity: 'alice' }), isNbd(NbdFault.TLS_CONFIG, /needs a PSK file/));
  });

  it('a server that does not know NBD_OPT_STARTTLS (ERR_UNSUP) or refuses it (ERR_POLICY): TLS_UNAVAILABLE, no plaintext fallback', async () => {
    for (const startTls of [undefined, 'policy'] as const) {
      await withServer(startTls === undefined ? {} : { startTls }, async (srv, path) => {
        await assert.rejects(NbdClient.connect({ kind: 'unix', path, exportName: '', tls: true }), isNbd(NbdFault.TLS_UNAVAILABLE, startTls === undefined ? /NBD_REP_ERR_UNSUP/ : /NBD_REP_ERR_POLICY\): TLS not configured/));
        assert.equal(srv.requests.length, 0, 'nothing sent in plaintext');
        // The same server without TLS asked: fine (the refusal is about TLS only).
        const c = await NbdClient.connect({ kind: 'unix', path, exportName: '' });
        await c.close();
      });
    }
  });

  it('plaintext bytes behind the STARTTLS acknowledgement (injection): refused before TLS starts (HANDSHAKE)', async () => {
    await withServer({ startTls: 'inject' }, async (_srv, path) => {
      await assert.rejects(NbdClient.connect({ kind: 'unix', path, exportName: '', tls: true }), isNbd(NbdFault.HANDSHAKE, /plaintext bytes after the NBD_OPT_STARTTLS acknowledgement/));
    });
  });

  it('a server that acknowledges STARTTLS and then never answers the TLS handshake: bounded by the connect time-out (UNREACHABLE), no hang', async () => {
    await withServer({ startTls: 'mute' }, async (_srv, path) => {
      const t0 = Date.now();
      await assert.rejects(NbdClient.connect({ kind: 'unix', path, exportName: '', tls: true }, { connectTimeoutMs: 300 }), isNbd(NbdFault.UNREACHABLE, /no answer .* within 300 ms/));
      assert.ok(Date.now() - t0 < 5000);
    });
  });

  it('TLS settings with a plaintext address: TLS_CONFIG (INVALID_ARGUMENT), nothing connected', async () => {
    await withServer({}, async (srv, path) => {
      await assert.rejects(NbdClient.connect({ kind: 'unix', path, exportName: '' }, { tls: { ca: 'x' } }), (e: unknown) => isNbd(NbdFault.TLS_CONFIG, /nbds/)(e) && (e as NbdError).code === 'INVALID_ARGUMENT');
      assert.equal(srv.connections, 0);
    });
  });
});
