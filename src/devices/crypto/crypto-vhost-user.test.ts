/** The CREATE_CRYPTO_SESSION / CLOSE_CRYPTO_SESSION hooks (QEMU 7.2's VhostUserCryptoSession layout). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCipheriv } from 'node:crypto';
import { CipherAlgo, CryptoOpDirection, SymOpType } from '../../spec/crypto.js';
import { FrontendReq, PF } from '../../vhost-user/messages.js';
import type { VhostUserSession } from '../../vhost-user/device-hooks.js';
import { VhostUserError } from '../../vhost-user/codec.js';
import { CryptoDevice } from './crypto-device.js';
import { runCipher } from './crypto-operations.js';
import { pattern } from './crypto-test-support.js';

function session(acked: bigint): VhostUserSession {
  return {
    protocolFeatures: acked,
    hasProtocolFeatures: (m) => (acked & m) === m,
    sendBackendRequest: () => Promise.resolve(0n),
  };
}

/** QEMU 7.2: i64 session_id, CryptoDevBackendSymSessionInfo (48 bytes), key[64], auth_key[512]. */
function createPayload(algo: number, key: Uint8Array, direction: number, opType: number): Uint8Array {
  const p = new Uint8Array(632);
  const v = new DataView(p.buffer);
  v.setUint32(8, algo, true);
  v.setUint32(12, key.length, true);
  p[32] = opType;
  p[33] = direction;
  p.set(key, 56);
  return p;
}

describe('virtio-crypto over vhost-user: session messages', () => {
  const S = session(PF.CRYPTO_SESSION);

  it('advertises CRYPTO_SESSION; CREATE_CRYPTO_SESSION makes a session and answers its id, CLOSE_CRYPTO_SESSION ends it', () => {
    const d = new CryptoDevice();
    assert.equal(d.vhostUser.protocolFeatures, PF.CRYPTO_SESSION);
    const key = pattern(16, 1);
    const reply = d.vhostUser.handleRequest!({ request: FrontendReq.CREATE_CRYPTO_SESSION, flags: 1, payload: createPayload(CipherAlgo.AES_CBC, key, CryptoOpDirection.ENCRYPT, SymOpType.CIPHER), fds: [] }, S);
    assert.ok(reply instanceof Uint8Array && reply.length === 632);
    const id = Number(new DataView(reply.buffer).getBigInt64(0, true));
    assert.ok(id > 0);
    const s = d.sessions.get(id);
    assert.equal(s?.kind, 'cipher');
    const iv = pattern(16, 2);
    const src = pattern(32, 3);
    assert.deepEqual(Buffer.from(runCipher((s as { cipher: Parameters<typeof runCipher>[0] }).cipher, iv, src) as Uint8Array), createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false).update(src));
    const close = new Uint8Array(8);
    new DataView(close.buffer).setBigUint64(0, BigInt(id), true);
    assert.equal(d.vhostUser.handleRequest!({ request: FrontendReq.CLOSE_CRYPTO_SESSION, flags: 1, payload: close, fds: [] }, S), null, 'no reply (QEMU reads none)');
    assert.equal(d.sessions.size, 0);
    assert.throws(() => d.vhostUser.handleRequest!({ request: FrontendReq.CLOSE_CRYPTO_SESSION, flags: 1, payload: close, fds: [] }, S), VhostUserError);
  });

  it('answers -1 for a session it cannot make, refuses other sizes and a session without the protocol feature, and leaves other requests alone', () => {
    const d = new CryptoDevice();
    const bad = d.vhostUser.handleRequest!({ request: FrontendReq.CREATE_CRYPTO_SESSION, flags: 1, payload: createPayload(CipherAlgo.DES_CBC, pattern(8, 1), 1, SymOpType.CIPHER), fds: [] }, S)!;
    assert.equal(new DataView(bad.buffer).getBigInt64(0, true), -1n);
    const tooLong = createPayload(CipherAlgo.AES_CBC, pattern(16, 1), 1, SymOpType.CIPHER);
    new DataView(tooLong.buffer).setUint32(12, 65, true);
    assert.equal(new DataView(d.vhostUser.handleRequest!({ request: FrontendReq.CREATE_CRYPTO_SESSION, flags: 1, payload: tooLong, fds: [] }, S)!.buffer).getBigInt64(0, true), -1n);
    assert.throws(() => d.vhostUser.handleRequest!({ request: FrontendReq.CREATE_CRYPTO_SESSION, flags: 1, payload: new Uint8Array(100), fds: [] }, S), VhostUserError);
    assert.throws(() => d.vhostUser.handleRequest!({ request: FrontendReq.CREATE_CRYPTO_SESSION, flags: 1, payload: new Uint8Array(632), fds: [] }, session(0n)), VhostUserError);
    assert.equal(d.vhostUser.handleRequest!({ request: FrontendReq.SEND_RARP, flags: 1, payload: new Uint8Array(8), fds: [] }, S), undefined);
    assert.equal(d.sessions.size, 0);
  });
});
