/**
 * The 9P transport over virtio (device id 9), device side: one request queue; each buffer a
 * T-message in its device-readable part and room for the R-message in its device-writable part
 * (Linux net/9p/trans_virtio.c, QEMU hw/9pfs/virtio-9p-device.c). Requests are served
 * synchronously, in pop order, by one P9Server over one HostFs: IN_ORDER holds.
 *
 * Guest input is untrusted: the message is copied from the chain into a bounded buffer (msize
 * bytes; a longer message fails its size check with Rlerror), the reply is built in a bounded
 * buffer and copied into the writable part, never past it. A chain with an unmapped buffer, or
 * without room for an 11-byte Rlerror, is returned with nothing written.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { P9_CONFIG_LAYOUT, P9_F_MOUNT_TAG, P9_REQUEST_QUEUE, P9_TAG_MAX_BYTES, P9Config } from '../../spec/9p.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { HostFs, type HostFsLimits, type HostFsOptions } from '../fs/host-fs.js';
import { P9Server, type P9ServerOptions } from './p9-server.js';

/** Options of P9Device. */
export interface P9DeviceOptions extends HostFsLimits, P9ServerOptions, Pick<HostFsOptions, 'xattrPrefix' | 'uidMap' | 'gidMap'> {
  /** The host directory shared with the guest. */
  readonly sharedDir: string;
  /** The mount tag (1..32 bytes of UTF-8, QEMU's limit). */
  readonly tag: string;
  /** Maximum queue size. Default 128 (QEMU's and Linux's ring size for 9p). */
  readonly queueSize?: number;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/**
 * The 9P transport device (device id 9): a host folder served as 9P2000.L (the P9Server on the
 * HostFs layer). What it implements and its normative coverage: docs/devices/9p.md.
 */
export class P9Device implements VirtioDevice {
  readonly deviceId = DeviceId.NINEP;
  /** MOUNT_TAG: the guest finds the device by its tag. Requests complete in pop order: IN_ORDER. */
  readonly offeredFeatures = P9_F_MOUNT_TAG | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize: number;

  /**
   * The host layer: the shared folder, reached only through `*at` calls relative to directories it
   * holds open.
   */
  readonly host: HostFs;
  /** The 9P2000.L server that decodes requests and answers them from `host`. */
  readonly server9p: P9Server;
  private readonly tag: Uint8Array;
  private readonly queues: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly inBuf: Buffer;
  private readonly outBuf: Buffer;
  /** Requests returned without a reply because the chain could not hold one (for tests and logs). */
  malformed = 0;

  constructor(opts: P9DeviceOptions) {
    const tag = Buffer.from(opts.tag, 'utf8');
    if (tag.length === 0 || tag.length > P9_TAG_MAX_BYTES) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `tag "${opts.tag}" must be 1..${P9_TAG_MAX_BYTES} bytes of UTF-8`);
    }
    this.tag = tag;
    this.configSize = P9Config.TAG + tag.length;
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 2..32768`);
    this.queueMaxSizes = [qs];
    this.host = new HostFs(opts.sharedDir, opts);
    try {
      this.server9p = new P9Server(this.host, opts);
    } catch (e) {
      this.host.close();
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, (e as Error).message);
    }
    this.inBuf = Buffer.alloc(this.server9p.maxMsize);
    this.outBuf = Buffer.alloc(this.server9p.maxMsize);
    const serve = (req: QueueRequest): number => this.serve(req);
    this.queues = new QueueServer({ name: 'virtio-9p', numQueues: 1, logger: opts.logger, handler: (i) => (i === P9_REQUEST_QUEUE ? serve : null) });
  }

  /** One T-message: copied in (bounded), served, the R-message copied out; returns bytes written. */
  private serve({ chain }: QueueRequest): number {
    if (chain.fault !== null) {
      this.malformed++;
      return 0;
    }
    const inLen = chain.readableBytes;
    this.reader.reset(chain).read(this.inBuf, 0, Math.min(inLen, this.inBuf.length));
    const replyLen = this.server9p.handle(this.inBuf, inLen, this.outBuf, chain.writableBytes);
    if (replyLen === 0) {
      this.malformed++;
      return 0;
    }
    return this.writer.reset(chain).write(this.outBuf, 0, replyLen);
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    encodeConfig(P9_CONFIG_LAYOUT, { tagLen: this.tag.length }, features, offset, dst, littleEndian);
    // The tag is bytes after tag_len, not NUL-terminated.
    for (let i = 0; i < dst.length; i++) {
      const at = offset + i - P9Config.TAG;
      if (at >= 0) dst[i] = at < this.tag.length ? this.tag[at]! : 0;
    }
  }

  /** The configuration is read-only: a driver write changes nothing. */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.queues.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.queues.onQueueNotify(index);
  }

  /** Device reset: every fid, handle and lock dropped; the driver must Tversion again. */
  reset(): void {
    this.queues.reset();
    this.server9p.reset();
  }

  resetQueue(index: number): void {
    this.queues.resetQueue(index);
  }

  /** Releases the host descriptors (the root's too): for a device that will not be used again. */
  close(): void {
    this.queues.reset();
    this.server9p.reset();
    this.host.close();
  }
}
