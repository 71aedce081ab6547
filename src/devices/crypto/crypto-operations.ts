/**
 * The cryptographic work of 5.9.7.4 to 5.9.7.7 on node:crypto, on session parameters and the
 * request's bytes: each returns the result bytes or a VIRTIO_CRYPTO_* status (a failure of
 * node:crypto on guest data is the request's status, never a throw).
 *
 * node:crypto makes a cipher/hash object and result Buffers per operation; the device's own
 * request parsing allocates nothing per request (see crypto-dataq.ts).
 */
import { constants, createCipheriv, createDecipheriv, createHash, createHmac, privateDecrypt, privateEncrypt, publicDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { AeadAlgo, CryptoDataOp, CryptoStatus, RsaPadding } from '../../spec/crypto.js';
import { aeadParamsOk, cipherLengthOk, digestLength } from './crypto-algorithms.js';
import type { AeadSession, CipherParams, RsaSession } from './crypto-sessions.js';

export type OpResult = Uint8Array | number;

const EMPTY = new Uint8Array(0);

/** 5.9.7.6 CIPHER: the whole of `src` en- or decrypted (no padding: ECB/CBC need whole blocks). */
export function runCipher(p: CipherParams, iv: Uint8Array, src: Uint8Array): OpResult {
  if (p.ivLen > 0 && iv.length !== p.ivLen) return CryptoStatus.ERR;
  if (!cipherLengthOk(p.algo, src.length)) return CryptoStatus.ERR;
  if (src.length === 0) return EMPTY;
  try {
    const c = p.encrypt ? createCipheriv(p.name, p.key, p.ivLen > 0 ? iv : null) : createDecipheriv(p.name, p.key, p.ivLen > 0 ? iv : null);
    c.setAutoPadding(false);
    const out = c.update(src);
    const tail = c.final();
    return tail.length === 0 ? out : Buffer.concat([out, tail]);
  } catch {
    return CryptoStatus.ERR;
  }
}

/** 5.9.7.4 HASH over `parts` in order, truncated (or, for SHAKE, extended) to `resultLen`. */
export function runHash(name: string, resultLen: number, a: Uint8Array, b: Uint8Array = EMPTY): OpResult {
  try {
    const h = digestLength(name) === null ? createHash(name, { outputLength: resultLen }) : createHash(name);
    if (a.length > 0) h.update(a);
    if (b.length > 0) h.update(b);
    const d = h.digest();
    return d.length === resultLen ? d : d.subarray(0, resultLen);
  } catch {
    return CryptoStatus.ERR;
  }
}

/** 5.9.7.5 MAC: HMAC over `parts`, truncated to `resultLen`. */
export function runHmac(name: string, key: KeyObject, resultLen: number, a: Uint8Array, b: Uint8Array = EMPTY): OpResult {
  try {
    const h = createHmac(name, key);
    if (a.length > 0) h.update(a);
    if (b.length > 0) h.update(b);
    const d = h.digest();
    return d.subarray(0, resultLen);
  } catch {
    return CryptoStatus.ERR;
  }
}

/**
 * 5.9.7.7 AEAD. Encryption: the ciphertext then the tag (device/crypto/32). Decryption: `src` is
 * ciphertext then tag; a tag that does not verify is BADMSG (device/crypto/34).
 */
export function runAead(s: Pick<AeadSession, 'algo' | 'name' | 'key' | 'encrypt'>, iv: Uint8Array, src: Uint8Array, aad: Uint8Array, tagLen: number): OpResult {
  if (!aeadParamsOk(s.algo, iv.length, tagLen)) return CryptoStatus.NOTSUPP;
  try {
    if (s.encrypt) {
      const c = s.algo === AeadAlgo.GCM ? createCipheriv(s.name as 'aes-128-gcm', s.key, iv, { authTagLength: tagLen }) : createCipheriv(s.name as 'chacha20-poly1305', s.key, iv, { authTagLength: tagLen });
      if (aad.length > 0) c.setAAD(aad);
      const body = c.update(src);
      const tail = c.final();
      return Buffer.concat([body, tail, c.getAuthTag()]);
    }
    if (src.length < tagLen) return CryptoStatus.ERR;
    const ctLen = src.length - tagLen;
    const d = s.algo === AeadAlgo.GCM ? createDecipheriv(s.name as 'aes-128-gcm', s.key, iv, { authTagLength: tagLen }) : createDecipheriv(s.name as 'chacha20-poly1305', s.key, iv, { authTagLength: tagLen });
    d.setAuthTag(src.subarray(ctLen));
    if (aad.length > 0) d.setAAD(aad);
    const body = d.update(src.subarray(0, ctLen));
    try {
      const tail = d.final();
      return tail.length === 0 ? body : Buffer.concat([body, tail]);
    } catch {
      return CryptoStatus.BADMSG;
    }
  } catch {
    return CryptoStatus.ERR;
  }
}

/** Left-pads `src` with zeros to `len` bytes (RAW RSA inputs, 5.9.7.2.1). */
function leftPad(src: Uint8Array, len: number): Buffer {
  const b = Buffer.alloc(len);
  b.set(src, len - src.length);
  return b;
}

/**
 * EME-PKCS1-v1_5 decoding (RFC 8017 7.2.2) of a raw RSA decryption: node refuses PKCS#1 v1.5
 * decryption since CVE-2023-46809, so the device unpads itself. Returns null when malformed.
 */
function unpadPkcs1Type2(em: Uint8Array): Uint8Array | null {
  if (em.length < 11 || em[0] !== 0 || em[1] !== 2) return null;
  let i = 2;
  while (i < em.length && em[i] !== 0) i++;
  if (i >= em.length || i < 10) return null;
  return em.subarray(i + 1);
}

/**
 * 5.9.7.8 AKCIPHER with RSA. `src` is the input (for VERIFY: the signature) and `signed` the
 * signed digest of VERIFY. A VERIFY whose signature does not match is KEY_REJECTED.
 */
export function runRsa(s: RsaSession, opcode: number, src: Uint8Array, signed: Uint8Array): OpResult {
  const n = s.modulusBytes;
  try {
    switch (opcode) {
      case CryptoDataOp.AKCIPHER_ENCRYPT: {
        if (s.padding === RsaPadding.RAW) {
          if (src.length > n) return CryptoStatus.ERR;
          return publicEncrypt({ key: s.publicKey, padding: constants.RSA_NO_PADDING }, leftPad(src, n));
        }
        if (src.length > n - 11) return CryptoStatus.ERR;
        return publicEncrypt({ key: s.publicKey, padding: constants.RSA_PKCS1_PADDING }, src);
      }
      case CryptoDataOp.AKCIPHER_DECRYPT: {
        if (s.privateKey === null || src.length > n) return CryptoStatus.ERR;
        const em = privateDecrypt({ key: s.privateKey, padding: constants.RSA_NO_PADDING }, leftPad(src, n));
        if (s.padding === RsaPadding.RAW) return em;
        return unpadPkcs1Type2(em) ?? CryptoStatus.ERR;
      }
      case CryptoDataOp.AKCIPHER_SIGN: {
        // RAW sessions are not used to sign (5.9.7.2.1).
        if (s.padding === RsaPadding.RAW) return CryptoStatus.NOTSUPP;
        if (s.privateKey === null) return CryptoStatus.ERR;
        const t = Buffer.concat([s.digestInfo, src]);
        if (t.length > n - 11) return CryptoStatus.ERR;
        return privateEncrypt({ key: s.privateKey, padding: constants.RSA_PKCS1_PADDING }, t);
      }
      case CryptoDataOp.AKCIPHER_VERIFY: {
        if (s.padding === RsaPadding.RAW) return CryptoStatus.NOTSUPP;
        if (src.length !== n) return CryptoStatus.KEY_REJECTED;
        let recovered: Buffer;
        try {
          recovered = publicDecrypt({ key: s.publicKey, padding: constants.RSA_PKCS1_PADDING }, src);
        } catch {
          return CryptoStatus.KEY_REJECTED;
        }
        const expected = Buffer.concat([s.digestInfo, signed]);
        return recovered.equals(expected) ? EMPTY : CryptoStatus.KEY_REJECTED;
      }
      default:
        return CryptoStatus.NOTSUPP;
    }
  } catch {
    return CryptoStatus.ERR;
  }
}
