/**
 * 5.9 Crypto Device, driver side. Reads the configuration (HW_READY, max_dataqueues, services and
 * the algorithm masks of the advertised services, key and size limits: driver/crypto/1, /3, /4,
 * /6, /7, /8, /9, /11, /12), ignoring undefined algorithm bits (driver/crypto/5), and refuses to
 * send anything while HW_READY is clear (driver/crypto/2). Sessions go on the control queue
 * (header, opcode-specific op_flf, keys, then the writable answer: driver/crypto/13, /14, /15,
 * /16, /17); operations go on the data queues with the session id (driver/crypto/18, /21, /24,
 * /29, /32) and the opcode of their service (driver/crypto/20, /23, /26, /31, /34), or, when the
 * service's STATELESS_MODE was negotiated, stateless with the session parameters in the request
 * and flag 0 (driver/crypto/19, /22, /25, /30, /33).
 *
 * Each request is one readable buffer (header, op_flf, op_vlf) and one writable buffer
 * (destination, hash result, then the status byte). A status other than OK rejects with
 * CryptoStatusError (VERIFY answers KEY_REJECTED with false).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields } from '../../spec/config-layout.js';
import {
  CRYPTO_CONFIG_LAYOUT,
  CRYPTO_FLAG_SESSION_MODE,
  CRYPTO_S_HW_READY,
  CTRLQ_OP_SPEC_HDR_LEGACY,
  CreateSessionInput,
  CryptoCtrlHeader,
  CryptoCtrlOp,
  CryptoDataOp,
  CryptoF,
  CryptoOpHeader,
  CryptoService,
  CryptoStatus,
  CtrlFlfSize,
  DATAQ_OP_SPEC_HDR_LEGACY,
  DataFlfSize,
  StatelessFlfSize,
  SymOpType,
} from '../../spec/crypto.js';
import { DeviceId } from '../../spec/device-id.js';
import { CryptoRequestBytes } from './crypto-request-bytes.js';
import {
  type AeadSessionParams,
  type ChainRegions,
  type ChainSessionParams,
  type CipherSessionParams,
  type CryptoDriverAlgorithms,
  type CryptoDriverConfig,
  CryptoStatusError,
  type CryptoTarget,
  type RsaSessionParams,
} from './crypto-driver-types.js';

const U32 = 0x1_0000_0000;

/** Every device-type feature this driver works with. */
export const CRYPTO_DRIVER_FEATURES =
  CryptoF.REVISION_1 | CryptoF.CIPHER_STATELESS_MODE | CryptoF.HASH_STATELESS_MODE | CryptoF.MAC_STATELESS_MODE | CryptoF.AEAD_STATELESS_MODE | CryptoF.AKCIPHER_STATELESS_MODE;

function bitsOf(mask: number, from: number, limit: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < 32; b++) if ((mask >>> b) & 1 && from + b <= limit) out.push(from + b);
  return out;
}

/**
 * The virtio-crypto driver (5.9): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class CryptoDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<CryptoDriver, undefined> = {
    name: 'virtio-crypto',
    deviceId: DeviceId.CRYPTO,
    wantedFeatures: CRYPTO_DRIVER_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx) => new CryptoDriver(ctx),
  };

  /** The configuration as read at attach (services, algorithms, limits). */
  config: CryptoDriverConfig;
  /** The algorithms the device supports, per service, decoded from the config masks. */
  algorithms: CryptoDriverAlgorithms;
  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly control: RequestQueue;
  private readonly dataQueues: RequestQueue[];
  private nextQueue = 0;

  constructor(ctx: DriverContext) {
    checkDriverContext(CryptoDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.config = this.readConfig();
    this.algorithms = this.decodeAlgorithms();
    // driver/crypto/3: max_dataqueues says how many data queues there are; the control queue follows.
    const n = this.config.maxDataqueues;
    if (n < 1 || ctx.numQueues < n + 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-crypto: max_dataqueues ${n} with ${ctx.numQueues} queues`);
    this.control = new RequestQueue(ctx, n);
    this.dataQueues = Array.from({ length: n }, (_, i) => new RequestQueue(ctx, i));
    ctx.onConfigChange(() => this.refresh());
  }

  /** Rereads the configuration (driver/crypto/1: after a configuration change or reset). */
  refresh(): void {
    this.config = this.readConfig();
    this.algorithms = this.decodeAlgorithms();
  }

  /** VIRTIO_CRYPTO_S_HW_READY is set in the config's status. */
  get hwReady(): boolean {
    return (this.config.status & CRYPTO_S_HW_READY) !== 0;
  }

  detach(): void {
    this.control.detach();
    for (const q of this.dataQueues) q.detach();
  }

  private readConfig(): CryptoDriverConfig {
    const read = (o: number, l: number): Uint8Array => this.ctx.readConfig(o, l);
    return readConfigFields(
      CRYPTO_CONFIG_LAYOUT,
      ['status', 'maxDataqueues', 'cryptoServices', 'cipherAlgoL', 'cipherAlgoH', 'hashAlgo', 'macAlgoL', 'macAlgoH', 'aeadAlgo', 'maxCipherKeyLen', 'maxAuthKeyLen', 'akcipherAlgo', 'maxSize'],
      read,
      this.le,
    );
  }

  /** driver/crypto/5, /6, /11, /12: masks read per advertised service, undefined bits dropped. */
  private decodeAlgorithms(): CryptoDriverAlgorithms {
    const c = this.config;
    const has = (s: number): boolean => ((c.cryptoServices >>> s) & 1) === 1;
    return {
      cipher: has(CryptoService.CIPHER) ? [...bitsOf(c.cipherAlgoL, 0, 14), ...bitsOf(c.cipherAlgoH, 32, 14)].filter((a) => a >= 1) : [],
      hash: has(CryptoService.HASH) ? bitsOf(c.hashAlgo, 0, 12).filter((a) => a >= 1) : [],
      mac: has(CryptoService.MAC) ? [...bitsOf(c.macAlgoL, 0, 54), ...bitsOf(c.macAlgoH, 32, 54)].filter((a) => [1, 2, 3, 4, 5, 6, 25, 26, 27, 28, 41, 42, 49, 50, 53, 54].includes(a)) : [],
      aead: has(CryptoService.AEAD) ? bitsOf(c.aeadAlgo, 0, 3).filter((a) => a >= 1) : [],
      akcipher: has(CryptoService.AKCIPHER) ? bitsOf(c.akcipherAlgo, 0, 2).filter((a) => a >= 1) : [],
    };
  }

  private get rev1(): boolean {
    return (this.ctx.features & CryptoF.REVISION_1) !== 0n;
  }

  private statelessNegotiated(service: number): boolean {
    const bit = [CryptoF.CIPHER_STATELESS_MODE, CryptoF.HASH_STATELESS_MODE, CryptoF.MAC_STATELESS_MODE, CryptoF.AEAD_STATELESS_MODE, CryptoF.AKCIPHER_STATELESS_MODE][service]!;
    return this.rev1 && (this.ctx.features & bit) !== 0n;
  }

  private checkReady(): void {
    if (!this.hwReady) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-crypto: VIRTIO_CRYPTO_S_HW_READY is clear (driver/crypto/2)');
  }

  private checkAlgo(list: readonly number[], algo: number, what: string): void {
    if (!list.includes(algo)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-crypto: ${what} algorithm ${algo} is not advertised`);
  }

  private checkCipherKey(len: number): void {
    if (len > this.config.maxCipherKeyLen) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `cipher key of ${len} bytes; max_cipher_key_len is ${this.config.maxCipherKeyLen} (driver/crypto/8)`);
  }

  private checkAuthKey(len: number): void {
    if (len > this.config.maxAuthKeyLen) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `auth key of ${len} bytes; max_auth_key_len is ${this.config.maxAuthKeyLen} (driver/crypto/9)`);
  }

  private checkSize(len: number): void {
    // driver/crypto/7: max_size bounds the variable-length data of a request (0: not said).
    if (this.config.maxSize > 0 && len > this.config.maxSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `request data of ${len} bytes; max_size is ${this.config.maxSize} (driver/crypto/7)`);
  }

  /**
   * Sends a hand-built request (tests, tools) on queue `index` (a data queue, or the control
   * queue at max_dataqueues): `readable` as the device-readable buffer, `writableLen` bytes
   * prefilled with `fill` as the device-writable one. Resolves with them and the used length.
   */
  submitRaw(
    index: number,
    readable: Uint8Array,
    writableLen: number,
    fill = 0,
  ): Promise<{
    /** Copy of the device-writable buffer after completion (`writableLen` bytes). */
    written: Uint8Array;
    /** The used length the device reported for the chain. */
    used: number;
  }> {
    const q = index === this.config.maxDataqueues ? this.control : this.dataQueues[index];
    if (!q) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no queue ${index}`);
    return this.send(q, readable, writableLen, fill);
  }

  /** Sends one request; resolves with the writable bytes (status last) and the used length. */
  private async send(q: RequestQueue, readable: Uint8Array, writableLen: number, fill = 0): Promise<{ written: Uint8Array; used: number }> {
    this.checkReady();
    const dma = this.ctx.dma;
    const mem = this.ctx.memory;
    const rAddr = dma.alloc(Math.max(1, readable.length), 16);
    const wAddr = dma.alloc(Math.max(1, writableLen), 16);
    try {
      mem.write(rAddr, readable);
      mem.fill(wAddr, writableLen, fill);
      const used = await q.submit([{ addr: rAddr, len: readable.length }], writableLen > 0 ? [{ addr: wAddr, len: writableLen }] : []);
      return { written: mem.slice(wAddr, writableLen).slice(), used };
    } finally {
      dma.free(rAddr);
      dma.free(wAddr);
    }
  }

  // ---- control queue: sessions (5.9.7.2) ----

  private ctrlRequest(opcode: number, algo: number, flfRev1: number): CryptoRequestBytes {
    // driver/crypto/14: header, op_flf (padded to 56 without REVISION_1), then op_vlf.
    const b = new CryptoRequestBytes(this.le, CryptoCtrlHeader.SIZE + (this.rev1 ? flfRev1 : CTRLQ_OP_SPEC_HDR_LEGACY));
    b.u32(CryptoCtrlHeader.OPCODE, opcode);
    b.u32(CryptoCtrlHeader.ALGO, algo);
    // flag and reserved stay zero (driver/crypto/15).
    return b;
  }

  private async createSession(b: CryptoRequestBytes, what: string): Promise<number> {
    const { written } = await this.send(this.control, b.bytes(), CreateSessionInput.SIZE);
    const v = new DataView(written.buffer);
    const status = v.getUint32(CreateSessionInput.STATUS, this.le);
    if (status !== CryptoStatus.OK) throw new CryptoStatusError(status, `create ${what} session`);
    const lo = v.getUint32(this.le ? 0 : 4, this.le);
    const hi = v.getUint32(this.le ? 4 : 0, this.le);
    return hi * U32 + lo;
  }

  private cipherFlf(b: CryptoRequestBytes, at: number, p: CipherSessionParams): void {
    b.u32(at, p.algo);
    b.u32(at + 4, p.key.length);
    b.u32(at + 8, p.encrypt ? 1 : 2);
  }

  /**
   * VIRTIO_CRYPTO_CIPHER_CREATE_SESSION: a symmetric cipher session; resolves with its session id.
   */
  async createCipherSession(p: CipherSessionParams): Promise<number> {
    this.checkAlgo(this.algorithms.cipher, p.algo, 'cipher');
    this.checkCipherKey(p.key.length);
    const b = this.ctrlRequest(CryptoCtrlOp.CIPHER_CREATE_SESSION, p.algo, CtrlFlfSize.SYM);
    const F = CryptoCtrlHeader.SIZE;
    this.cipherFlf(b, F, p);
    b.u32(F + 48, SymOpType.CIPHER);
    b.append(p.key);
    return this.createSession(b, 'cipher');
  }

  /**
   * VIRTIO_CRYPTO_CIPHER_CREATE_SESSION with ALG_CHAIN: a cipher chained with a hash or MAC;
   * resolves with its session id.
   */
  async createChainSession(p: ChainSessionParams): Promise<number> {
    this.checkAlgo(this.algorithms.cipher, p.cipher.algo, 'cipher');
    this.checkCipherKey(p.cipher.key.length);
    const authKey = p.authKey ?? new Uint8Array(0);
    this.checkAuthKey(authKey.length);
    const b = this.ctrlRequest(CryptoCtrlOp.CIPHER_CREATE_SESSION, p.cipher.algo, CtrlFlfSize.SYM);
    const F = CryptoCtrlHeader.SIZE;
    b.u32(F, p.order);
    b.u32(F + 4, p.hashMode);
    this.cipherFlf(b, F + 8, p.cipher);
    b.u32(F + 24, p.hashAlgo);
    b.u32(F + 28, p.resultLen);
    b.u32(F + 32, authKey.length);
    b.u32(F + 40, p.aadLen ?? 0);
    b.u32(F + 48, SymOpType.ALGORITHM_CHAINING);
    b.append(p.cipher.key);
    b.append(authKey);
    return this.createSession(b, 'chain');
  }

  /**
   * VIRTIO_CRYPTO_HASH_CREATE_SESSION: a hash session with `resultLen` bytes of digest; resolves
   * with its session id.
   */
  async createHashSession(algo: number, resultLen: number): Promise<number> {
    this.checkAlgo(this.algorithms.hash, algo, 'hash');
    const b = this.ctrlRequest(CryptoCtrlOp.HASH_CREATE_SESSION, algo, CtrlFlfSize.HASH);
    b.u32(CryptoCtrlHeader.SIZE, algo);
    b.u32(CryptoCtrlHeader.SIZE + 4, resultLen);
    return this.createSession(b, 'hash');
  }

  /**
   * VIRTIO_CRYPTO_MAC_CREATE_SESSION: a MAC session keyed with `key`; resolves with its session id.
   */
  async createMacSession(algo: number, resultLen: number, key: Uint8Array): Promise<number> {
    this.checkAlgo(this.algorithms.mac, algo, 'mac');
    this.checkAuthKey(key.length);
    const b = this.ctrlRequest(CryptoCtrlOp.MAC_CREATE_SESSION, algo, CtrlFlfSize.MAC);
    const F = CryptoCtrlHeader.SIZE;
    b.u32(F, algo);
    b.u32(F + 4, resultLen);
    b.u32(F + 8, key.length);
    b.append(key);
    return this.createSession(b, 'mac');
  }

  /** VIRTIO_CRYPTO_AEAD_CREATE_SESSION: an AEAD session; resolves with its session id. */
  async createAeadSession(p: AeadSessionParams): Promise<number> {
    this.checkAlgo(this.algorithms.aead, p.algo, 'aead');
    this.checkCipherKey(p.key.length);
    const b = this.ctrlRequest(CryptoCtrlOp.AEAD_CREATE_SESSION, p.algo, CtrlFlfSize.AEAD);
    const F = CryptoCtrlHeader.SIZE;
    b.u32(F, p.algo);
    b.u32(F + 4, p.key.length);
    b.u32(F + 8, p.tagLen);
    b.u32(F + 12, p.aadLen ?? 0);
    b.u32(F + 16, p.encrypt ? 1 : 2);
    b.append(p.key);
    return this.createSession(b, 'aead');
  }

  /** VIRTIO_CRYPTO_AKCIPHER_CREATE_SESSION for RSA; resolves with its session id. */
  async createRsaSession(p: RsaSessionParams): Promise<number> {
    this.checkAlgo(this.algorithms.akcipher, 1, 'akcipher');
    const b = this.ctrlRequest(CryptoCtrlOp.AKCIPHER_CREATE_SESSION, 1, CtrlFlfSize.AKCIPHER);
    const F = CryptoCtrlHeader.SIZE;
    b.u32(F, 1);
    b.u32(F + 4, p.keyType);
    b.u32(F + 8, p.key.length);
    b.u32(F + 12, p.padding);
    b.u32(F + 16, p.hash);
    b.append(p.key);
    return this.createSession(b, 'akcipher');
  }

  /** driver/crypto/16, /17: the destroy opcode of the session's service, a session the device gave. */
  async destroySession(service: number, session: number): Promise<void> {
    const op = [CryptoCtrlOp.CIPHER_DESTROY_SESSION, CryptoCtrlOp.HASH_DESTROY_SESSION, CryptoCtrlOp.MAC_DESTROY_SESSION, CryptoCtrlOp.AEAD_DESTROY_SESSION, CryptoCtrlOp.AKCIPHER_DESTROY_SESSION][service];
    if (op === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no service ${service}`);
    const b = this.ctrlRequest(op, 0, CtrlFlfSize.DESTROY);
    b.u64(CryptoCtrlHeader.SIZE, session);
    const { written } = await this.send(this.control, b.bytes(), 1);
    if (written[0] !== CryptoStatus.OK) throw new CryptoStatusError(written[0]!, 'destroy session');
  }

  // ---- data queues (5.9.7.3 to 5.9.7.8) ----

  /** The header and op_flf of a data request; `statelessFlf` is used when the service has stateless mode. */
  private dataRequest(opcode: number, algo: number, target: CryptoTarget, service: number): { b: CryptoRequestBytes; stateless: boolean } {
    const statelessStruct = this.statelessNegotiated(service);
    const sessionMode = 'session' in target;
    if (!sessionMode && !statelessStruct) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `stateless mode of service ${service} was not negotiated`);
    const flf = statelessStruct ? [StatelessFlfSize.SYM, StatelessFlfSize.HASH, StatelessFlfSize.MAC, StatelessFlfSize.AEAD, StatelessFlfSize.AKCIPHER][service]! : this.rev1 ? [DataFlfSize.SYM, DataFlfSize.HASH, DataFlfSize.MAC, DataFlfSize.AEAD, DataFlfSize.AKCIPHER][service]! : DATAQ_OP_SPEC_HDR_LEGACY;
    const b = new CryptoRequestBytes(this.le, CryptoOpHeader.SIZE + flf);
    b.u32(CryptoOpHeader.OPCODE, opcode);
    b.u32(CryptoOpHeader.ALGO, algo);
    if (sessionMode) b.u64(CryptoOpHeader.SESSION_ID, target.session);
    // With REVISION_1: SESSION_MODE for session requests, 0 for stateless ones.
    if (this.rev1 && sessionMode) b.u32(CryptoOpHeader.FLAG, CRYPTO_FLAG_SESSION_MODE);
    return { b, stateless: statelessStruct };
  }

  private async data(b: CryptoRequestBytes, writableLen: number, what: string): Promise<{ out: Uint8Array; used: number }> {
    const q = this.dataQueues[this.nextQueue++ % this.dataQueues.length]!;
    const { written, used } = await this.send(q, b.bytes(), writableLen + 1);
    const status = written[writableLen]!;
    if (status !== CryptoStatus.OK) throw new CryptoStatusError(status, what);
    return { out: written.subarray(0, writableLen), used };
  }

  /** CIPHER: `src` en- or decrypted (`encrypt` must match the session's op, or the stateless one's). */
  async cipher(target: CryptoTarget, encrypt: boolean, iv: Uint8Array, src: Uint8Array, stateless?: CipherSessionParams): Promise<Uint8Array> {
    this.checkSize(iv.length + 2 * src.length);
    const { b, stateless: sl } = this.dataRequest(encrypt ? CryptoDataOp.CIPHER_ENCRYPT : CryptoDataOp.CIPHER_DECRYPT, stateless?.algo ?? 0, target, CryptoService.CIPHER);
    const F = CryptoOpHeader.SIZE;
    if (sl) {
      if (stateless) {
        this.checkCipherKey(stateless.key.length);
        this.cipherFlf(b, F, stateless);
        b.append(stateless.key);
      }
      b.u32(F + 12, iv.length);
      b.u32(F + 16, src.length);
      b.u32(F + 20, src.length);
      b.u32(F + 72, SymOpType.CIPHER);
    } else {
      b.u32(F, iv.length);
      b.u32(F + 4, src.length);
      b.u32(F + 8, src.length);
      b.u32(F + 40, SymOpType.CIPHER);
    }
    b.append(iv);
    b.append(src);
    return (await this.data(b, src.length, 'cipher')).out;
  }

  /**
   * Algorithm chaining (driver/crypto/28): the cipher over `src[cipherStart, +cipherLen)` and
   * the hash or MAC over `aad` and `src[hashStart, +hashLen)` (of the ciphertext or the plaintext,
   * per the session's order). Resolves with dst_data (src_data_len bytes) and hash_result.
   */
  async chain(
    target: CryptoTarget,
    encrypt: boolean,
    iv: Uint8Array,
    src: Uint8Array,
    p: ChainRegions,
    stateless?: ChainSessionParams,
  ): Promise<{
    /** dst_data: the source with the cipher region transformed (src.length bytes). */
    dst: Uint8Array;
    /** hash_result: the digest or MAC (`resultLen` bytes). */
    hash: Uint8Array;
  }> {
    const aad = p.aad ?? new Uint8Array(0);
    this.checkSize(iv.length + 2 * src.length + aad.length + p.resultLen);
    const { b, stateless: sl } = this.dataRequest(encrypt ? CryptoDataOp.CIPHER_ENCRYPT : CryptoDataOp.CIPHER_DECRYPT, stateless?.cipher.algo ?? 0, target, CryptoService.CIPHER);
    const F = CryptoOpHeader.SIZE;
    const o = sl ? F + 32 : F;
    const authKey = stateless?.authKey ?? new Uint8Array(0);
    if (sl && stateless) {
      this.checkCipherKey(stateless.cipher.key.length);
      this.checkAuthKey(authKey.length);
      b.u32(F, stateless.order);
      b.u32(F + 4, aad.length);
      this.cipherFlf(b, F + 8, stateless.cipher);
      b.u32(F + 20, stateless.hashAlgo);
      b.u32(F + 24, authKey.length);
      b.u32(F + 28, stateless.hashMode);
    }
    b.u32(o, iv.length);
    b.u32(o + 4, src.length);
    b.u32(o + 8, src.length);
    b.u32(o + 12, p.cipherStart);
    b.u32(o + 16, p.cipherLen);
    b.u32(o + 20, p.hashStart);
    b.u32(o + 24, p.hashLen);
    b.u32(o + 28, aad.length);
    b.u32(o + 32, p.resultLen);
    b.u32(F + (sl ? 72 : 40), SymOpType.ALGORITHM_CHAINING);
    if (sl) {
      // Stateless order: keys, IV, AAD, source.
      if (stateless) {
        b.append(stateless.cipher.key);
        b.append(authKey);
      }
      b.append(iv);
      b.append(aad);
      b.append(src);
    } else {
      b.append(iv);
      b.append(src);
      b.append(aad);
    }
    const { out } = await this.data(b, src.length + p.resultLen, 'chain');
    return { dst: out.subarray(0, src.length), hash: out.subarray(src.length) };
  }

  /** HASH (`mac` false) or MAC of `src`: `resultLen` bytes. */
  async digest(target: CryptoTarget, mac: boolean, src: Uint8Array, resultLen: number, stateless?: { readonly algo: number; readonly key?: Uint8Array }): Promise<Uint8Array> {
    this.checkSize(src.length + resultLen);
    const service = mac ? CryptoService.MAC : CryptoService.HASH;
    const { b, stateless: sl } = this.dataRequest(mac ? CryptoDataOp.MAC : CryptoDataOp.HASH, stateless?.algo ?? 0, target, service);
    const F = CryptoOpHeader.SIZE;
    const key = stateless?.key ?? new Uint8Array(0);
    let o = 0;
    if (sl) {
      b.u32(F, stateless?.algo ?? 0);
      if (mac) {
        this.checkAuthKey(key.length);
        b.u32(F + 4, stateless ? key.length : 0);
        o = 8;
      } else o = 4;
    }
    b.u32(F + o, src.length);
    b.u32(F + o + 4, resultLen);
    if (sl && mac && stateless) b.append(key);
    b.append(src);
    return (await this.data(b, resultLen, mac ? 'mac' : 'hash')).out;
  }

  /** AEAD: encryption gives ciphertext then tag; decryption takes them and checks the tag. */
  async aead(target: CryptoTarget, encrypt: boolean, iv: Uint8Array, src: Uint8Array, aad: Uint8Array, tagLen: number, stateless?: AeadSessionParams): Promise<Uint8Array> {
    const dstLen = encrypt ? src.length + tagLen : Math.max(0, src.length - tagLen);
    this.checkSize(iv.length + src.length + aad.length + dstLen);
    const { b, stateless: sl } = this.dataRequest(encrypt ? CryptoDataOp.AEAD_ENCRYPT : CryptoDataOp.AEAD_DECRYPT, stateless?.algo ?? 0, target, CryptoService.AEAD);
    const F = CryptoOpHeader.SIZE;
    if (sl) {
      if (stateless) {
        this.checkCipherKey(stateless.key.length);
        this.cipherFlf(b, F, stateless);
      }
      b.u32(F + 12, iv.length);
      b.u32(F + 16, tagLen);
      b.u32(F + 20, aad.length);
      b.u32(F + 24, src.length);
      b.u32(F + 28, dstLen);
      if (stateless) b.append(stateless.key);
    } else {
      b.u32(F, iv.length);
      b.u32(F + 4, aad.length);
      b.u32(F + 8, src.length);
      b.u32(F + 12, dstLen);
      b.u32(F + 16, tagLen);
    }
    b.append(iv);
    b.append(src);
    b.append(aad);
    return (await this.data(b, dstLen, 'aead')).out;
  }

  /**
   * AKCIPHER ENCRYPT, DECRYPT or SIGN: the result (at most `dstLen` bytes; its length is the used
   * length less the status byte, 5.9.7.8).
   */
  async akcipher(target: CryptoTarget, opcode: number, src: Uint8Array, dstLen: number, stateless?: RsaSessionParams): Promise<Uint8Array> {
    this.checkSize(src.length + dstLen);
    const b = this.akcipherRequest(target, opcode, src, dstLen, stateless);
    b.append(src);
    const { out, used } = await this.data(b, dstLen, 'akcipher');
    return out.subarray(0, Math.max(0, Math.min(dstLen, used - 1)));
  }

  /** AKCIPHER VERIFY: true when `signature` signs `digest`, false on KEY_REJECTED. */
  async verify(target: CryptoTarget, signature: Uint8Array, digest: Uint8Array, stateless?: RsaSessionParams): Promise<boolean> {
    this.checkSize(signature.length + digest.length);
    const b = this.akcipherRequest(target, CryptoDataOp.AKCIPHER_VERIFY, signature, digest.length, stateless);
    b.append(signature);
    b.append(digest);
    try {
      await this.data(b, 0, 'verify');
      return true;
    } catch (e) {
      if (e instanceof CryptoStatusError && e.status === CryptoStatus.KEY_REJECTED) return false;
      throw e;
    }
  }

  private akcipherRequest(target: CryptoTarget, opcode: number, src: Uint8Array, dstLen: number, stateless?: RsaSessionParams): CryptoRequestBytes {
    const { b, stateless: sl } = this.dataRequest(opcode, 1, target, CryptoService.AKCIPHER);
    const F = CryptoOpHeader.SIZE;
    let o = 0;
    if (sl) {
      if (stateless) {
        b.u32(F, 1);
        b.u32(F + 4, stateless.keyType);
        b.u32(F + 8, stateless.key.length);
        b.u32(F + 12, stateless.padding);
        b.u32(F + 16, stateless.hash);
        b.append(stateless.key);
      }
      o = 20;
    }
    b.u32(F + o, src.length);
    b.u32(F + o + 4, dstLen);
    return b;
  }
}
