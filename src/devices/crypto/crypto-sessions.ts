/**
 * 5.9.7.2.1 sessions: the parameters of each kind, checked once at creation (algorithm served,
 * key sizes, result lengths), and the bounded table that hands out unique ids (device/crypto/13).
 * Stateless requests (5.9.7.3 with VIRTIO_CRYPTO_F_*_STATELESS_MODE) build the same objects for
 * one request. Builders return a session or a VIRTIO_CRYPTO_* status, never throw on guest input.
 */
import { type KeyObject, createPrivateKey, createPublicKey, createSecretKey } from 'node:crypto';
import { AkcipherAlgo, AkcipherKeyType, AlgChainOrder, CryptoOpDirection, CryptoService, CryptoStatus, RsaPadding, SymHashMode } from '../../spec/crypto.js';
import {
  type CryptoAlgorithmSet,
  aeadName,
  cipherIvLen,
  cipherName,
  digestLength,
  hashName,
  hmacHashName,
  rsaDigestInfo,
  serves,
} from './crypto-algorithms.js';

/** A cipher's parameters checked at creation (struct virtio_crypto_cipher_session_flf and its key). */
export interface CipherParams {
  /** The VIRTIO_CRYPTO_CIPHER_* algorithm (5.9.4.1). */
  readonly algo: number;
  /** node:crypto cipher name for `algo` and the key length, e.g. `aes-128-cbc`. */
  readonly name: string;
  /** The cipher key, as a secret KeyObject. */
  readonly key: KeyObject;
  /** IV length in bytes the algorithm takes (0 for ECB). */
  readonly ivLen: number;
  /** true for VIRTIO_CRYPTO_OP_ENCRYPT, false for VIRTIO_CRYPTO_OP_DECRYPT. */
  readonly encrypt: boolean;
}

/** VIRTIO_CRYPTO_SYM_OP_CIPHER: a plain cipher session (5.9.7.2.1). */
export interface CipherSession {
  /** Discriminant of {@link CryptoSession}. */
  readonly kind: 'cipher';
  /** The service whose destroy opcode ends the session: VIRTIO_CRYPTO_SERVICE_CIPHER. */
  readonly service: typeof CryptoService.CIPHER;
  /** The cipher the session applies. */
  readonly cipher: CipherParams;
}

/** VIRTIO_CRYPTO_SYM_OP_ALGORITHM_CHAINING: a cipher with a plain hash or an HMAC. */
export interface ChainSession {
  /** Discriminant of {@link CryptoSession}. */
  readonly kind: 'chain';
  /** Chaining is part of the cipher service: VIRTIO_CRYPTO_SERVICE_CIPHER. */
  readonly service: typeof CryptoService.CIPHER;
  /** The cipher half of the chain. */
  readonly cipher: CipherParams;
  /** true for alg_chain_order CIPHER_THEN_HASH (the hash covers the ciphertext), false for HASH_THEN_CIPHER. */
  readonly cipherFirst: boolean;
  /** node:crypto digest name of the hash, or of the HMAC's hash when `authKey` is set. */
  readonly hash: string;
  /** HMAC key for hash_mode AUTH; null for PLAIN. */
  readonly authKey: KeyObject | null;
  /** Bytes of digest or MAC the request returns (hash_result_len): the full one truncated. */
  readonly resultLen: number;
}

/** A VIRTIO_CRYPTO_HASH session (5.9.7.2.1.3): a digest of the request's data. */
export interface HashSession {
  /** Tells the session kinds apart. */
  readonly kind: 'hash';
  /** VIRTIO_CRYPTO_SERVICE_HASH. */
  readonly service: typeof CryptoService.HASH;
  /** The Node.js (OpenSSL) digest name of the session's VIRTIO_CRYPTO_HASH_* algorithm, e.g. `sha256`. */
  readonly hash: string;
  /** hash_result_len: bytes of digest returned (the digest truncated to it; SHAKE: that many bytes of output). */
  readonly resultLen: number;
}

/** A VIRTIO_CRYPTO_MAC session (5.9.7.2.1.4): an HMAC of the request's data under the session key. */
export interface MacSession {
  /** Tells the session kinds apart. */
  readonly kind: 'mac';
  /** VIRTIO_CRYPTO_SERVICE_MAC. */
  readonly service: typeof CryptoService.MAC;
  /** The Node.js digest name under the HMAC of the session's VIRTIO_CRYPTO_MAC_HMAC_* algorithm. */
  readonly hash: string;
  /** The authentication key given at session creation. */
  readonly key: KeyObject;
  /** hash_result_len: bytes of the HMAC returned (truncated; at most the digest length). */
  readonly resultLen: number;
}

/** An AEAD session (struct virtio_crypto_aead_session_para, 5.9.7.2.1). */
export interface AeadSession {
  /** Discriminant of {@link CryptoSession}. */
  readonly kind: 'aead';
  /** VIRTIO_CRYPTO_SERVICE_AEAD. */
  readonly service: typeof CryptoService.AEAD;
  /** The VIRTIO_CRYPTO_AEAD_* algorithm (GCM, CCM or ChaCha20-Poly1305). */
  readonly algo: number;
  /** node:crypto cipher name for `algo` and the key length, e.g. `aes-256-gcm`. */
  readonly name: string;
  /** The AEAD key, as a secret KeyObject. */
  readonly key: KeyObject;
  /** Authentication tag length in bytes (tag_len). */
  readonly tagLen: number;
  /** Additional authenticated data length in bytes the session was created with (aad_len). */
  readonly aadLen: number;
  /** true for VIRTIO_CRYPTO_OP_ENCRYPT, false for VIRTIO_CRYPTO_OP_DECRYPT. */
  readonly encrypt: boolean;
}

/** An RSA akcipher session (5.9.7.2.1.4): the key and how operations pad and hash. */
export interface RsaSession {
  /** Tells the session kinds apart. */
  readonly kind: 'rsa';
  /** VIRTIO_CRYPTO_SERVICE_AKCIPHER. */
  readonly service: typeof CryptoService.AKCIPHER;
  /** The private key (decrypt, sign); null for a session made with a public key. */
  readonly privateKey: KeyObject | null;
  /** The public key (encrypt, verify), derived from the private one when that was given. */
  readonly publicKey: KeyObject;
  /** Modulus bytes: RAW inputs are left-padded to it, results have it. */
  readonly modulusBytes: number;
  /** VIRTIO_CRYPTO_RSA_RAW_PADDING or VIRTIO_CRYPTO_RSA_PKCS1_PADDING. */
  readonly padding: number;
  /** DigestInfo prefix for PKCS#1 sign and verify (empty for NO_HASH). */
  readonly digestInfo: Uint8Array;
}

/** A session of any kind, as the table holds it; `kind` tells which. */
export type CryptoSession = CipherSession | ChainSession | HashSession | MacSession | AeadSession | RsaSession;

/** Limits the builders check (from the configuration the device advertises). */
export interface SessionLimits {
  /** The algorithms the device advertises per service; others are NOTSUPP. */
  readonly algorithms: CryptoAlgorithmSet;
  /** max_cipher_key_len (bytes): a longer cipher key is refused. */
  readonly maxCipherKeyLen: number;
  /** max_auth_key_len (bytes): a longer MAC key is refused. */
  readonly maxAuthKeyLen: number;
}

type Built<T> = T | number;

function directionOf(op: number): boolean | null {
  return op === CryptoOpDirection.ENCRYPT ? true : op === CryptoOpDirection.DECRYPT ? false : null;
}

/** struct virtio_crypto_cipher_session_flf + its key. */
export function buildCipher(lim: SessionLimits, algo: number, key: Uint8Array, op: number): Built<CipherParams> {
  if (!serves(lim.algorithms.cipher, algo)) return CryptoStatus.NOTSUPP;
  const encrypt = directionOf(op);
  if (encrypt === null) return CryptoStatus.ERR;
  if (key.length > lim.maxCipherKeyLen) return CryptoStatus.ERR;
  const name = cipherName(algo, key.length);
  if (name === null) return CryptoStatus.ERR; // a key length the algorithm has not
  return { algo, name, key: createSecretKey(key), ivLen: cipherIvLen(algo), encrypt };
}

/** A HASH session (or the plain hash of a chain): the digest truncated to resultLen. */
export function buildHash(lim: SessionLimits, algo: number, resultLen: number): Built<HashSession> {
  if (!serves(lim.algorithms.hash, algo)) return CryptoStatus.NOTSUPP;
  const hash = hashName(algo)!;
  const full = digestLength(hash);
  // A result longer than the digest cannot be produced; SHAKE output is whatever is asked.
  if (resultLen === 0 || (full !== null && resultLen > full) || resultLen > 1024) return CryptoStatus.ERR;
  return { kind: 'hash', service: CryptoService.HASH, hash, resultLen };
}

export function buildMac(lim: SessionLimits, algo: number, resultLen: number, key: Uint8Array): Built<MacSession> {
  if (!serves(lim.algorithms.mac, algo)) return CryptoStatus.NOTSUPP;
  if (key.length > lim.maxAuthKeyLen) return CryptoStatus.ERR;
  const hash = hmacHashName(algo)!;
  if (resultLen === 0 || resultLen > digestLength(hash)!) return CryptoStatus.ERR;
  return { kind: 'mac', service: CryptoService.MAC, hash, key: createSecretKey(key.length === 0 ? new Uint8Array(0) : key), resultLen };
}

export function buildChain(
  lim: SessionLimits,
  cipher: CipherParams,
  order: number,
  hashMode: number,
  hashAlgo: number,
  resultLen: number,
  authKey: Uint8Array | null,
): Built<ChainSession> {
  if (order !== AlgChainOrder.CIPHER_THEN_HASH && order !== AlgChainOrder.HASH_THEN_CIPHER) return CryptoStatus.ERR;
  const cipherFirst = order === AlgChainOrder.CIPHER_THEN_HASH;
  if (hashMode === SymHashMode.PLAIN) {
    const h = buildHash(lim, hashAlgo, resultLen);
    if (typeof h === 'number') return h;
    return { kind: 'chain', service: CryptoService.CIPHER, cipher, cipherFirst, hash: h.hash, authKey: null, resultLen };
  }
  if (hashMode === SymHashMode.AUTH) {
    const m = buildMac(lim, hashAlgo, resultLen, authKey ?? new Uint8Array(0));
    if (typeof m === 'number') return m;
    return { kind: 'chain', service: CryptoService.CIPHER, cipher, cipherFirst, hash: m.hash, authKey: m.key, resultLen };
  }
  // NESTED hashing (an outer and an inner hash) is not served.
  return hashMode === SymHashMode.NESTED ? CryptoStatus.NOTSUPP : CryptoStatus.ERR;
}

export function buildAead(lim: SessionLimits, algo: number, key: Uint8Array, tagLen: number, aadLen: number, op: number): Built<AeadSession> {
  if (!serves(lim.algorithms.aead, algo)) return CryptoStatus.NOTSUPP;
  const encrypt = directionOf(op);
  if (encrypt === null || key.length > lim.maxCipherKeyLen) return CryptoStatus.ERR;
  const name = aeadName(algo, key.length);
  if (name === null || tagLen < 1 || tagLen > 16) return CryptoStatus.ERR;
  return { kind: 'aead', service: CryptoService.AEAD, algo, name, key: createSecretKey(key), tagLen, aadLen, encrypt };
}

/**
 * An RSA session: the key is a DER RSAPrivateKey or RSAPublicKey (PKCS#1, 5.9.7.2.1). A key that
 * does not parse, or a padding the device has not, is ERR / NOTSUPP.
 */
export function buildRsa(lim: SessionLimits, algo: number, keyType: number, key: Uint8Array, padding: number, hash: number): Built<RsaSession> {
  if (algo !== AkcipherAlgo.RSA || !serves(lim.algorithms.akcipher, algo)) return CryptoStatus.NOTSUPP;
  if (padding !== RsaPadding.RAW && padding !== RsaPadding.PKCS1) return CryptoStatus.NOTSUPP;
  const digestInfo = padding === RsaPadding.PKCS1 ? rsaDigestInfo(hash) : new Uint8Array(0);
  if (digestInfo === null) return CryptoStatus.NOTSUPP;
  if (keyType !== AkcipherKeyType.PUBLIC && keyType !== AkcipherKeyType.PRIVATE) return CryptoStatus.ERR;
  try {
    const der = Buffer.from(key.buffer, key.byteOffset, key.length);
    const privateKey = keyType === AkcipherKeyType.PRIVATE ? createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }) : null;
    const publicKey = privateKey ? createPublicKey(privateKey) : createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 512 || bits > 8192) return CryptoStatus.ERR;
    return { kind: 'rsa', service: CryptoService.AKCIPHER, privateKey, publicKey, modulusBytes: Math.ceil(bits / 8), padding, digestInfo };
  } catch {
    return CryptoStatus.ERR; // not a DER PKCS#1 key
  }
}

/**
 * The sessions of one device: at most `capacity`, ids from a counter that never repeats while
 * the device lives (device/crypto/13: unique), so a stale id never names a new session.
 */
export class CryptoSessionTable {
  private readonly sessions = new Map<number, CryptoSession>();
  private nextId = 1;

  constructor(
    /** Most sessions open at once; {@link CryptoSessionTable.add} answers -1 beyond it. */
    readonly capacity: number,
  ) {}

  /** Sessions open now. */
  get size(): number {
    return this.sessions.size;
  }

  /** Session ids handed out since the device was made (for tests and stats). */
  get issued(): number {
    return this.nextId - 1;
  }

  /** The new session's id, or -1 when the table is full. */
  add(s: CryptoSession): number {
    if (this.sessions.size >= this.capacity) return -1;
    const id = this.nextId++;
    this.sessions.set(id, s);
    return id;
  }

  /** The session with id `id`, or undefined for an id never handed out or already destroyed. */
  get(id: number): CryptoSession | undefined {
    return this.sessions.get(id);
  }

  /** Destroys session `id`; false when there was none. */
  delete(id: number): boolean {
    return this.sessions.delete(id);
  }

  /** Drops every session (device reset); the id counter keeps counting. */
  clear(): void {
    this.sessions.clear();
  }
}
