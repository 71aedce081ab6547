/**
 * The CryptoDriver against the spec's driver requirements (5.9): what it reads from the
 * configuration and what it puts on the queues, recorded from its guest-memory writes. Titles
 * carry the normative ids they prove.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCipheriv, createHash, createHmac } from 'node:crypto';
import type { DriverContext } from '../../driver/types.js';
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
  HashAlgo,
  MacAlgo,
  RsaHash,
  RsaPadding,
  SymHashMode,
  SymOpType,
} from '../../spec/crypto.js';
import { createTestPair } from '../blk/test-pair.js';
import { CryptoDevice, type CryptoDeviceOptions } from './crypto-device.js';
import { CryptoDriver } from './crypto-driver.js';
import { le32, pattern } from './crypto-test-support.js';
import { generateKeyPairSync } from 'node:crypto';

const T = { timeout: 20_000 };
const isArg = (e: unknown): boolean => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT;

/** A device whose configuration words can be overridden (status, masks). */
class TunedDevice extends CryptoDevice {
  override32 = new Map<number, number>();
  override readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    super.readConfig(offset, dst, features, le);
    const v = new DataView(dst.buffer, dst.byteOffset, dst.length);
    for (const [at, val] of this.override32) if (at >= offset && at + 4 <= offset + dst.length) v.setUint32(at - offset, val, le);
  }
}

/** A device, its pair and a driver whose readable request buffers are recorded. */
function recorded(devOpts: CryptoDeviceOptions = {}, accept?: bigint): { device: TunedDevice; driver: CryptoDriver; sent: Uint8Array[]; ctx: DriverContext; usedNotifications: number[] } {
  const device = new TunedDevice(devOpts);
  const pair = createTestPair(device, { queueSize: 32, ...(accept !== undefined ? { accept } : {}) });
  const sent: Uint8Array[] = [];
  const memory = new Proxy(pair.ctx.memory, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'write') {
        return (addr: number, src: Uint8Array) => {
          sent.push(src.slice());
          target.write(addr, src);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const ctx: DriverContext = { ...pair.ctx, memory };
  return { device, driver: new CryptoDriver(ctx), sent, ctx, usedNotifications: pair.usedNotifications };
}

describe('CryptoDriver: the configuration (5.9.5)', () => {
  it('driver/crypto/1, driver/crypto/2: HW_READY is read from the bottom bit of status and reread; without it no request is sent', T, async () => {
    const { device, driver, sent } = recorded();
    assert.equal(driver.hwReady, true);
    device.override32.set(CryptoConfig.STATUS, 0xfffffffe);
    driver.refresh();
    assert.equal(driver.hwReady, false, 'only bit 0 counts');
    await assert.rejects(driver.createHashSession(HashAlgo.SHA1, 20), isArg);
    await assert.rejects(driver.digest({ session: 1 }, false, pattern(4, 1), 20), isArg);
    assert.equal(sent.length, 0, 'nothing written to guest memory, nothing posted');
    device.override32.delete(CryptoConfig.STATUS);
    driver.refresh();
    assert.equal(driver.hwReady, true);
    await driver.createHashSession(HashAlgo.SHA1, 20);
  });

  it('driver/crypto/3, driver/crypto/10: max_dataqueues data queues are set up and used (round robin), the control queue after them', T, async () => {
    const { driver, usedNotifications, device } = recorded({ maxDataQueues: 2 });
    assert.equal(driver.config.maxDataqueues, 2);
    const s = await driver.createHashSession(HashAlgo.SHA_256, 32);
    await Promise.all([0, 1, 2, 3].map((i) => driver.digest({ session: s }, false, pattern(64, i), 32)));
    assert.ok(usedNotifications[0]! > 0 && usedNotifications[1]! > 0, `both data queues used: ${usedNotifications.join(',')}`);
    assert.ok(usedNotifications[device.controlQueueIndex]! > 0, 'the session on the control queue (index 2)');
  });

  it('driver/crypto/4, driver/crypto/5, driver/crypto/6, driver/crypto/11, driver/crypto/12: services from crypto_services; each advertised service\'s mask read, undefined bits ignored, masks of services not advertised not used', T, async () => {
    const { device, driver } = recorded();
    assert.deepEqual(driver.algorithms.aead, [AeadAlgo.GCM, AeadAlgo.CHACHA20_POLY1305]);
    // MAC not advertised, its masks nonetheless set; undefined bits in the cipher and hash masks.
    device.override32.set(CryptoConfig.CRYPTO_SERVICES, (1 << CryptoService.CIPHER) | (1 << CryptoService.HASH));
    device.override32.set(CryptoConfig.CIPHER_ALGO_L, (1 << CipherAlgo.AES_CBC) | (1 << 20) | (1 << 31));
    device.override32.set(CryptoConfig.CIPHER_ALGO_H, 0xffff);
    device.override32.set(CryptoConfig.HASH_ALGO, (1 << HashAlgo.SHA1) | (1 << 13) | (1 << 30));
    device.override32.set(CryptoConfig.MAC_ALGO_L, 1 << MacAlgo.HMAC_SHA1);
    driver.refresh();
    assert.deepEqual(driver.algorithms, { cipher: [CipherAlgo.AES_CBC], hash: [HashAlgo.SHA1], mac: [], aead: [], akcipher: [] });
    await assert.rejects(driver.createMacSession(MacAlgo.HMAC_SHA1, 20, pattern(8, 1)), isArg, 'a service not advertised is not used');
    await driver.createCipherSession({ algo: CipherAlgo.AES_CBC, key: pattern(16, 1), encrypt: true });
  });

  it('driver/crypto/7, driver/crypto/8, driver/crypto/9: max_size, max_cipher_key_len and max_auth_key_len are kept to before sending', T, async () => {
    const { driver, sent } = recorded({ maxSize: 1024 });
    assert.equal(driver.config.maxSize, 1024);
    assert.equal(driver.config.maxCipherKeyLen, 64);
    assert.equal(driver.config.maxAuthKeyLen, 512);
    const s = await driver.createHashSession(HashAlgo.SHA1, 20);
    const before = sent.length;
    await assert.rejects(driver.digest({ session: s }, false, pattern(1100, 1), 20), isArg);
    await assert.rejects(driver.createCipherSession({ algo: CipherAlgo.AES_XTS, key: pattern(65, 1), encrypt: true }), isArg);
    await assert.rejects(driver.createMacSession(MacAlgo.HMAC_SHA1, 20, pattern(513, 1)), isArg);
    assert.equal(sent.length, before, 'none of them sent');
  });
});

describe('CryptoDriver: requests on the queues (5.9.7)', () => {
  it('driver/crypto/13, driver/crypto/14, driver/crypto/15: create requests carry the service opcode, the header then op_flf (padded to 56 without REVISION_1) then the keys; flag and reserved are zero', T, async () => {
    for (const rev1 of [true, false]) {
      const { driver, sent } = recorded({ stateless: false }, rev1 ? undefined : ~CryptoF.REVISION_1);
      const key = pattern(32, 7);
      await driver.createMacSession(MacAlgo.HMAC_SHA_256, 32, key);
      const mac = sent.at(-1)!;
      assert.equal(le32(mac, 0), CryptoCtrlOp.MAC_CREATE_SESSION);
      assert.equal(le32(mac, 8), 0, 'flag');
      assert.equal(le32(mac, 12), 0, 'reserved');
      assert.equal(le32(mac, 16), MacAlgo.HMAC_SHA_256);
      assert.equal(le32(mac, 24), 32, 'auth_key_len');
      const flf = rev1 ? 16 : 56;
      assert.equal(mac.length, 16 + flf + 32);
      assert.deepEqual(mac.subarray(16 + flf), key, 'the key after op_flf');
      await driver.createAeadSession({ algo: AeadAlgo.GCM, key: pattern(16, 1), encrypt: false, tagLen: 16, aadLen: 8 });
      const aead = sent.at(-1)!;
      assert.equal(le32(aead, 0), CryptoCtrlOp.AEAD_CREATE_SESSION);
      assert.deepEqual([le32(aead, 16), le32(aead, 20), le32(aead, 24), le32(aead, 28), le32(aead, 32)], [AeadAlgo.GCM, 16, 16, 8, 2]);
      assert.equal(aead.length, 16 + (rev1 ? 24 : 56) + 16);
      await driver.createCipherSession({ algo: CipherAlgo.AES_CTR, key: pattern(16, 1), encrypt: true });
      assert.equal(le32(sent.at(-1)!, 0), CryptoCtrlOp.CIPHER_CREATE_SESSION);
      assert.equal(le32(sent.at(-1)!, 16 + 48), SymOpType.CIPHER);
    }
  });

  it('driver/crypto/16, driver/crypto/17: destroy uses the service\'s destroy opcode and a session id the device gave', T, async () => {
    const { driver, sent, device } = recorded();
    const der = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'der', type: 'pkcs1' });
    const ids = {
      [CryptoService.CIPHER]: await driver.createCipherSession({ algo: CipherAlgo.AES_CBC, key: pattern(16, 1), encrypt: true }),
      [CryptoService.HASH]: await driver.createHashSession(HashAlgo.MD5, 16),
      [CryptoService.MAC]: await driver.createMacSession(MacAlgo.HMAC_SHA1, 20, pattern(4, 1)),
      [CryptoService.AEAD]: await driver.createAeadSession({ algo: AeadAlgo.GCM, key: pattern(16, 1), encrypt: true, tagLen: 16 }),
      [CryptoService.AKCIPHER]: await driver.createRsaSession({ keyType: AkcipherKeyType.PRIVATE, key: der, padding: RsaPadding.PKCS1, hash: RsaHash.SHA1 }),
    };
    const opcodes = [CryptoCtrlOp.CIPHER_DESTROY_SESSION, CryptoCtrlOp.HASH_DESTROY_SESSION, CryptoCtrlOp.MAC_DESTROY_SESSION, CryptoCtrlOp.AEAD_DESTROY_SESSION, CryptoCtrlOp.AKCIPHER_DESTROY_SESSION];
    for (const [svc, id] of Object.entries(ids)) {
      await driver.destroySession(Number(svc), id);
      const req = sent.at(-1)!;
      assert.equal(le32(req, 0), opcodes[Number(svc)]);
      assert.equal(le32(req, 16), id);
    }
    assert.equal(device.sessions.size, 0);
  });

  it('driver/crypto/18, driver/crypto/20, driver/crypto/21, driver/crypto/23, driver/crypto/24, driver/crypto/26, driver/crypto/27, driver/crypto/29, driver/crypto/31, driver/crypto/32, driver/crypto/34: session requests carry the session id, SESSION_MODE (REVISION_1), the service opcode and the op_flf fields', T, async () => {
    const { driver, sent } = recorded({ stateless: false });
    const header = (): { op: number; id: number; flag: number; b: Uint8Array } => {
      const b = sent.at(-1)!;
      return { op: le32(b, 0), id: le32(b, 8), flag: le32(b, 16), b };
    };
    const h = await driver.createHashSession(HashAlgo.SHA_224, 28);
    const src = pattern(100, 1);
    assert.deepEqual(Buffer.from(await driver.digest({ session: h }, false, src, 28)), createHash('sha224').update(src).digest());
    assert.deepEqual((({ op, id, flag }) => ({ op, id, flag }))(header()), { op: CryptoDataOp.HASH, id: h, flag: CRYPTO_FLAG_SESSION_MODE });
    const key = pattern(16, 2);
    const m = await driver.createMacSession(MacAlgo.HMAC_SHA_384, 48, key);
    assert.deepEqual(Buffer.from(await driver.digest({ session: m }, true, src, 48)), createHmac('sha384', key).update(src).digest());
    assert.deepEqual([header().op, header().id], [CryptoDataOp.MAC, m]);
    const c = await driver.createCipherSession({ algo: CipherAlgo.AES_CBC, key, encrypt: false });
    const iv = pattern(16, 3);
    await driver.cipher({ session: c }, false, iv, pattern(32, 4));
    const ch = header();
    assert.deepEqual([ch.op, ch.id, ch.flag], [CryptoDataOp.CIPHER_DECRYPT, c, CRYPTO_FLAG_SESSION_MODE]);
    // struct virtio_crypto_cipher_data_flf: iv_len, src_data_len, dst_data_len; op_type at 40.
    assert.deepEqual([le32(ch.b, 24), le32(ch.b, 28), le32(ch.b, 32), le32(ch.b, 24 + 40)], [16, 32, 32, SymOpType.CIPHER]);
    const a = await driver.createAeadSession({ algo: AeadAlgo.GCM, key, encrypt: true, tagLen: 16 });
    await driver.aead({ session: a }, true, pattern(12, 1), src, pattern(5, 1), 16);
    const ah = header();
    assert.deepEqual([ah.op, ah.id, le32(ah.b, 24), le32(ah.b, 28), le32(ah.b, 32), le32(ah.b, 36), le32(ah.b, 40)], [CryptoDataOp.AEAD_ENCRYPT, a, 12, 5, 100, 116, 16]);
    const der = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'der', type: 'pkcs1' });
    const r = await driver.createRsaSession({ keyType: AkcipherKeyType.PRIVATE, key: der, padding: RsaPadding.PKCS1, hash: RsaHash.SHA1 });
    await driver.akcipher({ session: r }, CryptoDataOp.AKCIPHER_SIGN, pattern(20, 1), 128);
    assert.deepEqual([header().op, header().id, le32(header().b, 24), le32(header().b, 28)], [CryptoDataOp.AKCIPHER_SIGN, r, 20, 128]);
  });

  it('driver/crypto/19, driver/crypto/22, driver/crypto/25, driver/crypto/30, driver/crypto/33: stateless requests have flag 0 and the session parameters in the request; session requests keep SESSION_MODE', T, async () => {
    const { driver, sent } = recorded();
    const src = pattern(64, 1);
    const key = pattern(32, 2);
    assert.deepEqual(Buffer.from(await driver.digest({ stateless: true }, false, src, 32, { algo: HashAlgo.SHA3_256 })), createHash('sha3-256').update(src).digest());
    let b = sent.at(-1)!;
    assert.deepEqual([le32(b, 16), le32(b, 24), le32(b, 28), le32(b, 32)], [0, HashAlgo.SHA3_256, 64, 32], 'flag 0, sess_para.algo, src_data_len, hash_result_len');
    await driver.digest({ stateless: true }, true, src, 20, { algo: MacAlgo.HMAC_SHA1, key });
    b = sent.at(-1)!;
    assert.deepEqual([le32(b, 16), le32(b, 24), le32(b, 28)], [0, MacAlgo.HMAC_SHA1, 32]);
    const iv = pattern(16, 3);
    assert.deepEqual(Buffer.from(await driver.cipher({ stateless: true }, true, iv, src, { algo: CipherAlgo.AES_CBC, key, encrypt: true })), createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false).update(src));
    b = sent.at(-1)!;
    assert.deepEqual([le32(b, 16), le32(b, 24), le32(b, 28), le32(b, 32), le32(b, 24 + 72)], [0, CipherAlgo.AES_CBC, 32, 1, SymOpType.CIPHER]);
    await driver.aead({ stateless: true }, true, pattern(12, 1), src, new Uint8Array(0), 16, { algo: AeadAlgo.CHACHA20_POLY1305, key, encrypt: true, tagLen: 16 });
    b = sent.at(-1)!;
    assert.deepEqual([le32(b, 16), le32(b, 24), le32(b, 28), le32(b, 32)], [0, AeadAlgo.CHACHA20_POLY1305, 32, 1]);
    const der = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'der', type: 'pkcs1' });
    await driver.akcipher({ stateless: true }, CryptoDataOp.AKCIPHER_SIGN, pattern(32, 1), 128, { keyType: AkcipherKeyType.PRIVATE, key: der, padding: RsaPadding.PKCS1, hash: RsaHash.SHA256 });
    b = sent.at(-1)!;
    assert.deepEqual([le32(b, 16), le32(b, 24), le32(b, 28), le32(b, 32), le32(b, 36), le32(b, 40)], [0, 1, AkcipherKeyType.PRIVATE, der.length, RsaPadding.PKCS1, RsaHash.SHA256]);
    // Session mode with the stateless structures negotiated: SESSION_MODE set.
    const s = await driver.createHashSession(HashAlgo.SHA1, 20);
    await driver.digest({ session: s }, false, src, 20);
    assert.equal(le32(sent.at(-1)!, 16), CRYPTO_FLAG_SESSION_MODE);
    // Stateless without the feature is refused by the driver.
    const plain = recorded({ stateless: false });
    await assert.rejects(plain.driver.digest({ stateless: true }, false, src, 20, { algo: HashAlgo.SHA1 }), isArg);
  });

  it('driver/crypto/28: chaining requests carry struct virtio_crypto_alg_chain_data_flf (session) or its stateless form, and results match', T, async () => {
    const { driver, sent } = recorded();
    const key = pattern(16, 1);
    const authKey = pattern(24, 2);
    const iv = pattern(16, 3);
    const src = pattern(64, 4);
    const aad = pattern(8, 5);
    const params = { cipher: { algo: CipherAlgo.AES_CTR, key, encrypt: true }, order: AlgChainOrder.CIPHER_THEN_HASH, hashMode: SymHashMode.AUTH, hashAlgo: MacAlgo.HMAC_SHA_256, resultLen: 32, authKey } as const;
    const s = await driver.createChainSession(params);
    const regions = { cipherStart: 16, cipherLen: 48, hashStart: 0, hashLen: 64, resultLen: 32, aad };
    const got = await driver.chain({ session: s }, true, iv, src, regions);
    const b = sent.at(-1)!;
    // STATELESS_MODE negotiated: the stateless structure, its 32-byte sess_para unused in session mode.
    assert.deepEqual([0, 4, 8, 12, 16, 20, 24, 28, 32].map((o) => le32(b, 24 + 32 + o)), [16, 64, 64, 16, 48, 0, 64, 8, 32]);
    assert.equal(le32(b, 24 + 72), SymOpType.ALGORITHM_CHAINING, 'op_type (stateless structure: STATELESS_MODE negotiated)');
    const dst = Buffer.from(src);
    createCipheriv('aes-128-ctr', key, iv).update(src.subarray(16)).copy(dst, 16);
    assert.deepEqual(Buffer.from(got.dst), dst);
    assert.deepEqual(Buffer.from(got.hash), createHmac('sha256', authKey).update(aad).update(dst).digest());
    const sl = await driver.chain({ stateless: true }, true, iv, src, regions, params);
    assert.deepEqual(sl, got, 'stateless chaining gives the same');
    assert.deepEqual([le32(sent.at(-1)!, 16), le32(sent.at(-1)!, 24), le32(sent.at(-1)!, 28)], [0, AlgChainOrder.CIPHER_THEN_HASH, 8]);
  });
});
