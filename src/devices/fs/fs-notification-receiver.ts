/**
 * 5.11.6.3 the notification queue, driver side (FsDriver with VIRTIO_FS_F_NOTIFICATION): keeps
 * buffers of notify_buf_size bytes available on virtqueue 1 (driver/fs/6), gives each one back
 * as soon as its message is read (driver/fs/7), and decodes the FUSE notify messages: LOCK ends
 * the SETLKW waiting for it (its reply said "wait", +1), the cache invalidations go to the
 * listener. Messages are checked against their buffer: a length that does not fit, a notify
 * code it does not know, or a name without its NUL is counted and ignored.
 */
import type { RequestQueue } from '../../driver/request-queue.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  FuseNotifyCode,
  FuseNotifyDeleteOut,
  FuseNotifyInvalEntryOut,
  FuseNotifyInvalInodeOut,
  FuseNotifyLockOut,
  FuseOutHeader,
} from '../../spec/fs.js';
import { exchangeBytes } from '../../vhost-user/peers/byte-exchange.js';

/** A cache notification from the device. */
export type FsNotification =
  | {
      /** FUSE_NOTIFY_INVAL_INODE: drop cached attributes and data of an inode. */
      readonly code: typeof FuseNotifyCode.INVAL_INODE;
      /** The inode whose cache is stale. */
      readonly nodeid: bigint;
      /** First byte of the stale data; negative: only the attributes are stale. */
      readonly offset: bigint;
      /** Bytes of stale data from `offset`; 0 or less: to the end of the file. */
      readonly len: bigint;
    }
  | {
      /** FUSE_NOTIFY_INVAL_ENTRY: drop a cached directory entry. */
      readonly code: typeof FuseNotifyCode.INVAL_ENTRY;
      /** Node id of the directory holding the entry. */
      readonly parent: bigint;
      /** The entry's name in `parent`. */
      readonly name: string;
    }
  | {
      /** FUSE_NOTIFY_DELETE: an entry was removed on the host. */
      readonly code: typeof FuseNotifyCode.DELETE;
      /** Node id of the directory that held the entry. */
      readonly parent: bigint;
      /** Node id of the removed inode. */
      readonly child: bigint;
      /** The removed entry's name in `parent`. */
      readonly name: string;
    };

/** How a SETLKW waiting for FUSE_NOTIFY_LOCK ends: 0 (taken) or the errno. */
type LockEnd = (errno: number) => void;

/** Results that came before the SETLKW's own "wait" reply was read (the queues are not ordered). */
const EARLY_MAX = 256;
const dec = new TextDecoder();

/**
 * The notification queue of virtio-fs, driver side (5.11.6.3): keeps buffers posted, decodes
 * FUSE notify messages, ends waiting SETLKW requests and passes cache invalidations to a listener.
 */
export class FsNotificationReceiver {
  private readonly waits = new Map<bigint, LockEnd>();
  private readonly early = new Map<bigint, number>();
  private listener: ((n: FsNotification) => void) | null = null;
  private stopped = false;
  /** Messages received, and those ignored as malformed. */
  received = 0;
  /** Messages ignored: a bad length or unique, an unknown notify code, or a name without its NUL. */
  malformed = 0;

  constructor(
    private readonly queue: RequestQueue,
    /** notify_buf_size from the configuration: every buffer is at least that (driver/fs/6). */
    readonly bufferSize: number,
    private readonly le: boolean,
    buffers: number,
  ) {
    for (let i = 0; i < buffers; i++) this.post();
  }

  /** The listener of cache notifications (INVAL_INODE, INVAL_ENTRY, DELETE). */
  onNotification(listener: ((n: FsNotification) => void) | null): void {
    this.listener = listener;
  }

  /** The SETLKW `unique` was answered "wait": resolves (or rejects with the errno) at its FUSE_NOTIFY_LOCK. */
  waitLock(unique: bigint, fail: (errno: number) => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const end: LockEnd = (errno) => (errno === 0 ? resolve() : reject(fail(errno)));
      const known = this.early.get(unique);
      if (known !== undefined) {
        this.early.delete(unique);
        end(known);
      } else this.waits.set(unique, end);
    });
  }

  /** Posts no more buffers and fails every waiting SETLKW with EINTR (device reset or detach). */
  stop(): void {
    this.stopped = true;
    for (const end of this.waits.values()) end(4 /* EINTR: the device is gone */);
    this.waits.clear();
  }

  private post(): void {
    if (this.stopped) return;
    exchangeBytes(this.queue, new Uint8Array(0), this.bufferSize).then(
      (c) => {
        // The buffer goes back first (driver/fs/7: always one available), then the message is read.
        this.post();
        this.read(c.data);
      },
      () => {
        // The queue stopped (reset, detach): no more buffers.
      },
    );
  }

  private read(m: Uint8Array): void {
    const v = new DataView(m.buffer, m.byteOffset, m.length);
    const le = this.le;
    const H = FuseOutHeader.SIZE;
    if (m.length < H || v.getUint32(FuseOutHeader.LEN, le) > m.length || v.getUint32(FuseOutHeader.LEN, le) < H || v.getBigUint64(FuseOutHeader.UNIQUE, le) !== 0n) {
      this.malformed++;
      return;
    }
    const len = v.getUint32(FuseOutHeader.LEN, le);
    const code = v.getInt32(FuseOutHeader.ERROR, le);
    const body = len - H;
    this.received++;
    const name = (at: number, n: number): string | null => (n > 0 && n <= 255 && at + n < len && m[at + n] === 0 ? dec.decode(m.subarray(at, at + n)) : null);
    switch (code) {
      case FuseNotifyCode.LOCK: {
        if (body < FuseNotifyLockOut.SIZE) break;
        const unique = v.getBigUint64(H + FuseNotifyLockOut.UNIQUE, le);
        const errno = -v.getInt32(H + FuseNotifyLockOut.ERROR, le);
        const end = this.waits.get(unique);
        if (end !== undefined) {
          this.waits.delete(unique);
          end(errno);
        } else if (this.early.size < EARLY_MAX) this.early.set(unique, errno);
        return;
      }
      case FuseNotifyCode.INVAL_INODE:
        if (body < FuseNotifyInvalInodeOut.SIZE) break;
        this.listener?.({
          code,
          nodeid: v.getBigUint64(H + FuseNotifyInvalInodeOut.INO, le),
          offset: v.getBigInt64(H + FuseNotifyInvalInodeOut.OFF, le),
          len: v.getBigInt64(H + FuseNotifyInvalInodeOut.LEN, le),
        });
        return;
      case FuseNotifyCode.INVAL_ENTRY: {
        if (body < FuseNotifyInvalEntryOut.SIZE) break;
        const n = name(H + FuseNotifyInvalEntryOut.SIZE, v.getUint32(H + FuseNotifyInvalEntryOut.NAMELEN, le));
        if (n === null) break;
        this.listener?.({ code, parent: v.getBigUint64(H + FuseNotifyInvalEntryOut.PARENT, le), name: n });
        return;
      }
      case FuseNotifyCode.DELETE: {
        if (body < FuseNotifyDeleteOut.SIZE) break;
        const n = name(H + FuseNotifyDeleteOut.SIZE, v.getUint32(H + FuseNotifyDeleteOut.NAMELEN, le));
        if (n === null) break;
        this.listener?.({ code, parent: v.getBigUint64(H + FuseNotifyDeleteOut.PARENT, le), child: v.getBigUint64(H + FuseNotifyDeleteOut.CHILD, le), name: n });
        return;
      }
      default:
        break;
    }
    this.received--;
    this.malformed++;
  }
}

/** notify_buf_size read from the configuration must hold at least the header and a lock message. */
export function checkNotifyBufSize(n: number): number {
  if (!Number.isInteger(n) || n < FuseOutHeader.SIZE + FuseNotifyLockOut.SIZE || n > 1 << 20) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `notify_buf_size ${n} cannot hold a notification`);
  }
  return n;
}
