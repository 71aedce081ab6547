/**
 * 5.9 Crypto Device, device side, on node:crypto: `maxDataQueues` data queues then the control
 * queue (5.9.2), all on one QueueServer; sessions in a bounded table (cleared on reset); the
 * configuration of 5.9.5 from the algorithms served (crypto-algorithms.ts).
 *
 * Offered: VIRTIO_CRYPTO_F_REVISION_1 and, unless `stateless: false`, the five STATELESS_MODE
 * bits (each requires REVISION_1: a driver accepting one without it is refused at FEATURES_OK).
 * Requests complete synchronously in the order they are popped (IN_ORDER holds).
 *
 * Over vhost-user the front-end (QEMU's virtio-crypto with cryptodev-vhost-user) keeps the
 * control queue and forwards session creation and closing as CREATE_CRYPTO_SESSION and
 * CLOSE_CRYPTO_SESSION (crypto-vhost-user.ts), into the same session table.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { type ConfigValues, encodeConfig } from '../../spec/config-layout.js';
import { CRYPTO_CONFIG_LAYOUT, CRYPTO_S_HW_READY, CryptoConfig, CryptoF, type CryptoConfigField } from '../../spec/crypto.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import type { VhostUserDevice, VhostUserDeviceHooks } from '../../vhost-user/device-hooks.js';
import { type CryptoAlgorithmSet, type CryptoMasks, SERVED_ALGORITHMS, cryptoMasks } from './crypto-algorithms.js';
import { CryptoControlQueue } from './crypto-controlq.js';
import { CryptoDataQueue } from './crypto-dataq.js';
import { CryptoSessionTable, type SessionLimits } from './crypto-sessions.js';
import { cryptoVhostUserHooks } from './crypto-vhost-user.js';

/** Options of CryptoDevice. */
export interface CryptoDeviceOptions {
  /** Data queues (max_dataqueues, 1..65535: device/crypto/1). Default 1. */
  maxDataQueues?: number;
  /** Maximum size of every queue. Default 128. */
  queueSize?: number;
  /** Sessions open at once at most. Default 256. */
  maxSessions?: number;
  /** max_size: variable-length bytes of one request. Default 1 MiB. */
  maxSize?: number;
  /** Algorithms to advertise and serve (a subset of SERVED_ALGORITHMS). Default: all of them. */
  algorithms?: Partial<CryptoAlgorithmSet>;
  /** Offer the STATELESS_MODE feature bits. Default true. */
  stateless?: boolean;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** max_cipher_key_len: AES-256-XTS takes two 32-byte keys. */
export const CRYPTO_MAX_CIPHER_KEY_LEN = 64;
/** max_auth_key_len (QEMU's vhost-user session message carries at most 512 bytes). */
export const CRYPTO_MAX_AUTH_KEY_LEN = 512;

const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
const STATELESS_FEATURES = CryptoF.CIPHER_STATELESS_MODE | CryptoF.HASH_STATELESS_MODE | CryptoF.MAC_STATELESS_MODE | CryptoF.AEAD_STATELESS_MODE | CryptoF.AKCIPHER_STATELESS_MODE;

function subset(want: readonly number[] | undefined, served: readonly number[], what: string): readonly number[] {
  if (want === undefined) return served;
  for (const a of want) if (!served.includes(a)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} algorithm ${a} is not served`);
  return [...new Set(want)];
}

/**
 * The virtio-crypto device (5.9): cipher, hash, MAC, AEAD and RSA sessions and operations on
 * node:crypto. What it implements and its normative coverage: docs/devices/crypto.md.
 */
export class CryptoDevice implements VhostUserDevice {
  readonly deviceId = DeviceId.CRYPTO;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CryptoConfig.SIZE;
  /** Data queues (max_dataqueues, 5.9.5); the control queue follows them. */
  readonly numDataQueues: number;
  /** max_size: most variable-length bytes one request may carry. */
  readonly maxSize: number;
  /** Algorithms served and key-length limits, checked when a session is built. */
  readonly limits: SessionLimits;
  /** The algorithm masks advertised in the configuration space (5.9.5). */
  readonly masks: CryptoMasks;
  /** Open sessions; cleared on reset. */
  readonly sessions: CryptoSessionTable;
  /** vhost-user hooks: the CREATE_CRYPTO_SESSION / CLOSE_CRYPTO_SESSION requests on {@link CryptoDevice.sessions}. */
  readonly vhostUser: VhostUserDeviceHooks;

  private readonly server: QueueServer;
  private readonly control: CryptoControlQueue;
  private readonly data: CryptoDataQueue;

  constructor(opts: CryptoDeviceOptions = {}) {
    const n = opts.maxDataQueues ?? 1;
    const qs = opts.queueSize ?? 128;
    const sessions = opts.maxSessions ?? 256;
    const maxSize = opts.maxSize ?? 1 << 20;
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxDataQueues ${n} not in 1..1024`);
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 2..32768`);
    if (!Number.isInteger(sessions) || sessions < 1 || sessions > 1 << 20) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxSessions ${sessions} not in 1..${1 << 20}`);
    if (!Number.isInteger(maxSize) || maxSize < 64 || maxSize > 1 << 30) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxSize ${maxSize} not in 64..${1 << 30}`);
    const a = opts.algorithms ?? {};
    const algorithms: CryptoAlgorithmSet = {
      cipher: subset(a.cipher, SERVED_ALGORITHMS.cipher, 'cipher'),
      hash: subset(a.hash, SERVED_ALGORITHMS.hash, 'hash'),
      mac: subset(a.mac, SERVED_ALGORITHMS.mac, 'mac'),
      aead: subset(a.aead, SERVED_ALGORITHMS.aead, 'aead'),
      akcipher: subset(a.akcipher, SERVED_ALGORITHMS.akcipher, 'akcipher'),
    };
    this.numDataQueues = n;
    this.maxSize = maxSize;
    this.limits = { algorithms, maxCipherKeyLen: CRYPTO_MAX_CIPHER_KEY_LEN, maxAuthKeyLen: CRYPTO_MAX_AUTH_KEY_LEN };
    this.masks = cryptoMasks(algorithms);
    this.sessions = new CryptoSessionTable(sessions);
    this.offeredFeatures = TRANSPORT_FEATURES | CryptoF.REVISION_1 | (opts.stateless === false ? 0n : STATELESS_FEATURES);
    this.queueMaxSizes = Array.from({ length: n + 1 }, () => qs);
    this.control = new CryptoControlQueue(this);
    this.data = new CryptoDataQueue(this);
    const controlIndex = n;
    this.server = new QueueServer({
      name: 'virtio-crypto',
      numQueues: n + 1,
      logger: opts.logger,
      handler: (i) => (i === controlIndex ? this.control.serve : i < controlIndex ? this.data.serve : null),
    });
    this.vhostUser = cryptoVhostUserHooks(this);
  }

  /** The control queue's index (5.9.2: after the data queues). */
  get controlQueueIndex(): number {
    return this.numDataQueues;
  }

  // ---- configuration space (5.9.5) ----

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    const m = this.masks;
    const values: ConfigValues<CryptoConfigField> = {
      // device/crypto/2, /3: HW_READY is the only bit, set whenever the device serves requests.
      status: CRYPTO_S_HW_READY,
      maxDataqueues: this.numDataQueues,
      cryptoServices: m.services,
      cipherAlgoL: m.cipherL,
      cipherAlgoH: m.cipherH,
      hashAlgo: m.hash,
      macAlgoL: m.macL,
      macAlgoH: m.macH,
      aeadAlgo: m.aead,
      akcipherAlgo: m.akcipher,
      maxCipherKeyLen: this.limits.algorithms.cipher.length + this.limits.algorithms.aead.length > 0 ? this.limits.maxCipherKeyLen : 0,
      maxAuthKeyLen: this.limits.algorithms.mac.length > 0 ? this.limits.maxAuthKeyLen : 0,
      maxSize: this.maxSize,
    };
    encodeConfig(CRYPTO_CONFIG_LAYOUT, values, 0n, offset, dst, littleEndian);
  }

  /** 5.9.5: every field is read-only; writes are ignored. */
  writeConfig(): void {}

  validateFeatures(accepted: bigint): string | null {
    // 5.9.3.1: every STATELESS_MODE bit requires REVISION_1.
    if ((accepted & STATELESS_FEATURES) !== 0n && (accepted & CryptoF.REVISION_1) === 0n) return 'a VIRTIO_CRYPTO_F_*_STATELESS_MODE bit without VIRTIO_CRYPTO_F_REVISION_1';
    return null;
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.control.configure(ctx.features, ctx.littleEndian);
    this.data.configure(ctx.features, ctx.littleEndian);
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    this.server.reset();
    // Sessions live as long as the driver that made them: a reset ends them.
    this.sessions.clear();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
