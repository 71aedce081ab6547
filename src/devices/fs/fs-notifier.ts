/**
 * 5.11.6.3 the notification queue, device side: FUSE notify messages (an out header with
 * unique 0 and the notify code in `error`, then the message) written into the buffers the
 * driver makes available on virtqueue 1, in the driver's FUSE byte order.
 *
 * The driver may be slower than the device: messages wait in order until a buffer comes
 * ("FUSE_NOTIFY_LOCK messages are delivered when buffers become available again"). Bounded:
 * lock results are at most the lock waits the device allows (the caller's bound: ENOLCK
 * beyond), cache invalidations at most `maxInvalidations`; one more invalidation than that is
 * dropped and counted (the guest then only keeps a stale cache entry until its timeout).
 * A buffer shorter than notify_buf_size (driver/fs/6 broken) is returned unused, and counted.
 */
import type { DeviceContext } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import {
  FS_NOTIFICATION_QUEUE,
  FS_NOTIFY_BUF_SIZE,
  FuseNotifyCode,
  FuseNotifyDeleteOut,
  FuseNotifyInvalEntryOut,
  FuseNotifyInvalInodeOut,
  FuseNotifyLockOut,
  FuseOutHeader,
} from '../../spec/fs.js';

const NAME_MAX = 255;
const U32 = 0x1_0000_0000;

/**
 * The notification queue of virtio-fs, device side (5.11.6.3): queues FUSE notify messages (lock
 * results, cache invalidations) in order, bounded, and writes each into the next buffer the
 * driver makes available.
 */
export class FsNotifier {
  private vq: DeviceQueue | null = null;
  private ctx: DeviceContext | null = null;
  private chain: DescriptorChain | null = null;
  private readonly writer = new ChainCursor(true);
  private readonly pending: { readonly m: Buffer; readonly droppable: boolean }[] = [];
  private invalidations = 0;
  /** Invalidations dropped because `maxInvalidations` were already waiting for buffers. */
  dropped = 0;
  /** Buffers returned unused because they were shorter than notify_buf_size. */
  shortBuffers = 0;
  /** Messages written into the driver's buffers. */
  delivered = 0;

  constructor(
    /** The driver's FUSE byte order (settled by FUSE_INIT). */
    private readonly littleEndian: () => boolean,
    private readonly maxInvalidations = 1024,
  ) {}

  /** Whether the queue is up (VIRTIO_FS_F_NOTIFICATION negotiated and the driver enabled it). */
  get active(): boolean {
    return this.vq !== null;
  }

  /** Whether the driver has buffers available on the queue now (driver/fs/7). */
  get buffersAvailable(): boolean {
    return this.vq?.hasAvailable() ?? false;
  }

  /** Messages waiting for a buffer. */
  get waiting(): number {
    return this.pending.length;
  }

  /** The queue started (QueueServer.queueStarted for queue 1): messages go there from now on. */
  start(ctx: DeviceContext, vq: DeviceQueue): void {
    this.ctx = ctx;
    if (this.vq !== vq) this.chain = vq.createChain();
    this.vq = vq;
    this.flush();
  }

  /** The queue stopped (reset, queue reset): nothing is written until it starts again. */
  stop(): void {
    this.vq = null;
    this.ctx = null;
  }

  /** Device reset: the queue and every waiting message are gone. */
  clear(): void {
    this.stop();
    this.pending.length = 0;
    this.invalidations = 0;
  }

  /** FUSE_NOTIFY_LOCK: the SETLKW of `unique` (its 8 bytes as the driver sent them) ended with `errno` (0: taken). */
  lock(unique: Uint8Array, errno: number): void {
    const m = this.message(FuseNotifyCode.LOCK, FuseNotifyLockOut.SIZE);
    m.set(unique.subarray(0, 8), FuseOutHeader.SIZE + FuseNotifyLockOut.UNIQUE);
    this.view(m).setInt32(FuseOutHeader.SIZE + FuseNotifyLockOut.ERROR, -errno, this.littleEndian());
    this.send(m, false);
  }

  /** FUSE_NOTIFY_INVAL_INODE: the driver drops cached attributes and data of `nodeid` (`len` 0 / -1: all, or from `offset`). */
  invalInode(nodeid: number, offset: number, len: number): boolean {
    const m = this.message(FuseNotifyCode.INVAL_INODE, FuseNotifyInvalInodeOut.SIZE);
    const at = FuseOutHeader.SIZE;
    this.u64(m, at + FuseNotifyInvalInodeOut.INO, nodeid);
    this.i64(m, at + FuseNotifyInvalInodeOut.OFF, offset);
    this.i64(m, at + FuseNotifyInvalInodeOut.LEN, len);
    return this.send(m, true);
  }

  /** FUSE_NOTIFY_INVAL_ENTRY: the driver forgets the cached `name` in directory `parent`. */
  invalEntry(parent: number, name: Uint8Array): boolean {
    const m = this.named(FuseNotifyCode.INVAL_ENTRY, FuseNotifyInvalEntryOut.SIZE, name);
    const at = FuseOutHeader.SIZE;
    this.u64(m, at + FuseNotifyInvalEntryOut.PARENT, parent);
    this.view(m).setUint32(at + FuseNotifyInvalEntryOut.NAMELEN, name.length, this.littleEndian());
    return this.send(m, true);
  }

  /** FUSE_NOTIFY_DELETE: `name` in `parent` (inode `child`) is gone. */
  delete(parent: number, child: number, name: Uint8Array): boolean {
    const m = this.named(FuseNotifyCode.DELETE, FuseNotifyDeleteOut.SIZE, name);
    const at = FuseOutHeader.SIZE;
    this.u64(m, at + FuseNotifyDeleteOut.PARENT, parent);
    this.u64(m, at + FuseNotifyDeleteOut.CHILD, child);
    this.view(m).setUint32(at + FuseNotifyDeleteOut.NAMELEN, name.length, this.littleEndian());
    return this.send(m, true);
  }

  /** Writes waiting messages into available buffers (called again when the driver adds some). */
  flush(): void {
    const vq = this.vq;
    const chain = this.chain;
    if (vq === null || chain === null || this.pending.length === 0) return;
    let pushed = false;
    while (this.pending.length > 0 && vq.pop(chain)) {
      pushed = true;
      if (chain.fault !== null || chain.writableBytes < FS_NOTIFY_BUF_SIZE) {
        // driver/fs/6: buffers of at least notify_buf_size. This one is given back unused.
        this.shortBuffers++;
        vq.push(chain, 0);
        continue;
      }
      const { m, droppable } = this.pending.shift()!;
      if (droppable) this.invalidations--;
      vq.push(chain, this.writer.reset(chain).write(m, 0, m.length));
      this.delivered++;
    }
    if (pushed) this.ctx?.notifyUsed(FS_NOTIFICATION_QUEUE);
  }

  private send(m: Buffer, droppable: boolean): boolean {
    if (droppable) {
      if (this.invalidations >= this.maxInvalidations) {
        this.dropped++;
        return false;
      }
      this.invalidations++;
    }
    this.pending.push({ m, droppable });
    this.flush();
    return true;
  }

  private message(code: number, bodyBytes: number): Buffer {
    const m = Buffer.alloc(FuseOutHeader.SIZE + bodyBytes);
    const v = this.view(m);
    const le = this.littleEndian();
    v.setUint32(FuseOutHeader.LEN, m.length, le);
    v.setInt32(FuseOutHeader.ERROR, code, le);
    // unique stays 0: a notification, not a reply.
    return m;
  }

  private named(code: number, fixed: number, name: Uint8Array): Buffer {
    if (name.length === 0 || name.length > NAME_MAX) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `notify name of ${name.length} bytes (1..${NAME_MAX})`);
    const m = this.message(code, fixed + name.length + 1);
    m.set(name, FuseOutHeader.SIZE + fixed);
    return m;
  }

  private view(m: Uint8Array): DataView {
    return new DataView(m.buffer, m.byteOffset, m.length);
  }

  private u64(m: Uint8Array, at: number, v: number): void {
    const le = this.littleEndian();
    const d = this.view(m);
    d.setUint32(le ? at : at + 4, v % U32 >>> 0, le);
    d.setUint32(le ? at + 4 : at, Math.floor(v / U32) >>> 0, le);
  }

  /** A signed 64-bit value (-1 allowed) in two halves. */
  private i64(m: Uint8Array, at: number, v: number): void {
    if (v >= 0) return this.u64(m, at, v);
    const le = this.littleEndian();
    const d = this.view(m);
    const mag = -v;
    const lo = (U32 - (mag % U32)) % U32;
    const hi = U32 - 1 - Math.floor((mag - 1) / U32);
    d.setUint32(le ? at : at + 4, lo >>> 0, le);
    d.setUint32(le ? at + 4 : at, hi >>> 0, le);
  }
}
