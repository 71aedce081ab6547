/**
 * 5.9.7.2 the control queue: session create and destroy for every service. The readable part is
 * struct virtio_crypto_ctrl_header, the opcode's op_flf (its own size with REVISION_1, padded to
 * 56 bytes without: device/crypto/10) and op_vlf (keys, device/crypto/11); the writable part is
 * struct virtio_crypto_create_session_input (session_id only when OK: device/crypto/13, status:
 * device/crypto/12) or struct virtio_crypto_destroy_session_input (device/crypto/14).
 *
 * Every length comes from the guest: keys are bounded by max_cipher_key_len / max_auth_key_len
 * (and RSA keys by MAX_AKCIPHER_KEY_LEN) before a byte is read, into one buffer made at start.
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import {
  AlgChainSessionFlf,
  CTRLQ_OP_SPEC_HDR_LEGACY,
  CreateSessionInput,
  CryptoCtrlHeader,
  CryptoCtrlOp,
  CryptoF,
  CryptoService,
  CryptoStatus,
  CtrlFlfSize,
  SYM_SESS_OP_TYPE,
  SymHashMode,
  SymOpType,
} from '../../spec/crypto.js';
import { type CryptoSession, type CryptoSessionTable, type SessionLimits, buildAead, buildChain, buildCipher, buildHash, buildMac, buildRsa } from './crypto-sessions.js';

/** Largest DER RSA key accepted (an 8192-bit private key is about 4.7 KiB). */
export const MAX_AKCIPHER_KEY_LEN = 8192;

const U32 = 0x1_0000_0000;

/** What the control queue needs from its device. */
export interface CryptoControlHost {
  readonly limits: SessionLimits;
  readonly sessions: CryptoSessionTable;
}

export class CryptoControlQueue {
  /** Bound to this: the queue server's handler. */
  readonly serve = (req: QueueRequest): number => this.handle(req.chain);

  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly fixed = new Uint8Array(CryptoCtrlHeader.SIZE + CTRLQ_OP_SPEC_HDR_LEGACY);
  private readonly fixedView = new DataView(this.fixed.buffer);
  private readonly out = new Uint8Array(CreateSessionInput.SIZE);
  private readonly outView = new DataView(this.out.buffer);
  private readonly keys: Uint8Array;
  private le = true;
  private features = 0n;

  constructor(private readonly host: CryptoControlHost) {
    this.keys = new Uint8Array(Math.max(host.limits.maxCipherKeyLen + host.limits.maxAuthKeyLen, MAX_AKCIPHER_KEY_LEN));
  }

  configure(features: bigint, littleEndian: boolean): void {
    this.features = features;
    this.le = littleEndian;
  }

  private u32(off: number): number {
    return this.fixedView.getUint32(off, this.le);
  }

  private flfSize(revisionSize: number): number {
    return (this.features & CryptoF.REVISION_1) !== 0n ? revisionSize : CTRLQ_OP_SPEC_HDR_LEGACY;
  }

  private handle(chain: DescriptorChain): number {
    if (chain.writableBytes === 0) return 0; // nowhere to answer: the request is dropped
    const r = this.reader.reset(chain);
    if (chain.fault !== null || r.read(this.fixed, 0, CryptoCtrlHeader.SIZE) < CryptoCtrlHeader.SIZE) return this.answerCreate(chain, CryptoStatus.ERR, 0);
    const opcode = this.u32(CryptoCtrlHeader.OPCODE);
    switch (opcode) {
      case CryptoCtrlOp.CIPHER_DESTROY_SESSION:
      case CryptoCtrlOp.HASH_DESTROY_SESSION:
      case CryptoCtrlOp.MAC_DESTROY_SESSION:
      case CryptoCtrlOp.AEAD_DESTROY_SESSION:
      case CryptoCtrlOp.AKCIPHER_DESTROY_SESSION:
        return this.destroy(chain, opcode >>> 8);
      case CryptoCtrlOp.CIPHER_CREATE_SESSION:
      case CryptoCtrlOp.HASH_CREATE_SESSION:
      case CryptoCtrlOp.MAC_CREATE_SESSION:
      case CryptoCtrlOp.AEAD_CREATE_SESSION:
      case CryptoCtrlOp.AKCIPHER_CREATE_SESSION: {
        const s = this.parseCreate(opcode);
        if (typeof s === 'number') return this.answerCreate(chain, s, 0);
        const id = this.host.sessions.add(s);
        // NOSPC exists only with REVISION_1 (5.9.7.1); ERR otherwise.
        if (id < 0) return this.answerCreate(chain, (this.features & CryptoF.REVISION_1) !== 0n ? CryptoStatus.NOSPC : CryptoStatus.ERR, 0);
        return this.answerCreate(chain, CryptoStatus.OK, id);
      }
      default:
        // An opcode the device does not know: NOTSUPP in the create-session answer form (as QEMU).
        return chain.writableBytes >= CreateSessionInput.SIZE ? this.answerCreate(chain, CryptoStatus.NOTSUPP, 0) : this.answerByte(chain, CryptoStatus.NOTSUPP);
    }
  }

  /** Reads op_flf (`size` bytes after the header) into `fixed`; false when short. */
  private readFlf(size: number): boolean {
    return this.reader.read(this.fixed, CryptoCtrlHeader.SIZE, size) === size;
  }

  /** Reads `len` key bytes at `at` of the key buffer; null when short. */
  private readKey(at: number, len: number): Uint8Array | null {
    if (len === 0) return this.keys.subarray(at, at);
    return this.reader.read(this.keys, at, len) === len ? this.keys.subarray(at, at + len) : null;
  }

  private parseCreate(opcode: number): CryptoSession | number {
    const lim = this.host.limits;
    const F = CryptoCtrlHeader.SIZE; // op_flf starts after the header
    switch (opcode) {
      case CryptoCtrlOp.CIPHER_CREATE_SESSION: {
        if (!this.readFlf(this.flfSize(CtrlFlfSize.SYM))) return CryptoStatus.ERR;
        const opType = this.u32(F + SYM_SESS_OP_TYPE);
        if (opType === SymOpType.CIPHER) {
          const keyLen = this.u32(F + 4);
          if (keyLen > lim.maxCipherKeyLen) return CryptoStatus.ERR;
          const key = this.readKey(0, keyLen);
          if (key === null) return CryptoStatus.ERR;
          // struct virtio_crypto_cipher_session_flf: algo, key_len, op.
          const c = buildCipher(lim, this.u32(F), key, this.u32(F + 8));
          return typeof c === 'number' ? c : { kind: 'cipher', service: CryptoService.CIPHER, cipher: c };
        }
        if (opType === SymOpType.ALGORITHM_CHAINING) {
          const C = F + AlgChainSessionFlf.CIPHER_HDR;
          const keyLen = this.u32(C + 4);
          const hashMode = this.u32(F + AlgChainSessionFlf.HASH_MODE);
          const A = F + AlgChainSessionFlf.ALGO_FLF;
          const authKeyLen = hashMode === SymHashMode.AUTH ? this.u32(A + 8) : 0;
          if (keyLen > lim.maxCipherKeyLen || authKeyLen > lim.maxAuthKeyLen) return CryptoStatus.ERR;
          const key = this.readKey(0, keyLen);
          const authKey = this.readKey(lim.maxCipherKeyLen, authKeyLen);
          if (key === null || authKey === null) return CryptoStatus.ERR;
          const c = buildCipher(lim, this.u32(C), key, this.u32(C + 8));
          if (typeof c === 'number') return c;
          return buildChain(lim, c, this.u32(F + AlgChainSessionFlf.ALG_CHAIN_ORDER), hashMode, this.u32(A), this.u32(A + 4), authKey);
        }
        return CryptoStatus.NOTSUPP; // VIRTIO_CRYPTO_SYM_OP_NONE or unknown
      }
      case CryptoCtrlOp.HASH_CREATE_SESSION:
        if (!this.readFlf(this.flfSize(CtrlFlfSize.HASH))) return CryptoStatus.ERR;
        return buildHash(lim, this.u32(F), this.u32(F + 4));
      case CryptoCtrlOp.MAC_CREATE_SESSION: {
        if (!this.readFlf(this.flfSize(CtrlFlfSize.MAC))) return CryptoStatus.ERR;
        const keyLen = this.u32(F + 8);
        if (keyLen > lim.maxAuthKeyLen) return CryptoStatus.ERR;
        const key = this.readKey(0, keyLen);
        return key === null ? CryptoStatus.ERR : buildMac(lim, this.u32(F), this.u32(F + 4), key);
      }
      case CryptoCtrlOp.AEAD_CREATE_SESSION: {
        if (!this.readFlf(this.flfSize(CtrlFlfSize.AEAD))) return CryptoStatus.ERR;
        const keyLen = this.u32(F + 4);
        if (keyLen > lim.maxCipherKeyLen) return CryptoStatus.ERR;
        const key = this.readKey(0, keyLen);
        return key === null ? CryptoStatus.ERR : buildAead(lim, this.u32(F), key, this.u32(F + 8), this.u32(F + 12), this.u32(F + 16));
      }
      case CryptoCtrlOp.AKCIPHER_CREATE_SESSION: {
        if (!this.readFlf(this.flfSize(CtrlFlfSize.AKCIPHER))) return CryptoStatus.ERR;
        const keyLen = this.u32(F + 8);
        if (keyLen > MAX_AKCIPHER_KEY_LEN || keyLen > this.keys.length) return CryptoStatus.ERR;
        const key = this.readKey(0, keyLen);
        // algo_flf (at +12) is struct virtio_crypto_rsa_session_para for RSA.
        return key === null ? CryptoStatus.ERR : buildRsa(lim, this.u32(F), this.u32(F + 4), key, this.u32(F + 12), this.u32(F + 16));
      }
      default:
        return CryptoStatus.NOTSUPP;
    }
  }

  /** 5.9.7.2.1 destroy: OK, or ERR for an unknown id or one of another service. */
  private destroy(chain: DescriptorChain, service: number): number {
    if (!this.readFlf(this.flfSize(CtrlFlfSize.DESTROY))) return this.answerByte(chain, CryptoStatus.ERR);
    const id = this.sessionId(CryptoCtrlHeader.SIZE);
    const s = id === null ? undefined : this.host.sessions.get(id);
    if (s === undefined || s.service !== service) return this.answerByte(chain, CryptoStatus.ERR);
    this.host.sessions.delete(id!);
    return this.answerByte(chain, CryptoStatus.OK);
  }

  /** The le64 session id at `off` of `fixed`, or null when above 2^53 (never one of ours). */
  private sessionId(off: number): number | null {
    const lo = this.fixedView.getUint32(off + (this.le ? 0 : 4), this.le);
    const hi = this.fixedView.getUint32(off + (this.le ? 4 : 0), this.le);
    return hi >= 0x20_0000 ? null : hi * U32 + lo;
  }

  private answerByte(chain: DescriptorChain, status: number): number {
    this.out[0] = status;
    return this.writer.reset(chain).write(this.out, 0, 1);
  }

  /**
   * struct virtio_crypto_create_session_input: session_id (only with OK), le32 status, padding.
   * A writable part too short for it gets what fits of the status.
   */
  private answerCreate(chain: DescriptorChain, status: number, id: number): number {
    const v = this.outView;
    const w = this.writer.reset(chain);
    v.setUint32(CreateSessionInput.STATUS, status, this.le);
    v.setUint32(CreateSessionInput.STATUS + 4, 0, this.le);
    if (status === CryptoStatus.OK) {
      v.setUint32(this.le ? 0 : 4, id % U32, this.le);
      v.setUint32(this.le ? 4 : 0, Math.floor(id / U32), this.le);
      return w.write(this.out, 0, Math.min(CreateSessionInput.SIZE, chain.writableBytes));
    }
    if (chain.writableBytes < CreateSessionInput.STATUS + 4) return 0;
    // The session_id bytes are left as they are (device/crypto/13).
    w.skip(CreateSessionInput.STATUS);
    return w.write(this.out, CreateSessionInput.STATUS, Math.min(8, chain.writableBytes - CreateSessionInput.STATUS));
  }
}
