/**
 * The virtio-crypto device (5.9) against the spec: configuration, sessions on the control queue
 * and every data service, session and stateless mode, with well-formed requests from the
 * CryptoDriver and malformed ones built by hand. Titles carry the normative ids they prove.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCipheriv, createHash, createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  AeadAlgo,
  AkcipherKeyType,
  AlgChainOrder,
  CRYPTO_FLAG_SESSION_MODE,
  CipherAlgo,
  CryptoConfig,
  CryptoCtrlOp,
  CryptoDataOp,
  CryptoF,
  CryptoService,
  CryptoStatus,
  DEFINED_AEAD_ALGOS,
  DEFINED_AKCIPHER_ALGOS,
  DEFINED_CIPHER_ALGOS,
  DEFINED_HASH_ALGOS,
  DEFINED_MAC_ALGOS,
  HashAlgo,
  MacAlgo,
  RsaHash,
  RsaPadding,
  SymHashMode,
  SymOpType,
} from '../../spec/crypto.js';
import { F } from '../../spec/features.js';
import { CryptoDevice } from './crypto-device.js';
import { CryptoStatusError } from './crypto-driver-types.js';
import { cryptoPair, ctrlReq, dataReq, le32, pattern } from './crypto-test-support.js';
import { xorshiftBelow } from '../../testing/xorshift.js';

const T = { timeout: 20_000 };
const ENC = 1;

function config(d: CryptoDevice): DataView {
  const b = new Uint8Array(CryptoConfig.SIZE);
  d.readConfig(0, b, 0n, true);
  return new DataView(b.buffer);
}

const isStatus = (s: number) => (e: unknown) => e instanceof CryptoStatusError && e.status === s;

function bits(m: number, from = 0): number[] {
  const out: number[] = [];
  for (let i = 0; i < 32; i++) if ((m >>> i) & 1) out.push(from + i);
  return out;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const RSA_PRIV = rsa.privateKey.export({ format: 'der', type: 'pkcs1' });

describe('virtio-crypto device: configuration (5.9.5)', () => {
  it('device/crypto/1, device/crypto/2, device/crypto/3: max_dataqueues is the data queue count (1..65535); status has only HW_READY, and requests are served with it set', T, async () => {
    const { device, driver } = cryptoPair({ maxDataQueues: 3 });
    const v = config(device);
    assert.equal(v.getUint32(CryptoConfig.MAX_DATAQUEUES, true), 3);
    assert.equal(device.queueMaxSizes.length, 4, 'three data queues and the control queue');
    assert.equal(v.getUint32(CryptoConfig.STATUS, true), 1, 'VIRTIO_CRYPTO_S_HW_READY only');
    assert.throws(() => new CryptoDevice({ maxDataQueues: 0 }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    const s = await driver.createHashSession(HashAlgo.SHA1, 20);
    assert.deepEqual(Buffer.from(await driver.digest({ session: s }, false, pattern(10, 1), 20)), createHash('sha1').update(pattern(10, 1)).digest());
  });

  it('device/crypto/4, device/crypto/5, device/crypto/6: crypto_services names the services served, each with its algorithm mask, and no undefined bit is set', T, () => {
    const all = config(new CryptoDevice());
    assert.deepEqual(bits(all.getUint32(CryptoConfig.CRYPTO_SERVICES, true)), [CryptoService.CIPHER, CryptoService.HASH, CryptoService.MAC, CryptoService.AEAD, CryptoService.AKCIPHER]);
    const check = (l: number, h: number | null, defined: readonly number[]): void => {
      const got = [...bits(all.getUint32(l, true)), ...(h === null ? [] : bits(all.getUint32(h, true), 32))];
      assert.ok(got.length > 0, 'a mask for an advertised service');
      for (const b of got) assert.ok(defined.includes(b), `bit ${b} is a defined algorithm`);
    };
    check(CryptoConfig.CIPHER_ALGO_L, CryptoConfig.CIPHER_ALGO_H, DEFINED_CIPHER_ALGOS);
    check(CryptoConfig.HASH_ALGO, null, DEFINED_HASH_ALGOS);
    check(CryptoConfig.MAC_ALGO_L, CryptoConfig.MAC_ALGO_H, DEFINED_MAC_ALGOS);
    check(CryptoConfig.AEAD_ALGO, null, DEFINED_AEAD_ALGOS);
    check(CryptoConfig.AKCIPHER_ALGO, null, DEFINED_AKCIPHER_ALGOS);
    // A device serving ciphers only advertises that service and no other mask.
    const some = config(new CryptoDevice({ algorithms: { cipher: [CipherAlgo.AES_CBC], hash: [], mac: [], aead: [], akcipher: [] } }));
    assert.equal(some.getUint32(CryptoConfig.CRYPTO_SERVICES, true), 1 << CryptoService.CIPHER);
    assert.equal(some.getUint32(CryptoConfig.CIPHER_ALGO_L, true), 1 << CipherAlgo.AES_CBC);
    for (const f of [CryptoConfig.HASH_ALGO, CryptoConfig.MAC_ALGO_L, CryptoConfig.AEAD_ALGO, CryptoConfig.AKCIPHER_ALGO, CryptoConfig.MAX_AUTH_KEY_LEN]) assert.equal(some.getUint32(f, true), 0);
  });

  it('device/crypto/7, device/crypto/8, device/crypto/9: max_size, max_cipher_key_len and max_auth_key_len are set and enforced (ERR beyond them)', T, async () => {
    const { device, raw } = cryptoPair({ maxSize: 4096, stateless: true });
    const v = config(device);
    assert.equal(Number(v.getBigUint64(CryptoConfig.MAX_SIZE, true)), 4096);
    assert.equal(v.getUint32(CryptoConfig.MAX_CIPHER_KEY_LEN, true), 64);
    assert.equal(v.getUint32(CryptoConfig.MAX_AUTH_KEY_LEN, true), 512);
    // A cipher key of 65 bytes, an HMAC key of 513 bytes: ERR.
    const cipher = ctrlReq(CryptoCtrlOp.CIPHER_CREATE_SESSION, 56).u32(16, CipherAlgo.AES_XTS).u32(20, 65).u32(24, ENC).u32(16 + 48, SymOpType.CIPHER).add(pattern(65, 1));
    assert.equal(le32((await raw(1, cipher.bytes(), 16)).w, 8), CryptoStatus.ERR);
    const mac = ctrlReq(CryptoCtrlOp.MAC_CREATE_SESSION, 16).u32(16, MacAlgo.HMAC_SHA1).u32(20, 20).u32(24, 513).add(pattern(513, 2));
    assert.equal(le32((await raw(1, mac.bytes(), 16)).w, 8), CryptoStatus.ERR);
    // A hash of 5000 source bytes (above max_size): ERR, and nothing is read beyond the header.
    const hash = ctrlReq(CryptoCtrlOp.HASH_CREATE_SESSION, 8).u32(16, HashAlgo.SHA_256).u32(20, 32);
    const created = await raw(1, hash.bytes(), 16);
    assert.equal(le32(created.w, 8), CryptoStatus.OK);
    const id = le32(created.w, 0);
    const big = dataReq(CryptoDataOp.HASH, id, CRYPTO_FLAG_SESSION_MODE, 16).u32(24, 5000).u32(28, 32).add(pattern(5000, 3));
    const r = await raw(0, big.bytes(), 33);
    assert.equal(r.w[32], CryptoStatus.ERR);
  });
});

describe('virtio-crypto device: sessions on the control queue (5.9.7.2.1)', () => {
  it('device/crypto/10, device/crypto/11: op_flf is the opcode structure padded to 56 bytes without REVISION_1 and its own size with it; the keys follow it', T, async () => {
    const key = pattern(16, 4);
    const iv = pattern(16, 5);
    const src = pattern(64, 6);
    const expected = createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false).update(src);
    for (const rev1 of [false, true]) {
      const { raw } = cryptoPair({ stateless: false }, { accept: rev1 ? ~0n : ~CryptoF.REVISION_1 });
      // HASH: 8 bytes with REVISION_1, 56 without.
      const h = await raw(1, ctrlReq(CryptoCtrlOp.HASH_CREATE_SESSION, rev1 ? 8 : 56).u32(16, HashAlgo.SHA_256).u32(20, 32).bytes(), 16);
      assert.equal(le32(h.w, 8), CryptoStatus.OK, `hash session (${rev1 ? 'REVISION_1' : 'legacy'} layout)`);
      // CIPHER: struct virtio_crypto_sym_create_session_flf (56 bytes either way), the key after it.
      const c = await raw(1, ctrlReq(CryptoCtrlOp.CIPHER_CREATE_SESSION, 56).u32(16, CipherAlgo.AES_CBC).u32(20, 16).u32(24, ENC).u32(64, SymOpType.CIPHER).add(key).bytes(), 16);
      assert.equal(le32(c.w, 8), CryptoStatus.OK);
      // struct virtio_crypto_sym_data_flf is 48 bytes, the legacy padding too.
      const d = dataReq(CryptoDataOp.CIPHER_ENCRYPT, le32(c.w, 0), rev1 ? CRYPTO_FLAG_SESSION_MODE : 0, 48).u32(24, 16).u32(28, 64).u32(32, 64).u32(24 + 40, SymOpType.CIPHER).add(iv, src);
      const out = await raw(0, d.bytes(), 65);
      assert.equal(out.w[64], CryptoStatus.OK);
      assert.deepEqual(Buffer.from(out.w.subarray(0, 64)), expected, 'the key read from op_vlf made the cipher');
      assert.equal(out.used, 65);
    }
  });

  it('device/crypto/12, device/crypto/13: create answers OK with a unique session_id, NOTSUPP, NOSPC (REVISION_1, table full) or ERR, and leaves session_id alone unless OK', T, async () => {
    const { raw, device } = cryptoPair({ maxSessions: 3 });
    const hash = (algo: number): Uint8Array => ctrlReq(CryptoCtrlOp.HASH_CREATE_SESSION, 8).u32(16, algo).u32(20, 16).bytes();
    const ids = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const r = await raw(1, hash(HashAlgo.MD5), 16);
      assert.equal(le32(r.w, 8), CryptoStatus.OK);
      ids.add(le32(r.w, 0));
    }
    assert.equal(ids.size, 3, 'unique ids');
    const full = await raw(1, hash(HashAlgo.MD5), 16);
    assert.equal(le32(full.w, 8), CryptoStatus.NOSPC);
    assert.deepEqual([...full.w.subarray(0, 8)], new Array(8).fill(0xee), 'session_id untouched');
    // Destroying one frees a slot; the new id is still unused before.
    const first = [...ids][0]!;
    const del = await raw(1, ctrlReq(CryptoCtrlOp.HASH_DESTROY_SESSION, 8).u64(16, first).bytes(), 1);
    assert.equal(del.w[0], CryptoStatus.OK);
    const again = await raw(1, hash(HashAlgo.MD5), 16);
    assert.equal(le32(again.w, 8), CryptoStatus.OK);
    assert.ok(!ids.has(le32(again.w, 0)), 'a destroyed id is not handed out again');
    await raw(1, ctrlReq(CryptoCtrlOp.HASH_DESTROY_SESSION, 8).u64(16, le32(again.w, 0)).bytes(), 1);
    // NOTSUPP: an algorithm not served (CMAC-AES), an unknown opcode, op_type NONE.
    const cmac = await raw(1, ctrlReq(CryptoCtrlOp.MAC_CREATE_SESSION, 16).u32(16, MacAlgo.CMAC_AES).u32(20, 16).u32(24, 16).add(pattern(16, 1)).bytes(), 16);
    assert.equal(le32(cmac.w, 8), CryptoStatus.NOTSUPP);
    assert.equal(le32((await raw(1, ctrlReq(0x77, 56).bytes(), 16)).w, 8), CryptoStatus.NOTSUPP);
    assert.equal(le32((await raw(1, ctrlReq(CryptoCtrlOp.CIPHER_CREATE_SESSION, 56).u32(64, SymOpType.NONE).bytes(), 16)).w, 8), CryptoStatus.NOTSUPP);
    // ERR: a key length AES has not; a truncated request; an RSA key that is not DER.
    const badKey = await raw(1, ctrlReq(CryptoCtrlOp.CIPHER_CREATE_SESSION, 56).u32(16, CipherAlgo.AES_CBC).u32(20, 15).u32(24, ENC).u32(64, SymOpType.CIPHER).add(pattern(15, 1)).bytes(), 16);
    assert.equal(le32(badKey.w, 8), CryptoStatus.ERR);
    assert.equal(le32((await raw(1, ctrlReq(CryptoCtrlOp.AEAD_CREATE_SESSION, 24).u32(16, AeadAlgo.GCM).u32(20, 16).bytes(), 16)).w, 8), CryptoStatus.ERR, 'key missing');
    assert.equal(le32((await raw(1, ctrlReq(CryptoCtrlOp.AKCIPHER_CREATE_SESSION, 56).u32(16, 1).u32(20, AkcipherKeyType.PRIVATE).u32(24, 40).add(pattern(40, 2)).bytes(), 16)).w, 8), CryptoStatus.ERR);
    assert.equal(device.sessions.size, 2);
    // Without REVISION_1 a full table is ERR (NOSPC needs REVISION_1).
    const legacy = cryptoPair({ maxSessions: 1, stateless: false }, { accept: ~CryptoF.REVISION_1 });
    assert.equal(le32((await legacy.raw(1, ctrlReq(CryptoCtrlOp.HASH_CREATE_SESSION, 56).u32(16, HashAlgo.MD5).u32(20, 16).bytes(), 16)).w, 8), CryptoStatus.OK);
    assert.equal(le32((await legacy.raw(1, ctrlReq(CryptoCtrlOp.HASH_CREATE_SESSION, 56).u32(16, HashAlgo.MD5).u32(20, 16).bytes(), 16)).w, 8), CryptoStatus.ERR);
  });

  it('device/crypto/14: destroy answers OK for a session of that service, ERR for an unknown id or another service; a reset ends every session', T, async () => {
    const { raw, device, driver, pair } = cryptoPair();
    const id = await driver.createMacSession(MacAlgo.HMAC_SHA_256, 32, pattern(32, 1));
    assert.equal((await raw(1, ctrlReq(CryptoCtrlOp.HASH_DESTROY_SESSION, 8).u64(16, id).bytes(), 1)).w[0], CryptoStatus.ERR, 'a MAC session is not destroyed as HASH');
    assert.equal((await raw(1, ctrlReq(CryptoCtrlOp.MAC_DESTROY_SESSION, 8).u64(16, 999).bytes(), 1)).w[0], CryptoStatus.ERR);
    assert.equal((await raw(1, ctrlReq(CryptoCtrlOp.MAC_DESTROY_SESSION, 8).u64(16, id).bytes(), 1)).w[0], CryptoStatus.OK);
    assert.equal((await raw(1, ctrlReq(CryptoCtrlOp.MAC_DESTROY_SESSION, 8).u64(16, id).bytes(), 1)).w[0], CryptoStatus.ERR, 'twice');
    await driver.createHashSession(HashAlgo.SHA1, 20);
    assert.equal(device.sessions.size, 1);
    device.reset();
    assert.equal(device.sessions.size, 0);
    void pair;
  });
});

describe('virtio-crypto device: data requests (5.9.7.3 - 5.9.7.8)', () => {
  it('device/crypto/15, device/crypto/16, device/crypto/17, device/crypto/18: HASH parses its structure by opcode and flag (session or stateless), copies the digest, and answers OK, NOTSUPP, INVSESS or ERR', T, async () => {
    const { raw, driver } = cryptoPair();
    const src = pattern(300, 7);
    const s = await driver.createHashSession(HashAlgo.SHA3_256, 32);
    // Session mode with the stateless structure (HASH_STATELESS_MODE negotiated): flag SESSION_MODE.
    const sess = dataReq(CryptoDataOp.HASH, s, CRYPTO_FLAG_SESSION_MODE, 16).u32(28, 300).u32(32, 32).add(src);
    const r1 = await raw(0, sess.bytes(), 33);
    assert.equal(r1.w[32], CryptoStatus.OK);
    assert.deepEqual(Buffer.from(r1.w.subarray(0, 32)), createHash('sha3-256').update(src).digest());
    // Stateless: flag 0, sess_para.algo SHA-384 truncated to 20 bytes.
    const sl = dataReq(CryptoDataOp.HASH, 0, 0, 16).u32(24, HashAlgo.SHA_384).u32(28, 300).u32(32, 20).add(src);
    const r2 = await raw(0, sl.bytes(), 21);
    assert.equal(r2.w[20], CryptoStatus.OK);
    assert.deepEqual(Buffer.from(r2.w.subarray(0, 20)), createHash('sha384').update(src).digest().subarray(0, 20));
    assert.equal(r2.used, 21);
    assert.equal((await raw(0, dataReq(CryptoDataOp.HASH, 0, 0, 16).u32(24, 77).u32(28, 0).u32(32, 16).bytes(), 17)).w[16], CryptoStatus.NOTSUPP, 'unknown algorithm');
    assert.equal((await raw(0, dataReq(CryptoDataOp.HASH, 12345, 1, 16).u32(28, 0).u32(32, 32).bytes(), 33)).w[32], CryptoStatus.INVSESS);
    assert.equal((await raw(0, dataReq(CryptoDataOp.HASH, s, 1, 16).u32(28, 300).u32(32, 32).add(src.subarray(0, 100)).bytes(), 33)).w[32], CryptoStatus.ERR, 'source shorter than src_data_len');
    await assert.rejects(driver.digest({ session: s }, false, src, 16), isStatus(CryptoStatus.ERR), 'a result buffer shorter than the session result');
  });

  it('device/crypto/19, device/crypto/20, device/crypto/21: MAC in session and stateless mode copies the HMAC; NOTSUPP, INVSESS, ERR', T, async () => {
    const { raw, driver } = cryptoPair();
    const key = pattern(70, 3);
    const src = pattern(500, 4);
    const s = await driver.createMacSession(MacAlgo.HMAC_SHA_512, 64, key);
    assert.deepEqual(Buffer.from(await driver.digest({ session: s }, true, src, 64)), createHmac('sha512', key).update(src).digest());
    assert.deepEqual(Buffer.from(await driver.digest({ stateless: true }, true, src, 16, { algo: MacAlgo.HMAC_MD5, key })), createHmac('md5', key).update(src).digest());
    const sl = dataReq(CryptoDataOp.MAC, 0, 0, 16).u32(24, MacAlgo.KASUMI_F9).u32(28, 0).u32(32, 0).u32(36, 4).bytes();
    assert.equal((await raw(0, sl, 5)).w[4], CryptoStatus.NOTSUPP);
    const hashSession = await driver.createHashSession(HashAlgo.SHA1, 20);
    await assert.rejects(driver.digest({ session: hashSession }, true, src, 20), isStatus(CryptoStatus.INVSESS), 'a HASH session is not a MAC session');
    await assert.rejects(driver.digest({ session: s }, true, src, 63), isStatus(CryptoStatus.ERR));
  });

  it('device/crypto/22, device/crypto/23, device/crypto/24, device/crypto/26: CIPHER parses sym_data by opcode and flag; AES ECB/CBC/CTR/XTS results in dst_data equal OpenSSL in both modes', T, async () => {
    const { driver } = cryptoPair();
    const src = pattern(1024, 9);
    const cases = [
      { algo: CipherAlgo.AES_ECB, key: 24, name: 'aes-192-ecb', iv: 0 },
      { algo: CipherAlgo.AES_CBC, key: 32, name: 'aes-256-cbc', iv: 16 },
      { algo: CipherAlgo.AES_CTR, key: 16, name: 'aes-128-ctr', iv: 16 },
      { algo: CipherAlgo.AES_XTS, key: 64, name: 'aes-256-xts', iv: 16 },
    ];
    for (const c of cases) {
      const key = pattern(c.key, c.algo);
      const iv = pattern(c.iv, 1);
      const expected = createCipheriv(c.name, key, c.iv ? iv : null).setAutoPadding(false).update(src);
      const enc = await driver.createCipherSession({ algo: c.algo, key, encrypt: true });
      const dec = await driver.createCipherSession({ algo: c.algo, key, encrypt: false });
      const ct = await driver.cipher({ session: enc }, true, iv, src);
      assert.deepEqual(Buffer.from(ct), expected, c.name);
      assert.deepEqual(await driver.cipher({ session: dec }, false, iv, ct), src);
      assert.deepEqual(Buffer.from(await driver.cipher({ stateless: true }, true, iv, src, { algo: c.algo, key, encrypt: true })), expected, `${c.name} stateless`);
      assert.deepEqual(await driver.cipher({ stateless: true }, false, iv, ct, { algo: c.algo, key, encrypt: false }), src);
    }
  });

  it('device/crypto/25, device/crypto/27, device/crypto/28: algorithm chaining parses alg_chain data, hashes the AAD only when aad_len > 0, and writes dst_data and hash_result', T, async () => {
    const { raw, driver } = cryptoPair({ stateless: false });
    const key = pattern(16, 1);
    const authKey = pattern(20, 2);
    const iv = pattern(16, 3);
    const src = pattern(96, 4);
    const aad = pattern(12, 5);
    // CIPHER_THEN_HASH with HMAC-SHA256 over the AAD and the ciphertext's bytes 16..80.
    const s = await driver.createChainSession({ cipher: { algo: CipherAlgo.AES_CBC, key, encrypt: true }, order: AlgChainOrder.CIPHER_THEN_HASH, hashMode: SymHashMode.AUTH, hashAlgo: MacAlgo.HMAC_SHA_256, resultLen: 32, authKey });
    const chain = (aadLen: number): Uint8Array =>
      dataReq(CryptoDataOp.CIPHER_ENCRYPT, s, CRYPTO_FLAG_SESSION_MODE, 48)
        .u32(24, 16).u32(28, 96).u32(32, 96).u32(36, 32).u32(40, 64).u32(44, 16).u32(48, 64).u32(52, aadLen).u32(56, 32).u32(24 + 40, SymOpType.ALGORITHM_CHAINING)
        .add(iv, src, aad.subarray(0, aadLen))
        .bytes();
    const ct = createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false).update(src.subarray(32, 96));
    const dst = Buffer.from(src);
    ct.copy(dst, 32);
    for (const aadLen of [0, 12]) {
      const r = await raw(0, chain(aadLen), 96 + 32 + 1);
      assert.equal(r.w[128], CryptoStatus.OK);
      assert.deepEqual(Buffer.from(r.w.subarray(0, 96)), dst, 'dst_data: the source with its cipher region encrypted');
      const mac = createHmac('sha256', authKey).update(aad.subarray(0, aadLen)).update(dst.subarray(16, 80)).digest();
      assert.deepEqual(Buffer.from(r.w.subarray(96, 128)), mac, `hash_result (aad_len ${aadLen})`);
    }
    // HASH_THEN_CIPHER with a plain SHA-1 over the plaintext.
    const p = await driver.createChainSession({ cipher: { algo: CipherAlgo.AES_CTR, key, encrypt: true }, order: AlgChainOrder.HASH_THEN_CIPHER, hashMode: SymHashMode.PLAIN, hashAlgo: HashAlgo.SHA1, resultLen: 20 });
    const req = dataReq(CryptoDataOp.CIPHER_ENCRYPT, p, CRYPTO_FLAG_SESSION_MODE, 48).u32(24, 16).u32(28, 96).u32(32, 96).u32(36, 0).u32(40, 96).u32(44, 0).u32(48, 96).u32(52, 0).u32(56, 20).u32(64, SymOpType.ALGORITHM_CHAINING).add(iv, src).bytes();
    const r = await raw(0, req, 96 + 20 + 1);
    assert.equal(r.w[116], CryptoStatus.OK);
    assert.deepEqual(Buffer.from(r.w.subarray(0, 96)), createCipheriv('aes-128-ctr', key, iv).update(src));
    assert.deepEqual(Buffer.from(r.w.subarray(96, 116)), createHash('sha1').update(src).digest());
    // A cipher region past the source: ERR. NESTED hashing: NOTSUPP at creation.
    const bad = dataReq(CryptoDataOp.CIPHER_ENCRYPT, s, 1, 48).u32(24, 16).u32(28, 96).u32(32, 96).u32(36, 64).u32(40, 64).u32(56, 32).u32(64, SymOpType.ALGORITHM_CHAINING).add(iv, src).bytes();
    assert.equal((await raw(0, bad, 129)).w[128], CryptoStatus.ERR);
    await assert.rejects(driver.createChainSession({ cipher: { algo: CipherAlgo.AES_CBC, key, encrypt: true }, order: 1, hashMode: SymHashMode.NESTED, hashAlgo: HashAlgo.SHA1, resultLen: 20 }), isStatus(CryptoStatus.NOTSUPP));
  });

  it('device/crypto/29: CIPHER answers NOTSUPP (op_type NONE), INVSESS (unknown or foreign session), ERR (partial block, direction against the session, short writable part)', T, async () => {
    const { raw, driver } = cryptoPair();
    const key = pattern(16, 1);
    const iv = pattern(16, 2);
    const enc = await driver.createCipherSession({ algo: CipherAlgo.AES_CBC, key, encrypt: true });
    const none = dataReq(CryptoDataOp.CIPHER_ENCRYPT, enc, 1, 76).u32(24 + 72, SymOpType.NONE).bytes();
    assert.equal((await raw(0, none, 1)).w[0], CryptoStatus.ERR, 'a CIPHER session used with op_type NONE');
    const sl = dataReq(CryptoDataOp.CIPHER_ENCRYPT, 0, 0, 76).u32(24 + 72, SymOpType.NONE).bytes();
    assert.equal((await raw(0, sl, 1)).w[0], CryptoStatus.NOTSUPP, 'stateless op_type NONE');
    await assert.rejects(driver.cipher({ session: 4242 }, true, iv, pattern(16, 3)), isStatus(CryptoStatus.INVSESS));
    const h = await driver.createHashSession(HashAlgo.SHA1, 20);
    await assert.rejects(driver.cipher({ session: h }, true, iv, pattern(16, 3)), isStatus(CryptoStatus.INVSESS));
    await assert.rejects(driver.cipher({ session: enc }, true, iv, pattern(20, 3)), isStatus(CryptoStatus.ERR), 'CBC of 20 bytes');
    await assert.rejects(driver.cipher({ session: enc }, false, iv, pattern(16, 3)), isStatus(CryptoStatus.ERR), 'DECRYPT on an encryption session');
    await assert.rejects(driver.cipher({ stateless: true }, true, iv, pattern(16, 3), { algo: CipherAlgo.DES_CBC, key: pattern(8, 1), encrypt: true }), (e: unknown) => e instanceof VirtioError, 'the driver refuses an algorithm not advertised');
    const desReq = dataReq(CryptoDataOp.CIPHER_ENCRYPT, 0, 0, 76).u32(24, CipherAlgo.DES_CBC).u32(28, 8).u32(32, ENC).u32(36, 8).u32(40, 8).u32(44, 8).u32(96, SymOpType.CIPHER).add(pattern(8, 1), pattern(8, 2), pattern(8, 3)).bytes();
    assert.equal((await raw(0, desReq, 9)).w[8], CryptoStatus.NOTSUPP, 'DES is not served');
    const short = dataReq(CryptoDataOp.CIPHER_ENCRYPT, enc, 1, 76).u32(36, 16).u32(40, 32).u32(44, 32).u32(96, SymOpType.CIPHER).add(iv, pattern(32, 1)).bytes();
    const r = await raw(0, short, 10);
    assert.equal(r.w[9], CryptoStatus.ERR, 'writable part shorter than dst_data_len + status');
    assert.deepEqual([...r.w.subarray(0, 9)], new Array(9).fill(0xee), 'nothing else written');
    assert.equal(r.used, 1);
  });

  it('device/crypto/30, device/crypto/31, device/crypto/32, device/crypto/33, device/crypto/34: AEAD (GCM, ChaCha20-Poly1305) writes ciphertext then tag; decryption verifies (BADMSG); stateless parsing; NOTSUPP and INVSESS', T, async () => {
    const { driver } = cryptoPair();
    const key = pattern(32, 1);
    const nonce = pattern(12, 2);
    const aad = pattern(13, 3);
    const src = pattern(333, 4);
    for (const [algo, name, tagLen] of [[AeadAlgo.GCM, 'aes-256-gcm', 12], [AeadAlgo.CHACHA20_POLY1305, 'chacha20-poly1305', 16]] as const) {
      const c = createCipheriv(name as 'aes-256-gcm', key, nonce, { authTagLength: tagLen });
      c.setAAD(aad);
      const expected = Buffer.concat([c.update(src), c.final(), c.getAuthTag()]);
      const enc = await driver.createAeadSession({ algo, key, encrypt: true, tagLen });
      const dec = await driver.createAeadSession({ algo, key, encrypt: false, tagLen });
      const sealed = await driver.aead({ session: enc }, true, nonce, src, aad, tagLen);
      assert.deepEqual(Buffer.from(sealed), expected, `${name}: ciphertext then the ${tagLen}-byte tag`);
      assert.deepEqual(await driver.aead({ session: dec }, false, nonce, sealed, aad, tagLen), src);
      const forged = sealed.slice();
      forged[forged.length - 1]! ^= 0x80;
      await assert.rejects(driver.aead({ session: dec }, false, nonce, forged, aad, tagLen), isStatus(CryptoStatus.BADMSG));
      await assert.rejects(driver.aead({ session: dec }, false, nonce, sealed, pattern(13, 9), tagLen), isStatus(CryptoStatus.BADMSG), 'other AAD');
      assert.deepEqual(Buffer.from(await driver.aead({ stateless: true }, true, nonce, src, aad, tagLen, { algo, key, encrypt: true, tagLen })), expected, 'stateless');
    }
    const gcm = await driver.createAeadSession({ algo: AeadAlgo.GCM, key: pattern(16, 1), encrypt: true, tagLen: 16 });
    await assert.rejects(driver.aead({ session: gcm }, true, pattern(16, 1), src, aad, 16), isStatus(CryptoStatus.NOTSUPP), 'a 16-byte GCM IV (J0) is not served');
    await assert.rejects(driver.aead({ session: 999 }, true, nonce, src, aad, 16), isStatus(CryptoStatus.INVSESS));
    await assert.rejects(driver.createAeadSession({ algo: AeadAlgo.CCM, key: pattern(16, 1), encrypt: true, tagLen: 16 }), (e: unknown) => e instanceof VirtioError, 'CCM is not advertised');
  });

  it('device/crypto/35, device/crypto/36, device/crypto/37: RSA sign/verify/encrypt/decrypt in session and stateless mode; KEY_REJECTED for a bad signature, NOTSUPP for a raw-padding signature, INVSESS', T, async () => {
    const { driver } = cryptoPair();
    const params = { keyType: AkcipherKeyType.PRIVATE, key: RSA_PRIV, padding: RsaPadding.PKCS1, hash: RsaHash.SHA256 } as const;
    const s = await driver.createRsaSession(params);
    const data = pattern(100, 1);
    const digest = createHash('sha256').update(data).digest();
    const sig = await driver.akcipher({ session: s }, CryptoDataOp.AKCIPHER_SIGN, digest, 128);
    assert.deepEqual(Buffer.from(sig), sign('sha256', data, rsa.privateKey), 'PKCS#1 v1.5 signature in dst_data');
    assert.equal(await driver.verify({ session: s }, sig, digest), true);
    const bad = sig.slice();
    bad[5]! ^= 1;
    assert.equal(await driver.verify({ session: s }, bad, digest), false, 'KEY_REJECTED');
    assert.equal(await driver.verify({ stateless: true }, sig, digest, params), true, 'stateless verify');
    const msg = pattern(40, 2);
    const ct = await driver.akcipher({ stateless: true }, CryptoDataOp.AKCIPHER_ENCRYPT, msg, 128, params);
    assert.equal(ct.length, 128);
    const pt = await driver.akcipher({ session: s }, CryptoDataOp.AKCIPHER_DECRYPT, ct, 128);
    assert.deepEqual(pt, msg, 'decryption result length from the used length');
    const raw = await driver.createRsaSession({ ...params, padding: RsaPadding.RAW, hash: RsaHash.NO_HASH });
    await assert.rejects(driver.akcipher({ session: raw }, CryptoDataOp.AKCIPHER_SIGN, digest, 128), isStatus(CryptoStatus.NOTSUPP));
    const m = pattern(128, 3);
    m[0] = 0;
    const rawCt = await driver.akcipher({ session: raw }, CryptoDataOp.AKCIPHER_ENCRYPT, m, 128);
    assert.deepEqual(await driver.akcipher({ session: raw }, CryptoDataOp.AKCIPHER_DECRYPT, rawCt, 128), m, 'raw RSA round trip');
    await assert.rejects(driver.akcipher({ session: 77 }, CryptoDataOp.AKCIPHER_SIGN, digest, 128), isStatus(CryptoStatus.INVSESS));
    await assert.rejects(driver.akcipher({ session: s }, CryptoDataOp.AKCIPHER_SIGN, digest, 64), isStatus(CryptoStatus.ERR), 'dst_data too small');
  });

  it('5.9.7.3: with REVISION_1 and no stateless mode negotiated, a request without SESSION_MODE is refused (NOTSUPP); IPSEC opcodes are NOTSUPP; malformed chains never throw', T, async () => {
    const { raw, driver, pair } = cryptoPair({ stateless: false });
    assert.equal(pair.features & CryptoF.HASH_STATELESS_MODE, 0n);
    const s = await driver.createHashSession(HashAlgo.SHA1, 20);
    assert.equal((await raw(0, dataReq(CryptoDataOp.HASH, s, 0, 8).u32(24, 0).u32(28, 20).bytes(), 21)).w[20], CryptoStatus.NOTSUPP);
    assert.equal((await raw(0, dataReq(CryptoDataOp.IPSEC_OUTBOUND, s, 1, 48).bytes(), 1)).w[0], CryptoStatus.NOTSUPP);
    assert.equal((await raw(0, new Uint8Array(10), 1)).w[0], CryptoStatus.ERR, 'header cut short');
    assert.equal((await raw(0, new Uint8Array(0), 4)).w[3], CryptoStatus.ERR, 'no readable part');
    assert.equal((await raw(0, dataReq(CryptoDataOp.HASH, s, 1, 8).bytes(), 0)).used, 0, 'no writable part: nothing to answer with');
    assert.equal(pair.resets.length, 0, 'no DEVICE_NEEDS_RESET');
    // A stateless bit without REVISION_1 is refused at FEATURES_OK (5.9.3.1).
    assert.match(new CryptoDevice().validateFeatures(CryptoF.HASH_STATELESS_MODE | F.VERSION_1) ?? '', /REVISION_1/);
  });

  it('the guest is untrusted: 800 random requests on every queue (opcodes, lengths, flags, ids, short buffers) are each answered; nothing throws, no reset, sessions stay bounded, the device still serves', T, async () => {
    const { driver, device, pair } = cryptoPair({ maxSessions: 8, maxSize: 4096 });
    const rnd = xorshiftBelow(0x9e3779b9);
    const ctrlOps = Object.values(CryptoCtrlOp);
    const dataOps = Object.values(CryptoDataOp);
    const word = (): number => [0, 1, 2, 3, 12, 16, 20, 32, 48, 64, 65, 4096, 0xffffffff, rnd(1 << 30)][rnd(14)]!;
    let answered = 0;
    for (let batch = 0; batch < 50; batch++) {
      const reqs: Promise<unknown>[] = [];
      for (let k = 0; k < 16; k++) {
        const control = rnd(3) === 0;
        const len = rnd(5) === 0 ? rnd(24) : 24 + rnd(200);
        const b = new Uint8Array(len);
        const v = new DataView(b.buffer);
        for (let o = 0; o + 4 <= len; o += 4) v.setUint32(o, word(), true);
        if (len >= 4) v.setUint32(0, rnd(8) === 0 ? word() : control ? ctrlOps[rnd(ctrlOps.length)]! : dataOps[rnd(dataOps.length)]!, true);
        if (!control && len >= 24) {
          v.setUint32(8, rnd(12), true);
          v.setUint32(12, 0, true);
          v.setUint32(16, rnd(2), true);
        }
        const wlen = rnd(6) === 0 ? 0 : 1 + rnd(160);
        reqs.push(driver.submitRaw(control ? 1 : 0, b, wlen).then(() => answered++));
      }
      await Promise.all(reqs);
    }
    assert.equal(answered, 800);
    assert.deepEqual(pair.resets, []);
    assert.ok(device.sessions.size <= 8);
    // Ids come from a counter bumped once per session created: at most one per control request.
    for (let id = 1; id <= 800; id++) {
      const svc = device.sessions.get(id)?.service;
      if (svc !== undefined) await driver.destroySession(svc, id);
    }
    assert.equal(device.sessions.size, 0);
    const s = await driver.createHashSession(HashAlgo.SHA_256, 32);
    assert.deepEqual(Buffer.from(await driver.digest({ session: s }, false, pattern(50, 1), 32)), createHash('sha256').update(pattern(50, 1)).digest());
  });
});
