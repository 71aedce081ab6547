/** The registry record of virtio-crypto (5.9): `virtio-ts crypto`, vhost-user type "crypto". */
import assert from 'node:assert/strict';
import { createCipheriv, createHash, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { AeadAlgo, AkcipherKeyType, CipherAlgo, CryptoConfig, CryptoDataOp, CryptoF, CryptoService, CryptoStatus, HashAlgo, MacAlgo, RsaHash, RsaPadding } from '../../spec/crypto.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { CRYPTO_CLI } from './cli.js';
import { CryptoDevice, type CryptoDeviceOptions } from './crypto-device.js';
import { CryptoDriver } from './crypto-driver.js';
import { CryptoStatusError } from './crypto-driver-types.js';

/** `createDevice` arguments (structured-cloneable). */
export interface CryptoDeviceArgs {
  /** Data queues (max_dataqueues), 1..1024. Default 1. */
  readonly maxDataQueues?: number;
  /** Largest size of each queue, 2..32768. Default 128. */
  readonly queueSize?: number;
  /** Sessions open at once at most. Default 256. */
  readonly maxSessions?: number;
  /** max_size in bytes: variable-length data of one request, 64..2^30. Default 1 MiB. */
  readonly maxSize?: number;
  /** false to withhold the VIRTIO_CRYPTO_F_*_STATELESS_MODE feature bits. Default true. */
  readonly stateless?: boolean;
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

let rsaKey: KeyObject | null = null;
/** One 1024-bit RSA key for every matrix run (made on first use). */
function matrixRsaKey(): KeyObject {
  rsaKey ??= generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  return rsaKey;
}

/**
 * The registry record of virtio-crypto: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const CRYPTO_TYPE: DeviceType = {
  name: 'crypto',
  deviceId: DeviceId.CRYPTO,
  summary: 'serve a virtio crypto device (node:crypto) over vhost-user',
  vhostUser: { type: 'crypto', features: [] },
  configSize: CryptoConfig.SIZE,
  cli: CRYPTO_CLI,
  createDevice(args?: unknown): CryptoDevice {
    const a = (args ?? {}) as CryptoDeviceArgs;
    const opts: CryptoDeviceOptions = {};
    if (a.maxDataQueues !== undefined) opts.maxDataQueues = a.maxDataQueues;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    if (a.maxSessions !== undefined) opts.maxSessions = a.maxSessions;
    if (a.maxSize !== undefined) opts.maxSize = a.maxSize;
    if (a.stateless !== undefined) opts.stateless = a.stateless;
    return new CryptoDevice(opts);
  },
  matrixCase() {
    const device = new CryptoDevice({ maxDataQueues: 2, queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const c = new CryptoDriver(driver.context);
        assert.ok(c.hwReady);
        assert.equal(c.config.maxDataqueues, 2);
        assert.deepEqual(c.algorithms.cipher, [CipherAlgo.AES_ECB, CipherAlgo.AES_CBC, CipherAlgo.AES_CTR, CipherAlgo.AES_XTS]);
        const key = pattern(32, 1);
        const iv = pattern(16, 2);
        const plain = pattern(4096, 3);
        const enc = await c.createCipherSession({ algo: CipherAlgo.AES_CBC, key, encrypt: true });
        const dec = await c.createCipherSession({ algo: CipherAlgo.AES_CBC, key, encrypt: false });
        const expected = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false).update(plain);
        // Several requests at once over both data queues.
        const [ct, ct2] = await Promise.all([c.cipher({ session: enc }, true, iv, plain), c.cipher({ session: enc }, true, iv, plain)]);
        assert.deepEqual(Buffer.from(ct), expected);
        assert.deepEqual(ct2, ct);
        assert.deepEqual(await c.cipher({ session: dec }, false, iv, ct), plain);
        const sha = await c.createHashSession(HashAlgo.SHA_256, 32);
        assert.deepEqual(Buffer.from(await c.digest({ session: sha }, false, plain, 32)), createHash('sha256').update(plain).digest());
        const hmacKey = pattern(40, 4);
        const mac = await c.createMacSession(MacAlgo.HMAC_SHA1, 20, hmacKey);
        assert.deepEqual(Buffer.from(await c.digest({ session: mac }, true, plain, 20)), createHmac('sha1', hmacKey).update(plain).digest());
        const gcmKey = pattern(16, 5);
        const nonce = pattern(12, 6);
        const aad = pattern(20, 7);
        const gEnc = await c.createAeadSession({ algo: AeadAlgo.GCM, key: gcmKey, encrypt: true, tagLen: 16 });
        const gDec = await c.createAeadSession({ algo: AeadAlgo.GCM, key: gcmKey, encrypt: false, tagLen: 16 });
        const sealed = await c.aead({ session: gEnc }, true, nonce, plain.subarray(0, 100), aad, 16);
        assert.equal(sealed.length, 116);
        assert.deepEqual(await c.aead({ session: gDec }, false, nonce, sealed, aad, 16), plain.subarray(0, 100));
        const forged = sealed.slice();
        forged[3]! ^= 1;
        await assert.rejects(c.aead({ session: gDec }, false, nonce, forged, aad, 16), (e: unknown) => e instanceof CryptoStatusError && e.status === CryptoStatus.BADMSG);
        const priv = matrixRsaKey();
        const der = priv.export({ format: 'der', type: 'pkcs1' });
        const rsa = await c.createRsaSession({ keyType: AkcipherKeyType.PRIVATE, key: der, padding: RsaPadding.PKCS1, hash: RsaHash.SHA256 });
        const digest = createHash('sha256').update(plain).digest();
        const signature = await c.akcipher({ session: rsa }, CryptoDataOp.AKCIPHER_SIGN, digest, 128);
        assert.deepEqual(Buffer.from(signature), sign('sha256', plain, priv));
        assert.equal(await c.verify({ session: rsa }, signature, digest), true);
        assert.equal(await c.verify({ session: rsa }, signature, pattern(32, 9)), false);
        if ((driver.context.features & CryptoF.HASH_STATELESS_MODE) !== 0n) {
          assert.deepEqual(Buffer.from(await c.digest({ stateless: true }, false, plain, 64, { algo: HashAlgo.SHA_512 })), createHash('sha512').update(plain).digest());
        }
        await c.destroySession(CryptoService.CIPHER, enc);
        await assert.rejects(c.cipher({ session: enc }, true, iv, plain), (e: unknown) => e instanceof CryptoStatusError && e.status === CryptoStatus.INVSESS);
        for (const [svc, id] of [[CryptoService.CIPHER, dec], [CryptoService.HASH, sha], [CryptoService.MAC, mac], [CryptoService.AEAD, gEnc], [CryptoService.AEAD, gDec], [CryptoService.AKCIPHER, rsa]] as const) {
          await c.destroySession(svc, id);
        }
        assert.equal(device.sessions.size, 0);
        c.detach();
      },
    };
  },
};
