/**
 * 5.9.4 algorithms as node:crypto names: which ones the device serves, the masks it advertises
 * from them (device/crypto/5: one mask per advertised service; device/crypto/6: only defined
 * bits), and the per-algorithm checks of key, IV and tag sizes.
 */
import { AeadAlgo, AkcipherAlgo, CipherAlgo, CryptoService, HashAlgo, MacAlgo, RsaHash } from '../../spec/crypto.js';

/** node:crypto cipher name for a 5.9.4.1 algorithm and key length, or null when not served. */
export function cipherName(algo: number, keyLen: number): string | null {
  const bits = keyLen * 8;
  switch (algo) {
    case CipherAlgo.AES_ECB:
      return keyLen === 16 || keyLen === 24 || keyLen === 32 ? `aes-${bits}-ecb` : null;
    case CipherAlgo.AES_CBC:
      return keyLen === 16 || keyLen === 24 || keyLen === 32 ? `aes-${bits}-cbc` : null;
    case CipherAlgo.AES_CTR:
      return keyLen === 16 || keyLen === 24 || keyLen === 32 ? `aes-${bits}-ctr` : null;
    case CipherAlgo.AES_XTS:
      // Two AES keys of 128 or 256 bits (IEEE 1619).
      return keyLen === 32 ? 'aes-128-xts' : keyLen === 64 ? 'aes-256-xts' : null;
    default:
      return null;
  }
}

/** IV bytes a cipher algorithm takes (ECB: none). */
export function cipherIvLen(algo: number): number {
  return algo === CipherAlgo.AES_ECB ? 0 : 16;
}

/** Whether the cipher needs whole blocks (ECB and CBC without padding; XTS at least one block). */
export function cipherLengthOk(algo: number, len: number): boolean {
  if (algo === CipherAlgo.AES_ECB || algo === CipherAlgo.AES_CBC) return len % 16 === 0;
  if (algo === CipherAlgo.AES_XTS) return len >= 16;
  return true;
}

const HASH_NAMES: Readonly<Record<number, string>> = {
  [HashAlgo.MD5]: 'md5',
  [HashAlgo.SHA1]: 'sha1',
  [HashAlgo.SHA_224]: 'sha224',
  [HashAlgo.SHA_256]: 'sha256',
  [HashAlgo.SHA_384]: 'sha384',
  [HashAlgo.SHA_512]: 'sha512',
  [HashAlgo.SHA3_224]: 'sha3-224',
  [HashAlgo.SHA3_256]: 'sha3-256',
  [HashAlgo.SHA3_384]: 'sha3-384',
  [HashAlgo.SHA3_512]: 'sha3-512',
  [HashAlgo.SHA3_SHAKE128]: 'shake128',
  [HashAlgo.SHA3_SHAKE256]: 'shake256',
};

/** Digest lengths; SHAKE has none (the driver's hash_result_len is the output length). */
const HASH_LENGTHS: Readonly<Record<string, number>> = {
  md5: 16,
  sha1: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
  'sha3-224': 28,
  'sha3-256': 32,
  'sha3-384': 48,
  'sha3-512': 64,
};

export function hashName(algo: number): string | null {
  return HASH_NAMES[algo] ?? null;
}

/** The digest length of a node hash name, or null for an extendable-output function. */
export function digestLength(name: string): number | null {
  return HASH_LENGTHS[name] ?? null;
}

const HMAC_NAMES: Readonly<Record<number, string>> = {
  [MacAlgo.HMAC_MD5]: 'md5',
  [MacAlgo.HMAC_SHA1]: 'sha1',
  [MacAlgo.HMAC_SHA_224]: 'sha224',
  [MacAlgo.HMAC_SHA_256]: 'sha256',
  [MacAlgo.HMAC_SHA_384]: 'sha384',
  [MacAlgo.HMAC_SHA_512]: 'sha512',
};

/** The hash of an HMAC algorithm. */
export function hmacHashName(algo: number): string | null {
  return HMAC_NAMES[algo] ?? null;
}

/** node:crypto AEAD name for an algorithm and key length. */
export function aeadName(algo: number, keyLen: number): string | null {
  if (algo === AeadAlgo.GCM) return keyLen === 16 || keyLen === 24 || keyLen === 32 ? `aes-${keyLen * 8}-gcm` : null;
  if (algo === AeadAlgo.CHACHA20_POLY1305) return keyLen === 32 ? 'chacha20-poly1305' : null;
  return null;
}

/**
 * Whether an AEAD IV and tag length are served. GCM: a 96-bit IV only (the 16-byte "J0" form of
 * 5.9.7.6 is not served: NOTSUPP), tags of 4, 8 and 12..16 bytes (SP 800-38D). ChaCha20-Poly1305:
 * a 96-bit nonce and tags up to 16 bytes.
 */
export function aeadParamsOk(algo: number, ivLen: number, tagLen: number): boolean {
  if (ivLen !== 12) return false;
  if (algo === AeadAlgo.GCM) return tagLen === 4 || tagLen === 8 || (tagLen >= 12 && tagLen <= 16);
  return tagLen >= 1 && tagLen <= 16;
}

/** EMSA-PKCS1-v1_5 DigestInfo prefixes (RFC 8017 9.2 note 1), by 5.9.7.2.1 RSA hash. */
const DIGEST_INFO: Readonly<Record<number, readonly number[]>> = {
  [RsaHash.NO_HASH]: [],
  [RsaHash.MD5]: [0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10],
  [RsaHash.SHA1]: [0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14],
  [RsaHash.SHA224]: [0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c],
  [RsaHash.SHA256]: [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20],
  [RsaHash.SHA384]: [0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30],
  [RsaHash.SHA512]: [0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40],
};

/** The DigestInfo prefix of an RSA hash (MD2, MD3, MD4: null, not served). */
export function rsaDigestInfo(hash: number): Uint8Array | null {
  const p = DIGEST_INFO[hash];
  return p ? Uint8Array.from(p) : null;
}

/** What the device serves, as bit lists per service. */
export interface CryptoAlgorithmSet {
  /** VIRTIO_CRYPTO_CIPHER_* algorithms (5.9.4.1). */
  readonly cipher: readonly number[];
  /** VIRTIO_CRYPTO_HASH_* algorithms (5.9.4.2). */
  readonly hash: readonly number[];
  /** VIRTIO_CRYPTO_MAC_* algorithms (5.9.4.3). */
  readonly mac: readonly number[];
  /** VIRTIO_CRYPTO_AEAD_* algorithms (5.9.4.4). */
  readonly aead: readonly number[];
  /** VIRTIO_CRYPTO_AKCIPHER_* algorithms (5.9.4.5). */
  readonly akcipher: readonly number[];
}

/** Everything this implementation serves. */
export const SERVED_ALGORITHMS: CryptoAlgorithmSet = {
  cipher: [CipherAlgo.AES_ECB, CipherAlgo.AES_CBC, CipherAlgo.AES_CTR, CipherAlgo.AES_XTS],
  hash: Object.keys(HASH_NAMES).map(Number),
  mac: Object.keys(HMAC_NAMES).map(Number),
  aead: [AeadAlgo.GCM, AeadAlgo.CHACHA20_POLY1305],
  akcipher: [AkcipherAlgo.RSA],
};

/** 5.9.5 masks of an algorithm set (low and high words for 64-bit masks). */
export interface CryptoMasks {
  /** crypto_services: bit (1 << VIRTIO_CRYPTO_SERVICE_*) per service with at least one algorithm. */
  readonly services: number;
  /** cipher_algo_l: cipher algorithms 0..31. */
  readonly cipherL: number;
  /** cipher_algo_h: cipher algorithms 32..63. */
  readonly cipherH: number;
  /** hash_algo: one bit per hash algorithm. */
  readonly hash: number;
  /** mac_algo_l: MAC algorithms 0..31. */
  readonly macL: number;
  /** mac_algo_h: MAC algorithms 32..63. */
  readonly macH: number;
  /** aead_algo: one bit per AEAD algorithm. */
  readonly aead: number;
  /** akcipher_algo: one bit per asymmetric algorithm. */
  readonly akcipher: number;
}

function mask32(bits: readonly number[], from: number): number {
  let m = 0;
  for (const b of bits) if (b >= from && b < from + 32) m |= 1 << (b - from);
  return m >>> 0;
}

/** A service is advertised when it serves an algorithm (device/crypto/4). */
export function cryptoMasks(set: CryptoAlgorithmSet): CryptoMasks {
  let services = 0;
  if (set.cipher.length > 0) services |= 1 << CryptoService.CIPHER;
  if (set.hash.length > 0) services |= 1 << CryptoService.HASH;
  if (set.mac.length > 0) services |= 1 << CryptoService.MAC;
  if (set.aead.length > 0) services |= 1 << CryptoService.AEAD;
  if (set.akcipher.length > 0) services |= 1 << CryptoService.AKCIPHER;
  return {
    services,
    cipherL: mask32(set.cipher, 0),
    cipherH: mask32(set.cipher, 32),
    hash: mask32(set.hash, 0),
    macL: mask32(set.mac, 0),
    macH: mask32(set.mac, 32),
    aead: mask32(set.aead, 0),
    akcipher: mask32(set.akcipher, 0),
  };
}

/** Whether `algo` is in `list` (the device refuses what it does not advertise: NOTSUPP). */
export function serves(list: readonly number[], algo: number): boolean {
  return list.includes(algo);
}
