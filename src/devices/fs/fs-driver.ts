/**
 * 5.11 File System Device, driver side: a FUSE client over the request queues, FORGET,
 * BATCH_FORGET and INTERRUPT over hiprio (driver/fs/3, and nothing else there: driver/fs/4).
 * Requests are spread over up to num_request_queues request queues (driver/fs/2), and the
 * answers of hiprio and the request queues are awaited independently (driver/fs/5). The
 * configuration is only read (driver/fs/1); no DAX window is used (driver/fs/8: READ and WRITE).
 * With VIRTIO_FS_F_NOTIFICATION (taken when the device offers it) queue 1 carries notifications
 * (fs-notification-receiver.ts) and the request queues start at 2; a SETLKW answered "wait"
 * then completes at its FUSE_NOTIFY_LOCK.
 *
 * FUSE is in the driver's byte order: little-endian unless `bigEndian` (to speak to a device as a
 * big-endian guest would). Grown from the minimal FsClient of the vhost-user peers.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  FS_F_NOTIFICATION,
  FS_HIPRIO_QUEUE,
  FS_NOTIFICATION_QUEUE,
  FS_REQUEST_QUEUE,
  FS_REQUEST_QUEUE_WITH_NOTIFICATION,
  FUSE_LOCK_WAIT_NOTIFY,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FuseAttr,
  FuseAttrNsec,
  FuseAttrOut,
  FuseDirent,
  FuseDirentplus,
  FuseEntryOut,
  FuseInHeader,
  FuseInitFlag,
  FuseInitIn,
  FuseInitOut,
  FuseOpcode,
  FuseOutHeader,
  FsConfig,
} from '../../spec/fs.js';
import { exchangeBytes } from '../../vhost-user/peers/byte-exchange.js';
import { FsNotificationReceiver, checkNotifyBufSize } from './fs-notification-receiver.js';
import { FsRequestBuilder } from './fs-request-builder.js';
import { type FsAttr, type FsDirEntry, type FsDriverOptions, type FsEntry, type FsLock, FuseReplyError } from './fs-driver-types.js';

const dec = new TextDecoder();

/**
 * The virtio-fs driver (5.11): a FUSE client over the device's request queues (FUSE_INIT, then one
 * method per FUSE operation), as the Linux virtiofs driver speaks it; in little- or big-endian
 * FUSE.
 */
export class FsDriver implements DeviceDriver {
  /** The DeviceDriver contract: virtio-fs devices; VIRTIO_FS_F_NOTIFICATION taken when offered. */
  static readonly type: DeviceDriverType<FsDriver, FsDriverOptions> = {
    name: 'virtio-fs',
    deviceId: DeviceId.FS,
    wantedFeatures: FS_F_NOTIFICATION,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new FsDriver(ctx, opts),
  };

  private readonly hiprio: RequestQueue;
  private readonly queues: RequestQueue[] = [];
  /** The notification queue's reader (null: VIRTIO_FS_F_NOTIFICATION not negotiated). */
  readonly notifications: FsNotificationReceiver | null = null;
  private next = 0;
  private unique = 1n;
  private readonly le: boolean;
  private readonly uid: number;
  private readonly gid: number;
  /** Negotiated FUSE minor version, max_write and INIT flags (after init). */
  minor = 0;
  /** max_write from FUSE_INIT's reply: the largest WRITE the device takes. */
  maxWrite = 0;
  /** The flags of FUSE_INIT's reply (FuseInitFlag): what the device agreed to. */
  initFlags = 0;

  constructor(
    private readonly ctx: DriverContext,
    opts: FsDriverOptions = {},
  ) {
    checkDriverContext(FsDriver.type, ctx);
    const notify = (ctx.features & FS_F_NOTIFICATION) !== 0n;
    const first = notify ? FS_REQUEST_QUEUE_WITH_NOTIFICATION : FS_REQUEST_QUEUE;
    if (ctx.numQueues <= first) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-fs needs the hiprio and one request queue');
    const offered = ctx.numQueues - first;
    const n = opts.requestQueues ?? offered;
    if (!Number.isInteger(n) || n < 1 || n > offered) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `requestQueues ${n} not in 1..${offered}`);
    this.hiprio = new RequestQueue(ctx, FS_HIPRIO_QUEUE);
    for (let i = 0; i < n; i++) this.queues.push(new RequestQueue(ctx, first + i));
    this.le = !(opts.bigEndian ?? false);
    if (notify) {
      const q = new RequestQueue(ctx, FS_NOTIFICATION_QUEUE);
      const size = checkNotifyBufSize(new DataView(ctx.readConfig(FsConfig.NOTIFY_BUF_SIZE, 4).buffer).getUint32(0, ctx.littleEndian));
      this.notifications = new FsNotificationReceiver(q, size, this.le, Math.min(8, q.slotCapacity));
    }
    this.uid = opts.uid ?? process.getuid?.() ?? 0;
    this.gid = opts.gid ?? process.getgid?.() ?? 0;
  }

  /** The mount tag from the configuration (5.11.4: NUL-padded, not terminated at 36 bytes). Read only (driver/fs/1). */
  tag(): string {
    const b = this.ctx.readConfig(FsConfig.TAG, FsConfig.TAG_BYTES);
    const end = b.indexOf(0);
    return dec.decode(b.subarray(0, end < 0 ? b.length : end));
  }

  /** num_request_queues from the configuration. */
  numRequestQueues(): number {
    return new DataView(this.ctx.readConfig(FsConfig.NUM_REQUEST_QUEUES, 4).buffer).getUint32(0, this.ctx.littleEndian);
  }

  detach(): void {
    this.notifications?.stop();
    this.hiprio.detach();
    for (const q of this.queues) q.detach();
  }

  /** A request builder in this driver's byte order. */
  private b(size = 64): FsRequestBuilder {
    return new FsRequestBuilder(this.le, size);
  }

  private header(opcode: number, nodeid: bigint, argsLen: number): { msg: Uint8Array; v: DataView; unique: bigint } {
    const msg = new Uint8Array(FuseInHeader.SIZE + argsLen);
    const v = new DataView(msg.buffer);
    const unique = this.unique++;
    const le = this.le;
    v.setUint32(FuseInHeader.LEN, msg.length, le);
    v.setUint32(FuseInHeader.OPCODE, opcode, le);
    v.setBigUint64(FuseInHeader.UNIQUE, unique, le);
    v.setBigUint64(FuseInHeader.NODEID, nodeid, le);
    v.setUint32(FuseInHeader.UID, this.uid, le);
    v.setUint32(FuseInHeader.GID, this.gid, le);
    v.setUint32(FuseInHeader.PID, process.pid, le);
    return { msg, v, unique };
  }

  /** One FUSE request on a request queue (round robin): the reply's result bytes. */
  async call(opcode: number, nodeid: bigint, args: Uint8Array, outLen: number): Promise<Uint8Array> {
    const r = await this.exchange(opcode, nodeid, args, outLen);
    if (r.error !== 0) throw new FuseReplyError(opcode, -r.error);
    return r.data;
  }

  /** One request; its out header's error (0, a negated errno, or SETLKW's +1 "wait") and result bytes. */
  private async exchange(opcode: number, nodeid: bigint, args: Uint8Array, outLen: number): Promise<{ error: number; data: Uint8Array; unique: bigint }> {
    const { msg, unique } = this.header(opcode, nodeid, args.length);
    msg.set(args, FuseInHeader.SIZE);
    const q = this.queues[this.next]!;
    this.next = (this.next + 1) % this.queues.length;
    const c = await exchangeBytes(q, msg, FuseOutHeader.SIZE + outLen);
    if (c.data.length < FuseOutHeader.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode}: short reply (${c.data.length} bytes)`);
    const o = new DataView(c.data.buffer, c.data.byteOffset, c.data.length);
    const len = o.getUint32(FuseOutHeader.LEN, this.le);
    const error = o.getInt32(FuseOutHeader.ERROR, this.le);
    if (o.getBigUint64(FuseOutHeader.UNIQUE, this.le) !== unique) throw new VirtioError(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode}: reply to another request`);
    if (error !== 0) return { error, data: new Uint8Array(0), unique };
    if (len < FuseOutHeader.SIZE || len > c.data.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode}: reply length ${len} of ${c.data.length}`);
    return { error, data: c.data.subarray(FuseOutHeader.SIZE, len), unique };
  }

  /** A request without reply on hiprio (FORGET, BATCH_FORGET, INTERRUPT: driver/fs/3). */
  private async hiprioCall(opcode: number, nodeid: bigint, args: Uint8Array): Promise<bigint> {
    const { msg, unique } = this.header(opcode, nodeid, args.length);
    msg.set(args, FuseInHeader.SIZE);
    await exchangeBytes(this.hiprio, msg, 0);
    return unique;
  }

  private view(r: Uint8Array): DataView {
    return new DataView(r.buffer, r.byteOffset, r.length);
  }

  private need(r: Uint8Array, size: number, what: string): DataView {
    if (r.length < size) throw new VirtioError(ErrorCode.REQUEST_FAILED, `${what}: short reply (${r.length} < ${size})`);
    return this.view(r);
  }

  private u64(v: DataView, at: number): number {
    return Number(v.getBigUint64(at, this.le));
  }

  private attr(v: DataView, at: number): FsAttr {
    const le = this.le;
    return {
      ino: this.u64(v, at + FuseAttr.INO),
      size: this.u64(v, at + FuseAttr.SIZE),
      blocks: this.u64(v, at + FuseAttr.BLOCKS),
      atime: Number(v.getBigInt64(at + FuseAttr.ATIME, le)),
      mtime: Number(v.getBigInt64(at + FuseAttr.MTIME, le)),
      ctime: Number(v.getBigInt64(at + FuseAttr.CTIME, le)),
      atimeNsec: v.getUint32(at + FuseAttrNsec.ATIME, le),
      mtimeNsec: v.getUint32(at + FuseAttrNsec.MTIME, le),
      ctimeNsec: v.getUint32(at + FuseAttrNsec.CTIME, le),
      mode: v.getUint32(at + FuseAttr.MODE, le),
      nlink: v.getUint32(at + FuseAttr.NLINK, le),
      uid: v.getUint32(at + FuseAttr.UID, le),
      gid: v.getUint32(at + FuseAttr.GID, le),
      rdev: v.getUint32(at + FuseAttr.RDEV, le),
    };
  }

  private entry(r: Uint8Array, at = 0, what = 'entry'): FsEntry {
    const v = this.need(r, at + FuseEntryOut.SIZE, what);
    return {
      nodeid: v.getBigUint64(at + FuseEntryOut.NODEID, this.le),
      entryValid: this.u64(v, at + 16),
      attrValid: this.u64(v, at + 24),
      attr: this.attr(v, at + FuseEntryOut.ATTR),
    };
  }

  // --- session -----------------------------------------------------------------------------

  /** FUSE_INIT: must come first. `flags`: the INIT flags this driver asks for (default: none). */
  async init(flags = 0): Promise<void> {
    const a = this.b(FuseInitIn.SIZE).u32(FUSE_KERNEL_VERSION).u32(FUSE_KERNEL_MINOR_VERSION).u32(128 << 10).u32(flags).done();
    const r = await this.call(FuseOpcode.INIT, 0n, a, FuseInitOut.SIZE);
    const v = this.need(r, 24, 'INIT');
    if (v.getUint32(FuseInitOut.MAJOR, this.le) !== FUSE_KERNEL_VERSION) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'FUSE_INIT: another major version');
    this.minor = v.getUint32(FuseInitOut.MINOR, this.le);
    this.initFlags = v.getUint32(FuseInitOut.FLAGS, this.le);
    this.maxWrite = v.getUint32(FuseInitOut.MAX_WRITE, this.le);
  }

  /** FUSE_DESTROY: ends the FUSE session (before unmounting). */
  async destroy(): Promise<void> {
    await this.call(FuseOpcode.DESTROY, 0n, new Uint8Array(0), 0);
  }

  // --- names -------------------------------------------------------------------------------

  /**
   * FUSE_LOOKUP of `name` in directory `parent`: its node id and attributes (one lookup reference
   * to FORGET later).
   */
  async lookup(parent: bigint, name: string): Promise<FsEntry> {
    return this.entry(await this.call(FuseOpcode.LOOKUP, parent, this.b().name(name).done(), FuseEntryOut.SIZE), 0, 'LOOKUP');
  }

  /** FORGET over hiprio (no reply: the device returns the buffer unwritten). */
  async forget(nodeid: bigint, nlookup: number): Promise<void> {
    await this.hiprioCall(FuseOpcode.FORGET, nodeid, this.b(8).u64(nlookup).done());
  }

  /** FUSE_BATCH_FORGET: drops lookup references of several nodes in one request. */
  async batchForget(items: readonly { nodeid: bigint; nlookup: number }[]): Promise<void> {
    const b = this.b(8 + 16 * items.length).u32(items.length).u32(0);
    for (const it of items) b.u64(it.nodeid).u64(it.nlookup);
    await this.hiprioCall(FuseOpcode.BATCH_FORGET, 0n, b.done());
  }

  /** INTERRUPT of the request `unique` (over hiprio, driver/fs/3). */
  async interrupt(unique: bigint): Promise<void> {
    await this.hiprioCall(FuseOpcode.INTERRUPT, 0n, this.b(8).u64(unique).done());
  }

  /** The unique id the next request will carry (to INTERRUPT it later). */
  get nextUnique(): bigint {
    return this.unique;
  }

  /** FUSE_GETATTR: the attributes of `nodeid` (through open file `fh` when given). */
  async getattr(nodeid: bigint, fh?: bigint): Promise<FsAttr> {
    const a = this.b(16).u32(fh === undefined ? 0 : 1).u32(0).u64(fh ?? 0n).done();
    return this.attr(this.need(await this.call(FuseOpcode.GETATTR, nodeid, a, FuseAttrOut.SIZE), FuseAttrOut.SIZE, 'GETATTR'), FuseAttrOut.ATTR);
  }

  /** SETATTR: the fields given change (times as [seconds, nanoseconds]; 'now' for the device's clock). */
  async setattr(nodeid: bigint, s: { mode?: number; uid?: number; gid?: number; size?: number; atime?: [number, number] | 'now'; mtime?: [number, number] | 'now'; fh?: bigint }): Promise<FsAttr> {
    let valid = 0;
    if (s.mode !== undefined) valid |= 1;
    if (s.uid !== undefined) valid |= 2;
    if (s.gid !== undefined) valid |= 4;
    if (s.size !== undefined) valid |= 8;
    if (s.atime !== undefined) valid |= s.atime === 'now' ? 16 | 128 : 16;
    if (s.mtime !== undefined) valid |= s.mtime === 'now' ? 32 | 256 : 32;
    if (s.fh !== undefined) valid |= 64;
    const at = Array.isArray(s.atime) ? s.atime : [0, 0];
    const mt = Array.isArray(s.mtime) ? s.mtime : [0, 0];
    const a = this.b(88).u32(valid).u32(0).u64(s.fh ?? 0n).u64(s.size ?? 0).u64(0).u64(at[0]!).u64(mt[0]!).u64(0).u32(at[1]!).u32(mt[1]!).u32(0).u32(s.mode ?? 0).u32(0).u32(s.uid ?? 0).u32(s.gid ?? 0).u32(0).done();
    return this.attr(this.need(await this.call(FuseOpcode.SETATTR, nodeid, a, FuseAttrOut.SIZE), FuseAttrOut.SIZE, 'SETATTR'), FuseAttrOut.ATTR);
  }

  /** FUSE_READLINK: the target of symlink `nodeid`. */
  async readlink(nodeid: bigint): Promise<string> {
    return dec.decode(await this.call(FuseOpcode.READLINK, nodeid, new Uint8Array(0), 4096));
  }

  /** FUSE_SYMLINK: creates symlink `name` in `parent` pointing at `target`. */
  async symlink(parent: bigint, name: string, target: string): Promise<FsEntry> {
    return this.entry(await this.call(FuseOpcode.SYMLINK, parent, this.b().name(name).name(target).done(), FuseEntryOut.SIZE), 0, 'SYMLINK');
  }

  /**
   * FUSE_MKNOD: creates node `name` in `parent` (`mode` with its file type, `rdev` for devices,
   * masked by `umask`).
   */
  async mknod(parent: bigint, name: string, mode: number, rdev = 0, umask = 0): Promise<FsEntry> {
    return this.entry(await this.call(FuseOpcode.MKNOD, parent, this.b().u32(mode).u32(rdev).u32(umask).u32(0).name(name).done(), FuseEntryOut.SIZE), 0, 'MKNOD');
  }

  /** FUSE_MKDIR: creates directory `name` in `parent` with `mode` masked by `umask`. */
  async mkdir(parent: bigint, name: string, mode: number, umask = 0): Promise<FsEntry> {
    return this.entry(await this.call(FuseOpcode.MKDIR, parent, this.b().u32(mode).u32(umask).name(name).done(), FuseEntryOut.SIZE), 0, 'MKDIR');
  }

  /** FUSE_UNLINK: removes `name` from `parent`. */
  async unlink(parent: bigint, name: string): Promise<void> {
    await this.call(FuseOpcode.UNLINK, parent, this.b().name(name).done(), 0);
  }

  /** FUSE_RMDIR: removes empty directory `name` from `parent`. */
  async rmdir(parent: bigint, name: string): Promise<void> {
    await this.call(FuseOpcode.RMDIR, parent, this.b().name(name).done(), 0);
  }

  /**
   * FUSE_RENAME2 (FUSE_RENAME without flags): moves `name` in `parent` to `newName` in `newParent`;
   * `flags` RENAME_NOREPLACE, RENAME_EXCHANGE.
   */
  async rename(parent: bigint, name: string, newParent: bigint, newName: string, flags = 0): Promise<void> {
    if (flags === 0) await this.call(FuseOpcode.RENAME, parent, this.b().u64(newParent).name(name).name(newName).done(), 0);
    else await this.call(FuseOpcode.RENAME2, parent, this.b().u64(newParent).u32(flags).u32(0).name(name).name(newName).done(), 0);
  }

  /** FUSE_LINK: a hard link to `nodeid` named `newName` in `newParent`. */
  async link(nodeid: bigint, newParent: bigint, newName: string): Promise<FsEntry> {
    return this.entry(await this.call(FuseOpcode.LINK, newParent, this.b().u64(nodeid).name(newName).done(), FuseEntryOut.SIZE), 0, 'LINK');
  }

  // --- files -------------------------------------------------------------------------------

  private fh(r: Uint8Array, at = 0): { fh: bigint; openFlags: number } {
    const v = this.need(r, at + 16, 'OPEN');
    return { fh: v.getBigUint64(at, this.le), openFlags: v.getUint32(at + 8, this.le) };
  }

  /** OPEN with open(2) flags; the file handle. */
  async open(nodeid: bigint, flags: number): Promise<bigint> {
    return this.fh(await this.call(FuseOpcode.OPEN, nodeid, this.b(8).u32(flags).u32(0).done(), 16)).fh;
  }

  /** OPEN, with the device's open_flags (FOPEN_DIRECT_IO, KEEP_CACHE: its cache policy). */
  async openWithFlags(
    nodeid: bigint,
    flags: number,
  ): Promise<{
    /** The file handle for later READ, WRITE, RELEASE. */
    fh: bigint;
    /** open_flags of struct fuse_open_out (FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, ...). */
    openFlags: number;
  }> {
    return this.fh(await this.call(FuseOpcode.OPEN, nodeid, this.b(8).u32(flags).u32(0).done(), 16));
  }

  /** CREATE (or TMPFILE when `name` is null): the entry and an open handle. */
  async create(
    parent: bigint,
    name: string | null,
    mode: number,
    flags: number,
    umask = 0,
  ): Promise<{
    /** The new file's entry (node id, attributes, cache timeouts). */
    entry: FsEntry;
    /** The handle of the file, open with `flags`. */
    fh: bigint;
  }> {
    const op = name === null ? FuseOpcode.TMPFILE : FuseOpcode.CREATE;
    const r = await this.call(op, parent, this.b().u32(flags).u32(mode).u32(umask).u32(0).name(name ?? '/').done(), FuseEntryOut.SIZE + 16);
    return { entry: this.entry(r, 0, 'CREATE'), fh: this.fh(r, FuseEntryOut.SIZE).fh };
  }

  private rw(fh: bigint, offset: number, size: number, extra = 0, owner = 0n): FsRequestBuilder {
    return this.b(40 + extra).u64(fh).u64(offset).u32(size).u32(0).u64(owner).u32(0).u32(0);
  }

  /** FUSE_READ of up to `size` bytes at `offset` from open file `fh`; fewer at end of file. */
  async read(nodeid: bigint, fh: bigint, offset: number, size: number): Promise<Uint8Array> {
    return (await this.call(FuseOpcode.READ, nodeid, this.rw(fh, offset, size).done(), size)).slice();
  }

  /** FUSE_WRITE of `data` at `offset` to open file `fh`; resolves with the bytes written. */
  async write(nodeid: bigint, fh: bigint, offset: number, data: Uint8Array): Promise<number> {
    const r = await this.call(FuseOpcode.WRITE, nodeid, this.rw(fh, offset, data.length, data.length).bytes(data).done(), 8);
    return this.need(r, 8, 'WRITE').getUint32(0, this.le);
  }

  /** FUSE_RELEASE (or RELEASEDIR with that `opcode`): closes file handle `fh`. */
  async release(nodeid: bigint, fh: bigint, opcode: number = FuseOpcode.RELEASE): Promise<void> {
    await this.call(opcode, nodeid, this.b(24).u64(fh).u32(0).u32(0).u64(0).done(), 0);
  }

  /** FUSE_FLUSH: called on each close(2) of the file, releasing the POSIX locks of `lockOwner`. */
  async flush(nodeid: bigint, fh: bigint, lockOwner = 0n): Promise<void> {
    await this.call(FuseOpcode.FLUSH, nodeid, this.b(24).u64(fh).u32(0).u32(0).u64(lockOwner).done(), 0);
  }

  /**
   * FUSE_FSYNC (FSYNCDIR with `dir`): makes the file's data (and metadata unless `datasync`)
   * stable.
   */
  async fsync(nodeid: bigint, fh: bigint, datasync = false, dir = false): Promise<void> {
    await this.call(dir ? FuseOpcode.FSYNCDIR : FuseOpcode.FSYNC, nodeid, this.b(16).u64(fh).u32(datasync ? 1 : 0).u32(0).done(), 0);
  }

  /** FUSE_FALLOCATE: allocates (or with `mode` punches, zeroes) `length` bytes at `offset`. */
  async fallocate(nodeid: bigint, fh: bigint, offset: number, length: number, mode = 0): Promise<void> {
    await this.call(FuseOpcode.FALLOCATE, nodeid, this.b(32).u64(fh).u64(offset).u64(length).u32(mode).u32(0).done(), 0);
  }

  /** FUSE_LSEEK: the next data or hole at or after `offset` (`whence` SEEK_DATA, SEEK_HOLE). */
  async lseek(nodeid: bigint, fh: bigint, offset: number, whence: number): Promise<number> {
    const r = await this.call(FuseOpcode.LSEEK, nodeid, this.b(24).u64(fh).u64(offset).u32(whence).u32(0).done(), 8);
    return this.u64(this.need(r, 8, 'LSEEK'), 0);
  }

  /**
   * FUSE_COPY_FILE_RANGE: copies `len` bytes between two open files on the device; resolves with
   * the bytes copied.
   */
  async copyFileRange(nodeIn: bigint, fhIn: bigint, offIn: number, nodeOut: bigint, fhOut: bigint, offOut: number, len: number): Promise<number> {
    const r = await this.call(FuseOpcode.COPY_FILE_RANGE, nodeIn, this.b(56).u64(fhIn).u64(offIn).u64(nodeOut).u64(fhOut).u64(offOut).u64(len).u64(0).done(), 8);
    return this.need(r, 8, 'COPY_FILE_RANGE').getUint32(0, this.le);
  }

  /** FUSE_STATFS: the file system's block and inode counts. */
  async statfs(nodeid: bigint): Promise<{
    /** Total blocks, in units of `bsize`. */
    blocks: number;
    /** Free blocks. */
    bfree: number;
    /** Free blocks available to an unprivileged caller. */
    bavail: number;
    /** Total inodes. */
    files: number;
    /** Free inodes. */
    ffree: number;
    /** Block size in bytes. */
    bsize: number;
    /** Longest file name in bytes. */
    namelen: number;
  }> {
    const v = this.need(await this.call(FuseOpcode.STATFS, nodeid, new Uint8Array(0), 80), 80, 'STATFS');
    return { blocks: this.u64(v, 0), bfree: this.u64(v, 8), bavail: this.u64(v, 16), files: this.u64(v, 24), ffree: this.u64(v, 32), bsize: v.getUint32(40, this.le), namelen: v.getUint32(44, this.le) };
  }

  /** FUSE_SYNCFS: makes the whole file system stable. */
  async syncfs(): Promise<void> {
    await this.call(FuseOpcode.SYNCFS, 1n, this.b(8).u64(0).done(), 0);
  }

  /**
   * FUSE_ACCESS: whether the caller may access `nodeid` with `mask` (R_OK, W_OK, X_OK); rejects
   * with the errno when not.
   */
  async access(nodeid: bigint, mask: number): Promise<void> {
    await this.call(FuseOpcode.ACCESS, nodeid, this.b(8).u32(mask).u32(0).done(), 0);
  }

  // --- extended attributes -----------------------------------------------------------------

  /** SETXATTR; `setxattrFlags` (FUSE_SETXATTR_ACL_KILL_SGID) goes in the 16-byte form once FUSE_SETXATTR_EXT is negotiated. */
  async setxattr(nodeid: bigint, name: string, value: Uint8Array, flags = 0, setxattrFlags = 0): Promise<void> {
    const b = this.b().u32(value.length).u32(flags);
    if ((this.initFlags & FuseInitFlag.SETXATTR_EXT) !== 0) b.u32(setxattrFlags).u32(0);
    await this.call(FuseOpcode.SETXATTR, nodeid, b.name(name).bytes(value).done(), 0);
  }

  /** GETXATTR: the value (a size query first, then the bytes). */
  async getxattr(nodeid: bigint, name: string): Promise<Uint8Array> {
    const size = this.need(await this.call(FuseOpcode.GETXATTR, nodeid, this.b().u32(0).u32(0).name(name).done(), 8), 8, 'GETXATTR').getUint32(0, this.le);
    if (size === 0) return new Uint8Array(0);
    return (await this.call(FuseOpcode.GETXATTR, nodeid, this.b().u32(size).u32(0).name(name).done(), size)).slice();
  }

  /** FUSE_LISTXATTR: the names of `nodeid`'s extended attributes. */
  async listxattr(nodeid: bigint): Promise<string[]> {
    const size = this.need(await this.call(FuseOpcode.LISTXATTR, nodeid, this.b(8).u32(0).u32(0).done(), 8), 8, 'LISTXATTR').getUint32(0, this.le);
    if (size === 0) return [];
    const r = await this.call(FuseOpcode.LISTXATTR, nodeid, this.b(8).u32(size).u32(0).done(), size);
    return dec.decode(r).split('\0').filter((s) => s.length > 0);
  }

  /** FUSE_REMOVEXATTR: removes extended attribute `name`. */
  async removexattr(nodeid: bigint, name: string): Promise<void> {
    await this.call(FuseOpcode.REMOVEXATTR, nodeid, this.b().name(name).done(), 0);
  }

  // --- locks -------------------------------------------------------------------------------

  private lk(fh: bigint, owner: bigint, l: FsLock): Uint8Array {
    const b = this.b(48).u64(fh).u64(owner).u64(l.start);
    if (l.end < 0) b.u64(0x7fff_ffff_ffff_ffffn);
    else b.u64(l.end);
    return b.u32(l.type).u32(l.pid).u32(0).u32(0).done();
  }

  /**
   * FUSE_GETLK: the lock that would conflict with `l` for `owner`, or `l` with type F_UNLCK when
   * none would.
   */
  async getlk(nodeid: bigint, fh: bigint, owner: bigint, l: FsLock): Promise<FsLock> {
    const v = this.need(await this.call(FuseOpcode.GETLK, nodeid, this.lk(fh, owner, l), 24), 24, 'GETLK');
    const end = v.getBigUint64(8, this.le);
    return { start: this.u64(v, 0), end: end >= 0x7fff_ffff_ffff_ffffn ? -1 : Number(end), type: v.getUint32(16, this.le), pid: v.getUint32(20, this.le) };
  }

  /** SETLK, or SETLKW (`wait`: resolves when the lock is taken; INTERRUPT it with `interrupt(unique)`). */
  async setlk(nodeid: bigint, fh: bigint, owner: bigint, l: FsLock, wait = false): Promise<void> {
    const opcode = wait ? FuseOpcode.SETLKW : FuseOpcode.SETLK;
    const r = await this.exchange(opcode, nodeid, this.lk(fh, owner, l), 0);
    if (r.error === FUSE_LOCK_WAIT_NOTIFY && wait && this.notifications !== null) {
      // 5.11.6.3: the device waits for the lock and says so; FUSE_NOTIFY_LOCK carries the result.
      return this.notifications.waitLock(r.unique, (errno) => new FuseReplyError(opcode, errno));
    }
    if (r.error !== 0) throw new FuseReplyError(opcode, -r.error);
  }

  // --- directories -------------------------------------------------------------------------

  /** FUSE_OPENDIR: opens directory `nodeid`; resolves with its file handle. */
  async opendir(nodeid: bigint): Promise<bigint> {
    return this.fh(await this.call(FuseOpcode.OPENDIR, nodeid, this.b(8).u32(0).u32(0).done(), 16)).fh;
  }

  /** One READDIR(PLUS) reply from `offset`: the entries and the offset to continue at. */
  async readdirChunk(
    nodeid: bigint,
    fh: bigint,
    offset: number,
    size = 8192,
    plus = false,
  ): Promise<{
    /** The entries of this reply; empty at the end of the directory. */
    entries: FsDirEntry[];
    /** The `off` of the last entry: the offset to pass next (`offset` itself when none came). */
    next: number;
  }> {
    const r = await this.call(plus ? FuseOpcode.READDIRPLUS : FuseOpcode.READDIR, nodeid, this.rw(fh, offset, size).done(), size);
    const v = this.view(r);
    const entries: FsDirEntry[] = [];
    let next = offset;
    for (let p = 0; ; ) {
      let entry: FsEntry | undefined;
      let d = p;
      if (plus) {
        if (p + FuseDirentplus.DIRENT + FuseDirent.NAME > r.length) break;
        entry = this.entry(r, p, 'READDIRPLUS');
        d = p + FuseDirentplus.DIRENT;
      } else if (p + FuseDirent.NAME > r.length) break;
      const namelen = v.getUint32(d + FuseDirent.NAMELEN, this.le);
      if (d + FuseDirent.NAME + namelen > r.length) break;
      const e: FsDirEntry = { ino: this.u64(v, d + FuseDirent.INO), type: v.getUint32(d + FuseDirent.TYPE, this.le), name: dec.decode(r.subarray(d + FuseDirent.NAME, d + FuseDirent.NAME + namelen)) };
      if (entry !== undefined) e.entry = entry;
      entries.push(e);
      next = this.u64(v, d + FuseDirent.OFF);
      p = d + ((FuseDirent.NAME + namelen + 7) & ~7);
    }
    return { entries, next };
  }

  /** OPENDIR + READDIR(PLUS) until empty (bounded) + RELEASEDIR. */
  async readdir(nodeid: bigint, plus = false): Promise<FsDirEntry[]> {
    const fh = await this.opendir(nodeid);
    const out: FsDirEntry[] = [];
    try {
      let offset = 0;
      for (let round = 0; round < 1_000_000; round++) {
        const { entries, next } = await this.readdirChunk(nodeid, fh, offset, 32768, plus);
        if (entries.length === 0) break;
        out.push(...entries);
        offset = next;
      }
    } finally {
      await this.release(nodeid, fh, FuseOpcode.RELEASEDIR);
    }
    return out;
  }
}
