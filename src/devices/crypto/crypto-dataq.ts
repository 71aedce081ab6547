/**
 * 5.9.7.3 to 5.9.7.8 the data queues: struct virtio_crypto_op_header, the opcode's op_flf (the
 * session-mode structure, padded to 48 bytes without REVISION_1; the stateless structure when the
 * service's STATELESS_MODE is negotiated), op_vlf (keys for stateless requests, IV, source, AAD)
 * readable; destination and hash result writable, then struct virtio_crypto_inhdr (the status)
 * in the last writable byte. The opcode picks the structures (device/crypto/15, /23); the flag
 * picks session or stateless mode when stateless is negotiated (device/crypto/16, /19, /22).
 *
 * The guest is untrusted: every length is checked against max_size (the variable-length data of
 * one request) and the key limits before a byte is read; the request's bytes go into one scratch
 * buffer that grows to the largest request served, never past max_size plus the key limits. A
 * request the device cannot parse or serve completes with its status, never a throw.
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { ChainCursor, type DescriptorChain, writeWritableByteAt } from '../../queue/chain.js';
import {
  AlgChainDataFlf,
  CRYPTO_FLAG_SESSION_MODE,
  CryptoDataOp,
  CryptoF,
  CryptoOpHeader,
  CryptoService,
  CryptoStatus,
  DATAQ_OP_SPEC_HDR_LEGACY,
  DataFlfSize,
  SYM_DATA_OP_TYPE,
  SYM_STATELESS_OP_TYPE,
  StatelessFlfSize,
  SymHashMode,
  SymOpType,
} from '../../spec/crypto.js';
import { MAX_AKCIPHER_KEY_LEN } from './crypto-controlq.js';
import { type OpResult, runAead, runCipher, runHash, runHmac, runRsa } from './crypto-operations.js';
import {
  type AeadSession,
  type ChainSession,
  type CipherParams,
  type CryptoSession,
  type CryptoSessionTable,
  type RsaSession,
  type SessionLimits,
  buildAead,
  buildChain,
  buildCipher,
  buildHash,
  buildMac,
  buildRsa,
} from './crypto-sessions.js';

const U32 = 0x1_0000_0000;
/** IVs longer than this are refused (the longest any served algorithm takes is 16). */
const MAX_IV_LEN = 64;
const EMPTY = new Uint8Array(0);

const STATELESS_BIT: readonly bigint[] = [
  CryptoF.CIPHER_STATELESS_MODE,
  CryptoF.HASH_STATELESS_MODE,
  CryptoF.MAC_STATELESS_MODE,
  CryptoF.AEAD_STATELESS_MODE,
  CryptoF.AKCIPHER_STATELESS_MODE,
];

/** What the data queues need from their device. */
export interface CryptoDataHost {
  readonly limits: SessionLimits;
  readonly sessions: CryptoSessionTable;
  /** max_size: bytes of variable-length data (IV, source, AAD, destination, result) per request. */
  readonly maxSize: number;
}

export class CryptoDataQueue {
  /** Bound to this: the queue server's handler (every data queue shares this object). */
  readonly serve = (req: QueueRequest): number => this.handle(req.chain);

  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly fixed = new Uint8Array(CryptoOpHeader.SIZE + 80);
  private readonly view = new DataView(this.fixed.buffer);
  private scratch = new Uint8Array(4096);
  private at = 0;
  private readonly scratchLimit: number;
  private le = true;
  private features = 0n;
  /** Bytes of the writable part written by the request being served (besides the status). */
  private written = 0;

  constructor(private readonly host: CryptoDataHost) {
    const l = host.limits;
    this.scratchLimit = host.maxSize + l.maxCipherKeyLen + l.maxAuthKeyLen + MAX_AKCIPHER_KEY_LEN;
  }

  configure(features: bigint, littleEndian: boolean): void {
    this.features = features;
    this.le = littleEndian;
  }

  private handle(chain: DescriptorChain): number {
    const wb = chain.writableBytes;
    if (wb === 0) return 0; // no room for the status: nothing can be said
    this.written = 0;
    let status: number = chain.fault !== null ? CryptoStatus.ERR : this.process(chain);
    if (status !== CryptoStatus.OK) this.written = 0;
    if (chain.fault !== null) status = CryptoStatus.ERR;
    return writeWritableByteAt(chain, wb - 1, status) ? this.written + 1 : this.written;
  }

  private u32(off: number): number {
    return this.view.getUint32(CryptoOpHeader.SIZE + off, this.le);
  }

  // ---- reading the request ----

  /** Starts a request's variable-length data: false when `total` bytes exceed the limit. */
  private need(total: number): boolean {
    this.at = 0;
    if (total > this.scratchLimit) return false;
    if (this.scratch.length < total) this.scratch = new Uint8Array(Math.min(this.scratchLimit, Math.max(total, this.scratch.length * 2)));
    return true;
  }

  /** The next `len` readable bytes (into scratch), or null when the chain is short. */
  private take(len: number): Uint8Array | null {
    if (len === 0) return EMPTY;
    const at = this.at;
    if (this.reader.read(this.scratch, at, len) !== len) return null;
    this.at = at + len;
    return this.scratch.subarray(at, at + len);
  }

  /** Writes `result` as the destination (at most `room` bytes); false when it does not fit. */
  private emit(chain: DescriptorChain, result: Uint8Array, room: number): boolean {
    if (result.length > room) return false;
    this.written = this.writer.reset(chain).write(result);
    return this.written === result.length;
  }

  private session(service: number): CryptoSession | null {
    const v = this.view;
    const lo = v.getUint32(CryptoOpHeader.SESSION_ID + (this.le ? 0 : 4), this.le);
    const hi = v.getUint32(CryptoOpHeader.SESSION_ID + (this.le ? 4 : 0), this.le);
    if (hi >= 0x20_0000) return null;
    const s = this.host.sessions.get(hi * U32 + lo);
    return s !== undefined && s.service === service ? s : null;
  }

  private process(chain: DescriptorChain): number {
    this.reader.reset(chain);
    if (this.reader.read(this.fixed, 0, CryptoOpHeader.SIZE) !== CryptoOpHeader.SIZE) return CryptoStatus.ERR;
    const opcode = this.view.getUint32(CryptoOpHeader.OPCODE, this.le);
    const service = opcode >>> 8;
    if (service > CryptoService.AKCIPHER) return CryptoStatus.NOTSUPP; // IPSEC and unknown services
    const rev1 = (this.features & CryptoF.REVISION_1) !== 0n;
    const stateless = rev1 && (this.features & STATELESS_BIT[service]!) !== 0n;
    // Without REVISION_1 the flag is ignored: session mode. With it, a request without
    // SESSION_MODE is stateless, refused when the service's stateless mode is not negotiated.
    const sessionMode = !rev1 || (this.view.getUint32(CryptoOpHeader.FLAG, this.le) & CRYPTO_FLAG_SESSION_MODE) !== 0;
    if (!sessionMode && !stateless) return CryptoStatus.NOTSUPP;
    const flf = stateless ? STATELESS_FLF[service]! : rev1 ? SESSION_FLF[service]! : DATAQ_OP_SPEC_HDR_LEGACY;
    if (this.reader.read(this.fixed, CryptoOpHeader.SIZE, flf) !== flf) return CryptoStatus.ERR;
    const wb = chain.writableBytes;
    switch (opcode) {
      case CryptoDataOp.CIPHER_ENCRYPT:
      case CryptoDataOp.CIPHER_DECRYPT:
        return this.sym(chain, opcode === CryptoDataOp.CIPHER_ENCRYPT, sessionMode, stateless, wb);
      case CryptoDataOp.HASH:
      case CryptoDataOp.MAC:
        return this.digest(chain, service, sessionMode, stateless, wb);
      case CryptoDataOp.AEAD_ENCRYPT:
      case CryptoDataOp.AEAD_DECRYPT:
        return this.aead(chain, opcode === CryptoDataOp.AEAD_ENCRYPT, sessionMode, stateless, wb);
      case CryptoDataOp.AKCIPHER_ENCRYPT:
      case CryptoDataOp.AKCIPHER_DECRYPT:
      case CryptoDataOp.AKCIPHER_SIGN:
      case CryptoDataOp.AKCIPHER_VERIFY:
        return this.akcipher(chain, opcode, sessionMode, stateless, wb);
      default:
        return CryptoStatus.NOTSUPP;
    }
  }

  // ---- 5.9.7.6 symmetric: cipher and chaining ----

  private sym(chain: DescriptorChain, encrypt: boolean, sessionMode: boolean, stateless: boolean, wb: number): number {
    const opType = this.u32(stateless ? SYM_STATELESS_OP_TYPE : SYM_DATA_OP_TYPE);
    const lim = this.host.limits;
    let s: CryptoSession | null = null;
    if (sessionMode) {
      s = this.session(CryptoService.CIPHER);
      if (s === null) return CryptoStatus.INVSESS;
      const kindOk = (s.kind === 'cipher' && opType === SymOpType.CIPHER) || (s.kind === 'chain' && opType === SymOpType.ALGORITHM_CHAINING);
      if (!kindOk) return CryptoStatus.ERR;
    }
    if (opType === SymOpType.CIPHER) {
      // Stateless: sess_para {algo, key_len, op} first (12 bytes), then the session-mode fields.
      const o = stateless ? 12 : 0;
      const keyLen = stateless ? this.u32(4) : 0;
      const ivLen = this.u32(o);
      const srcLen = this.u32(o + 4);
      const dstLen = this.u32(o + 8);
      if (keyLen > lim.maxCipherKeyLen || ivLen > MAX_IV_LEN) return CryptoStatus.ERR;
      if (dstLen < srcLen || wb < dstLen + 1 || ivLen + srcLen + dstLen > this.host.maxSize || !this.need(keyLen + ivLen + srcLen)) return CryptoStatus.ERR;
      const key = this.take(keyLen);
      const iv = this.take(ivLen);
      const src = this.take(srcLen);
      if (key === null || iv === null || src === null) return CryptoStatus.ERR;
      let p: CipherParams;
      if (s !== null) p = (s as { cipher: CipherParams }).cipher;
      else {
        const b = buildCipher(lim, this.u32(0), key, this.u32(8));
        if (typeof b === 'number') return b;
        p = b;
      }
      if (p.encrypt !== encrypt) return CryptoStatus.ERR; // the opcode contradicts the session's op
      return this.finish(chain, runCipher(p, iv, src), dstLen);
    }
    if (opType === SymOpType.ALGORITHM_CHAINING) return this.chain(chain, encrypt, s as ChainSession | null, stateless, wb);
    return CryptoStatus.NOTSUPP;
  }

  private chain(chain: DescriptorChain, encrypt: boolean, session: ChainSession | null, stateless: boolean, wb: number): number {
    const lim = this.host.limits;
    // Stateless: sess_para is 32 bytes {order, aad_len, cipher{algo,key_len,op}, hash{algo,auth_key_len,hash_mode}}.
    const o = stateless ? 32 : 0;
    const keyLen = stateless ? this.u32(12) : 0;
    const authKeyLen = stateless ? this.u32(24) : 0;
    const ivLen = this.u32(o + AlgChainDataFlf.IV_LEN);
    const srcLen = this.u32(o + AlgChainDataFlf.SRC_DATA_LEN);
    const dstLen = this.u32(o + AlgChainDataFlf.DST_DATA_LEN);
    const cipherAt = this.u32(o + AlgChainDataFlf.CIPHER_START_SRC_OFFSET);
    const cipherLen = this.u32(o + AlgChainDataFlf.LEN_TO_CIPHER);
    const hashAt = this.u32(o + AlgChainDataFlf.HASH_START_SRC_OFFSET);
    const hashLen = this.u32(o + AlgChainDataFlf.LEN_TO_HASH);
    const aadLen = this.u32(o + AlgChainDataFlf.AAD_LEN);
    const resultLen = this.u32(o + AlgChainDataFlf.HASH_RESULT_LEN);
    if (keyLen > lim.maxCipherKeyLen || authKeyLen > lim.maxAuthKeyLen || ivLen > MAX_IV_LEN) return CryptoStatus.ERR;
    const total = ivLen + srcLen + aadLen + dstLen + resultLen;
    if (total > this.host.maxSize || dstLen < srcLen || wb < dstLen + resultLen + 1) return CryptoStatus.ERR;
    if (cipherAt + cipherLen > srcLen || hashAt + hashLen > srcLen) return CryptoStatus.ERR;
    if (!this.need(keyLen + authKeyLen + ivLen + srcLen + aadLen)) return CryptoStatus.ERR;
    const key = this.take(keyLen);
    const authKey = this.take(authKeyLen);
    let iv: Uint8Array | null;
    let src: Uint8Array | null;
    let aad: Uint8Array | null;
    // device/crypto/27: the AAD is parsed only when aad_len is above 0. The stateless structure
    // (whenever CIPHER_STATELESS_MODE is negotiated) orders keys, IV, AAD, source; the session
    // one IV, source, AAD.
    if (stateless) {
      iv = this.take(ivLen);
      aad = aadLen > 0 ? this.take(aadLen) : EMPTY;
      src = this.take(srcLen);
    } else {
      iv = this.take(ivLen);
      src = this.take(srcLen);
      aad = aadLen > 0 ? this.take(aadLen) : EMPTY;
    }
    if (key === null || authKey === null) return CryptoStatus.ERR;
    let s = session;
    if (s === null) {
      const c = buildCipher(lim, this.u32(8), key, this.u32(16));
      if (typeof c === 'number') return c;
      const hashMode = this.u32(28);
      const b = buildChain(lim, c, this.u32(0), hashMode, this.u32(20), resultLen, hashMode === SymHashMode.AUTH ? authKey : null);
      if (typeof b === 'number') return b;
      s = b;
    }
    if (iv === null || src === null || aad === null) return CryptoStatus.ERR;
    if (s.cipher.encrypt !== encrypt || resultLen < s.resultLen) return CryptoStatus.ERR;
    // The destination is the source with the cipher region transformed; the hash covers the AAD
    // and the hash region, of the ciphertext (CIPHER_THEN_HASH) or the plaintext (HASH_THEN_CIPHER).
    const out = Buffer.from(src);
    const hashInput = (data: Uint8Array): OpResult =>
      s.authKey === null ? runHash(s.hash, s.resultLen, aad!, data.subarray(hashAt, hashAt + hashLen)) : runHmac(s.hash, s.authKey, s.resultLen, aad!, data.subarray(hashAt, hashAt + hashLen));
    let digest: OpResult = CryptoStatus.ERR;
    if (!s.cipherFirst) digest = hashInput(src);
    const c = runCipher(s.cipher, iv, src.subarray(cipherAt, cipherAt + cipherLen));
    if (typeof c === 'number') return c;
    out.set(c, cipherAt);
    if (s.cipherFirst) digest = hashInput(out);
    if (typeof digest === 'number') return digest;
    // device/crypto/26 and /28: the result in dst_data[], the digest in hash_result[].
    const w = this.writer.reset(chain);
    const n = w.write(out);
    w.skip(dstLen - out.length);
    const m = w.write(digest);
    if (n !== out.length || m !== digest.length) return CryptoStatus.ERR;
    this.written = n + m;
    return CryptoStatus.OK;
  }

  // ---- 5.9.7.4 HASH and 5.9.7.5 MAC ----

  private digest(chain: DescriptorChain, service: number, sessionMode: boolean, stateless: boolean, wb: number): number {
    const lim = this.host.limits;
    const mac = service === CryptoService.MAC;
    // Stateless HASH: {algo}, src_len, result_len; MAC: {algo, auth_key_len}, src_len, result_len.
    const o = stateless ? (mac ? 8 : 4) : 0;
    const keyLen = stateless && mac ? this.u32(4) : 0;
    const srcLen = this.u32(o);
    const resultLen = this.u32(o + 4);
    if (keyLen > lim.maxAuthKeyLen || srcLen + resultLen > this.host.maxSize || wb < resultLen + 1) return CryptoStatus.ERR;
    if (!this.need(keyLen + srcLen)) return CryptoStatus.ERR;
    const key = this.take(keyLen);
    const src = this.take(srcLen);
    if (key === null || src === null) return CryptoStatus.ERR;
    let s: CryptoSession;
    if (sessionMode) {
      const found = this.session(service);
      if (found === null) return CryptoStatus.INVSESS;
      s = found;
    } else {
      const b = mac ? buildMac(lim, this.u32(0), resultLen, key) : buildHash(lim, this.u32(0), resultLen);
      if (typeof b === 'number') return b;
      s = b;
    }
    if (s.kind === 'hash') return s.resultLen > resultLen ? CryptoStatus.ERR : this.finish(chain, runHash(s.hash, s.resultLen, src), resultLen);
    if (s.kind === 'mac') return s.resultLen > resultLen ? CryptoStatus.ERR : this.finish(chain, runHmac(s.hash, s.key, s.resultLen, src), resultLen);
    return CryptoStatus.INVSESS;
  }

  // ---- 5.9.7.7 AEAD ----

  private aead(chain: DescriptorChain, encrypt: boolean, sessionMode: boolean, stateless: boolean, wb: number): number {
    const lim = this.host.limits;
    let keyLen = 0;
    let ivLen: number;
    let aadLen: number;
    let srcLen: number;
    let dstLen: number;
    let tagLen: number;
    if (stateless) {
      // {algo, key_len, op}, iv_len, tag_len, aad_len, src_data_len, dst_data_len.
      keyLen = this.u32(4);
      ivLen = this.u32(12);
      tagLen = this.u32(16);
      aadLen = this.u32(20);
      srcLen = this.u32(24);
      dstLen = this.u32(28);
    } else {
      ivLen = this.u32(0);
      aadLen = this.u32(4);
      srcLen = this.u32(8);
      dstLen = this.u32(12);
      tagLen = this.u32(16);
    }
    if (keyLen > lim.maxCipherKeyLen || ivLen > MAX_IV_LEN || tagLen > 16) return CryptoStatus.ERR;
    if (ivLen + srcLen + aadLen + dstLen > this.host.maxSize || wb < dstLen + 1 || !this.need(keyLen + ivLen + srcLen + aadLen)) return CryptoStatus.ERR;
    const key = this.take(keyLen);
    const iv = this.take(ivLen);
    const src = this.take(srcLen);
    const aad = this.take(aadLen);
    if (key === null || iv === null || src === null || aad === null) return CryptoStatus.ERR;
    let s: AeadSession;
    if (sessionMode) {
      const found = this.session(CryptoService.AEAD);
      if (found === null || found.kind !== 'aead') return CryptoStatus.INVSESS;
      s = found;
    } else {
      const b = buildAead(lim, this.u32(0), key, tagLen, aadLen, this.u32(8));
      if (typeof b === 'number') return b;
      s = b;
    }
    if (s.encrypt !== encrypt) return CryptoStatus.ERR;
    const need = encrypt ? srcLen + tagLen : srcLen - tagLen;
    if (need < 0 || dstLen < need) return CryptoStatus.ERR;
    return this.finish(chain, runAead(s, iv, src, aad, tagLen), dstLen);
  }

  // ---- 5.9.7.8 AKCIPHER ----

  private akcipher(chain: DescriptorChain, opcode: number, sessionMode: boolean, stateless: boolean, wb: number): number {
    const lim = this.host.limits;
    // Stateless: {algo, key_type, key_len, rsa {padding, hash} (8 bytes)}, src_len, dst_len.
    const o = stateless ? 20 : 0;
    const keyLen = stateless ? this.u32(8) : 0;
    const srcLen = this.u32(o);
    const dstLen = this.u32(o + 4);
    const verify = opcode === CryptoDataOp.AKCIPHER_VERIFY;
    if (keyLen > MAX_AKCIPHER_KEY_LEN || srcLen + dstLen > this.host.maxSize) return CryptoStatus.ERR;
    // VERIFY: the signature then the signed digest are both readable; only the status is written.
    if (!verify && wb < dstLen + 1) return CryptoStatus.ERR;
    if (!this.need(keyLen + srcLen + (verify ? dstLen : 0))) return CryptoStatus.ERR;
    const key = this.take(keyLen);
    const src = this.take(srcLen);
    const signed = verify ? this.take(dstLen) : EMPTY;
    if (key === null || src === null || signed === null) return CryptoStatus.ERR;
    let s: RsaSession;
    if (sessionMode) {
      const found = this.session(CryptoService.AKCIPHER);
      if (found === null || found.kind !== 'rsa') return CryptoStatus.INVSESS;
      s = found;
    } else {
      const b = buildRsa(lim, this.u32(0), this.u32(4), key, this.u32(12), this.u32(16));
      if (typeof b === 'number') return b;
      s = b;
    }
    const r = runRsa(s, opcode, src, signed);
    if (verify) return typeof r === 'number' ? r : CryptoStatus.OK;
    return this.finish(chain, r, dstLen);
  }

  /** device/crypto/17, /20, /26, /31, /36: a result goes to the destination; else its status. */
  private finish(chain: DescriptorChain, r: OpResult, room: number): number {
    if (typeof r === 'number') return r;
    return this.emit(chain, r, room) ? CryptoStatus.OK : CryptoStatus.ERR;
  }
}

/** op_flf sizes by service (CIPHER, HASH, MAC, AEAD, AKCIPHER). */
const SESSION_FLF: readonly number[] = [DataFlfSize.SYM, DataFlfSize.HASH, DataFlfSize.MAC, DataFlfSize.AEAD, DataFlfSize.AKCIPHER];
const STATELESS_FLF: readonly number[] = [StatelessFlfSize.SYM, StatelessFlfSize.HASH, StatelessFlfSize.MAC, StatelessFlfSize.AEAD, StatelessFlfSize.AKCIPHER];

