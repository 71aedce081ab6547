/**
 * The 9P transport over virtio, driver side: a 9P2000.L client on the request queue. Each
 * request is one chain: the T-message device-readable, then msize bytes device-writable for
 * the R-message (QEMU's device insists the reply room covers what it may answer). Tags are
 * taken from a free list (NOTAG only for Tversion); an Rlerror becomes a P9RemoteError with the
 * errno; a reply that is not the answer to its request (type, tag, size) is a protocol error.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  P9_CONFIG_LAYOUT,
  P9_F_MOUNT_TAG,
  P9_HEADER_BYTES,
  P9_MIN_MSIZE,
  P9_NOFID,
  P9_NOTAG,
  P9_QID_BYTES,
  P9_REQUEST_QUEUE,
  P9_TWRITE_HEADER_BYTES,
  P9_VERSION_L,
  P9Config,
  P9GetattrMask,
  P9Type,
} from '../../spec/9p.js';
import { P9Reader, P9Writer, type Qid, readQid } from './p9-codec.js';

/** The server answered Rlerror. */
export class P9RemoteError extends VirtioError {
  constructor(
    /** Linux errno from Rlerror's ecode. */
    readonly errno: number,
    /** The T-message type (P9Type) of the request that failed. */
    readonly request: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `9P request type ${request} failed: errno ${errno}`);
  }
}

/** Options of P9Driver. */
export interface P9DriverOptions {
  /** msize asked at version(). Default 128 KiB. */
  readonly msize?: number;
}

/** File attributes as Rgetattr returns them (9P2000.L). */
export interface P9Attr {
  /** Which fields are valid or to be set (a bit mask of the request). */
  valid: number;
  /** The file's qid (type, version, path). */
  qid: Qid;
  /** File type and permission bits (st_mode). */
  mode: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Number of hard links. */
  nlink: number;
  /** Device number of a device file. */
  rdev: number;
  /** Size in bytes. */
  size: number;
  /** Preferred I/O block size. */
  blksize: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  /** Access time, seconds. */
  atimeSec: number;
  /** Modification time, seconds. */
  mtimeSec: number;
  /** Status change time, seconds. */
  ctimeSec: number;
}

/** The attributes a Tsetattr changes (`valid`: P9SetattrValid bits). */
export interface P9SetAttr {
  /** Which fields are valid or to be set (a bit mask of the request). */
  valid: number;
  /** File type and permission bits (st_mode). */
  mode?: number;
  /** Owner user id. */
  uid?: number;
  /** Owner group id. */
  gid?: number;
  /** Size in bytes. */
  size?: number;
  /** Access time, seconds. */
  atimeSec?: number;
  /** Nanoseconds of the access time. */
  atimeNsec?: number;
  /** Modification time, seconds. */
  mtimeSec?: number;
  /** Nanoseconds of the modification time. */
  mtimeNsec?: number;
}

/** One directory entry from Treaddir. */
export interface P9DirEnt {
  /** The file's qid (type, version, path). */
  qid: Qid;
  /** The server's cookie for the next Treaddir (opaque: QEMU gives telldir values up to 2^64). */
  offset: bigint;
  /** The entry's file type (DT_*). */
  type: number;
  /** The entry's name. */
  name: string;
}

/** File system statistics from Tstatfs. */
export interface P9StatFs {
  /** File system type (statfs f_type). */
  type: number;
  /** Block size. */
  bsize: number;
  /** Total blocks (of `bsize` bytes). */
  blocks: number;
  /** Free blocks. */
  bfree: number;
  /** Free blocks available to unprivileged users. */
  bavail: number;
  /** Total inodes. */
  files: number;
  /** Free inodes. */
  ffree: number;
  /** Longest file name. */
  namelen: number;
}

/** A POSIX record lock request (Tlock / Tgetlock): type, range and owner. */
export interface P9LockRequest {
  /** P9LockType: RDLCK, WRLCK or UNLCK. */
  type: number;
  /** Tlock flags: P9_LOCK_FLAGS_BLOCK (1), P9_LOCK_FLAGS_RECLAIM (2); default 0. */
  flags?: number;
  /** First byte of the range (file offset). */
  start: number;
  /** 0: to the end of the file. */
  length: number;
  /** Process id of the lock owner. */
  procId: number;
  /** Client name of the lock owner (Linux sends the node name). */
  clientId: string;
}

/** A lock as Rgetlock describes it. */
export interface P9LockInfo {
  /** P9LockType of the conflicting lock, or UNLCK when the asked lock would be granted. */
  type: number;
  /** First byte of the range. */
  start: number;
  /** Bytes of the range, 0 = to the end of the file. */
  length: number;
  /** Process id of the lock's owner. */
  procId: number;
  /** Client name of the lock's owner. */
  clientId: string;
}

const MAX_TAGS = 0xffff;
const NO_SIZE = new Uint8Array(4);

/**
 * The 9P2000.L client over a virtio 9P transport device (as Linux's 9pnet_virtio speaks it):
 * Tversion, Tattach, then one method per 9P request on fids.
 */
export class P9Driver implements DeviceDriver {
  /** The DeviceDriver contract: 9P transport devices; MOUNT_TAG wanted (the tag names the share). */
  static readonly type: DeviceDriverType<P9Driver, P9DriverOptions> = {
    name: 'virtio-9p',
    deviceId: DeviceId.NINEP,
    wantedFeatures: P9_F_MOUNT_TAG,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new P9Driver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly queue: RequestQueue;
  /** msize in force: asked before version(), agreed after. */
  msize: number;
  private readonly freeTags: number[] = [];
  private nextTag = 0;
  private nextFid = 1;
  private readonly w = new P9Writer();

  constructor(ctx: DriverContext, opts: P9DriverOptions = {}) {
    checkDriverContext(P9Driver.type, ctx);
    this.ctx = ctx;
    this.msize = opts.msize ?? 128 * 1024;
    if (!Number.isInteger(this.msize) || this.msize < P9_MIN_MSIZE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `msize ${this.msize} below ${P9_MIN_MSIZE}`);
    this.queue = new RequestQueue(ctx, P9_REQUEST_QUEUE);
  }

  /** The mount tag from the configuration ('' without MOUNT_TAG or when the transport shows none). */
  get mountTag(): string {
    if ((this.ctx.features & P9_F_MOUNT_TAG) === 0n) return '';
    const read = (o: number, n: number): Uint8Array => this.ctx.readConfig(o, n);
    const len = readConfigField(P9_CONFIG_LAYOUT, 'tagLen', read, this.ctx.littleEndian);
    return len === 0 ? '' : Buffer.from(this.ctx.readConfig(P9Config.TAG, len)).toString('utf8');
  }

  /** A fid number not used by this driver yet. */
  newFid(): number {
    return this.nextFid++;
  }

  detach(): void {
    this.queue.detach();
  }

  /** Tversion: resolves with the agreed msize and version (the session starts over). */
  async version(version = P9_VERSION_L): Promise<{
    /** The msize agreed (the server's answer, at most the one asked), bytes. */
    msize: number;
    /** The protocol version the server answered (`unknown` when it refused ours). */
    version: string;
  }> {
    const r = await this.rpc(P9Type.TVERSION, (w) => {
      w.u32(this.msize);
      w.str(Buffer.from(version));
    }, P9_NOTAG);
    const msize = r.u32();
    const v = r.str().toString('utf8');
    if (msize > this.msize || msize < P9_MIN_MSIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `server msize ${msize} outside ${P9_MIN_MSIZE}..${this.msize}`);
    this.msize = msize;
    return { msize, version: v };
  }

  /**
   * Tattach: binds `fid` to the root of the export `aname` for user `uname` (or numeric `nUname`);
   * resolves with the root's qid.
   */
  async attach(fid: number, uname = '', aname = '', nUname = P9_NOFID): Promise<Qid> {
    const r = await this.rpc(P9Type.TATTACH, (w) => {
      w.u32(fid);
      w.u32(P9_NOFID);
      w.str(Buffer.from(uname));
      w.str(Buffer.from(aname));
      w.u32(nUname);
    });
    return this.qid(r);
  }

  /** Twalk: the qids of the names walked (fewer than asked: newfid was not made). */
  async walk(fid: number, newfid: number, names: readonly string[]): Promise<Qid[]> {
    const r = await this.rpc(P9Type.TWALK, (w) => {
      w.u32(fid);
      w.u32(newfid);
      w.u16(names.length);
      for (const n of names) w.str(Buffer.from(n));
    });
    const n = r.u16();
    const out: Qid[] = [];
    for (let i = 0; i < n; i++) out.push(this.qid(r));
    return out;
  }

  /**
   * Tlopen: opens the file `fid` names with Linux open(2) `flags`; resolves with its qid and the
   * iounit (0: msize - 24).
   */
  async lopen(fid: number, flags: number): Promise<{
    /** The qid of the opened file. */
    qid: Qid;
    /** Largest I/O in one Tread/Twrite without splitting, bytes; 0: msize - 24. */
    iounit: number;
  }> {
    const r = await this.rpc(P9Type.TLOPEN, (w) => {
      w.u32(fid);
      w.u32(flags);
    });
    return { qid: this.qid(r), iounit: r.u32() };
  }

  /**
   * Tlcreate: creates and opens `name` in directory `fid` (which then names the new file) with
   * `flags`, `mode` and group `gid`.
   */
  async lcreate(fid: number, name: string, flags: number, mode: number, gid = 0): Promise<{
    /** The qid of the created file. */
    qid: Qid;
    /** Largest I/O in one Tread/Twrite without splitting, bytes; 0: msize - 24. */
    iounit: number;
  }> {
    const r = await this.rpc(P9Type.TLCREATE, (w) => {
      w.u32(fid);
      w.str(Buffer.from(name));
      w.u32(flags);
      w.u32(mode);
      w.u32(gid);
    });
    return { qid: this.qid(r), iounit: r.u32() };
  }

  /** Tread of at most `count` bytes (and at most what msize allows). */
  async read(fid: number, offset: number, count: number): Promise<Buffer> {
    const r = await this.rpc(P9Type.TREAD, (w) => {
      w.u32(fid);
      w.u64(offset);
      w.u32(Math.min(count, this.msize - 11));
    });
    const n = r.u32();
    return Buffer.from(r.buf.subarray(r.skip(n), r.pos));
  }

  /** Twrite of as much of `data` as one message carries; resolves with the count written. */
  async write(fid: number, offset: number, data: Uint8Array): Promise<number> {
    const n = Math.min(data.length, this.msize - P9_TWRITE_HEADER_BYTES);
    const r = await this.rpc(P9Type.TWRITE, (w) => {
      w.u32(fid);
      w.u64(offset);
      w.u32(n);
      w.bytes(data.subarray(0, n));
    });
    return r.u32();
  }

  /** Tclunk: forgets `fid` (closing the file it opened). */
  async clunk(fid: number): Promise<void> {
    await this.rpc(P9Type.TCLUNK, (w) => w.u32(fid));
  }

  /** Tremove: removes the file `fid` names and clunks the fid. */
  async remove(fid: number): Promise<void> {
    await this.rpc(P9Type.TREMOVE, (w) => w.u32(fid));
  }

  /** Tgetattr: the attributes of the file `fid` names (`mask`: which fields, P9GetattrMask). */
  async getattr(fid: number, mask: number = P9GetattrMask.BASIC): Promise<P9Attr> {
    const r = await this.rpc(P9Type.TGETATTR, (w) => {
      w.u32(fid);
      w.u64(mask);
    });
    const valid = r.u64();
    const qid = this.qid(r);
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const nlink = r.u64();
    const rdev = r.u64();
    const size = r.u64();
    const blksize = r.u64();
    const blocks = r.u64();
    const atimeSec = r.u64();
    r.u64();
    const mtimeSec = r.u64();
    r.u64();
    const ctimeSec = r.u64();
    return { valid, qid, mode, uid, gid, nlink, rdev, size, blksize, blocks, atimeSec, mtimeSec, ctimeSec };
  }

  /** Tsetattr: changes the attributes `a` gives (mode, owner, size, times). */
  async setattr(fid: number, a: P9SetAttr): Promise<void> {
    await this.rpc(P9Type.TSETATTR, (w) => {
      w.u32(fid);
      w.u32(a.valid);
      w.u32(a.mode ?? 0);
      w.u32(a.uid ?? 0);
      w.u32(a.gid ?? 0);
      w.u64(a.size ?? 0);
      w.u64(a.atimeSec ?? 0);
      w.u64(a.atimeNsec ?? 0);
      w.u64(a.mtimeSec ?? 0);
      w.u64(a.mtimeNsec ?? 0);
    });
  }

  /** One Treaddir from `offset` (0: from the start); an empty array at the end. */
  async readdir(fid: number, offset = 0n, count = this.msize - 11): Promise<P9DirEnt[]> {
    const r = await this.rpc(P9Type.TREADDIR, (w) => {
      w.u32(fid);
      w.u64n(offset);
      w.u32(Math.min(count, this.msize - 11));
    });
    const n = r.u32();
    const end = r.pos + n;
    const out: P9DirEnt[] = [];
    while (r.pos < end) out.push({ qid: this.qid(r), offset: r.u64n(), type: r.u8(), name: r.str().toString('utf8') });
    return out;
  }

  /** Every entry of an open directory fid (Treaddir until it answers none). */
  async readdirAll(fid: number): Promise<P9DirEnt[]> {
    const all: P9DirEnt[] = [];
    let offset = 0n;
    for (;;) {
      const part = await this.readdir(fid, offset);
      if (part.length === 0) return all;
      all.push(...part);
      offset = part[part.length - 1]!.offset;
    }
  }

  /** Tmkdir: creates directory `name` in directory `dfid` with `mode` and group `gid`. */
  async mkdir(dfid: number, name: string, mode: number, gid = 0): Promise<Qid> {
    const r = await this.rpc(P9Type.TMKDIR, (w) => {
      w.u32(dfid);
      w.str(Buffer.from(name));
      w.u32(mode);
      w.u32(gid);
    });
    return this.qid(r);
  }

  /** Tunlinkat: removes `name` from directory `dfid` (`flags`: AT_REMOVEDIR for a directory). */
  async unlinkat(dfid: number, name: string, flags = 0): Promise<void> {
    await this.rpc(P9Type.TUNLINKAT, (w) => {
      w.u32(dfid);
      w.str(Buffer.from(name));
      w.u32(flags);
    });
  }

  /** Trenameat: renames `oldName` in `oldDfid` to `newName` in `newDfid`. */
  async renameat(oldDfid: number, oldName: string, newDfid: number, newName: string): Promise<void> {
    await this.rpc(P9Type.TRENAMEAT, (w) => {
      w.u32(oldDfid);
      w.str(Buffer.from(oldName));
      w.u32(newDfid);
      w.str(Buffer.from(newName));
    });
  }

  /** Trename: moves the file `fid` names to `name` in directory `dfid`. */
  async rename(fid: number, dfid: number, name: string): Promise<void> {
    await this.rpc(P9Type.TRENAME, (w) => {
      w.u32(fid);
      w.u32(dfid);
      w.str(Buffer.from(name));
    });
  }

  /** Tsymlink: creates symlink `name` in `dfid` pointing at `target`. */
  async symlink(dfid: number, name: string, target: string, gid = 0): Promise<Qid> {
    const r = await this.rpc(P9Type.TSYMLINK, (w) => {
      w.u32(dfid);
      w.str(Buffer.from(name));
      w.str(Buffer.from(target));
      w.u32(gid);
    });
    return this.qid(r);
  }

  /** Tlink: a hard link named `name` in `dfid` to the file `fid` names. */
  async link(dfid: number, fid: number, name: string): Promise<void> {
    await this.rpc(P9Type.TLINK, (w) => {
      w.u32(dfid);
      w.u32(fid);
      w.str(Buffer.from(name));
    });
  }

  /** Treadlink: the target of the symlink `fid` names. */
  async readlink(fid: number): Promise<string> {
    const r = await this.rpc(P9Type.TREADLINK, (w) => w.u32(fid));
    return r.str().toString('utf8');
  }

  /** Tstatfs: the file system's counts. */
  async statfs(fid: number): Promise<P9StatFs> {
    const r = await this.rpc(P9Type.TSTATFS, (w) => w.u32(fid));
    const type = r.u32();
    const bsize = r.u32();
    const blocks = r.u64();
    const bfree = r.u64();
    const bavail = r.u64();
    const files = r.u64();
    const ffree = r.u64();
    r.u64Clamped(); // fsid
    return { type, bsize, blocks, bfree, bavail, files, ffree, namelen: r.u32() };
  }

  /** Tfsync: makes the open file's data (and metadata unless `datasync`) stable. */
  async fsync(fid: number, datasync = false): Promise<void> {
    await this.rpc(P9Type.TFSYNC, (w) => {
      w.u32(fid);
      w.u32(datasync ? 1 : 0);
    });
  }

  /** Txattrwalk: newfid reads the attribute `name` ('' lists the names); resolves with its size. */
  async xattrwalk(fid: number, newfid: number, name: string): Promise<number> {
    const r = await this.rpc(P9Type.TXATTRWALK, (w) => {
      w.u32(fid);
      w.u32(newfid);
      w.str(Buffer.from(name));
    });
    return r.u64();
  }

  /** Txattrcreate: fid becomes the attribute `name`, written with write() and set at clunk(). */
  async xattrcreate(fid: number, name: string, size: number, flags = 0): Promise<void> {
    await this.rpc(P9Type.TXATTRCREATE, (w) => {
      w.u32(fid);
      w.str(Buffer.from(name));
      w.u64(size);
      w.u32(flags);
    });
  }

  /** Tlock: resolves with the status (P9LockStatus). */
  async lock(fid: number, l: P9LockRequest): Promise<number> {
    const r = await this.rpc(P9Type.TLOCK, (w) => {
      w.u32(fid);
      w.u8(l.type);
      w.u32(l.flags ?? 0);
      w.u64(l.start);
      w.u64(l.length);
      w.u32(l.procId);
      w.str(Buffer.from(l.clientId));
    });
    return r.u8();
  }

  /** Tgetlock: the lock that would block `l`, or `l` with type UNLCK when none would. */
  async getlock(fid: number, l: P9LockRequest): Promise<P9LockInfo> {
    const r = await this.rpc(P9Type.TGETLOCK, (w) => {
      w.u32(fid);
      w.u8(l.type);
      w.u64(l.start);
      w.u64(l.length);
      w.u32(l.procId);
      w.str(Buffer.from(l.clientId));
    });
    return { type: r.u8(), start: r.u64Clamped(), length: r.u64Clamped(), procId: r.u32(), clientId: r.str().toString('utf8') };
  }

  /** Tflush: cancels the request with tag `oldTag` (its reply, if any, comes first). */
  async flush(oldTag: number): Promise<void> {
    await this.rpc(P9Type.TFLUSH, (w) => w.u16(oldTag));
  }

  private qid(r: P9Reader): Qid {
    return readQid(r.buf, r.skip(P9_QID_BYTES));
  }

  private takeTag(): number {
    const t = this.freeTags.pop();
    if (t !== undefined) return t;
    if (this.nextTag >= MAX_TAGS) throw new VirtioError(ErrorCode.QUEUE_FULL, 'every 9P tag is in use');
    return this.nextTag++;
  }

  /**
   * One request: the T-message built by `build`, msize bytes of reply room; resolves with a
   * reader positioned after the R-message header. Rlerror rejects with P9RemoteError.
   */
  private async rpc(type: number, build: (w: P9Writer) => void, fixedTag?: number): Promise<P9Reader> {
    const tag = fixedTag ?? this.takeTag();
    const msg = Buffer.alloc(this.msize);
    const w = this.w.reset(msg, P9_HEADER_BYTES, msg.length);
    build(w);
    const size = w.pos;
    msg.writeUInt32LE(size, 0);
    msg[4] = type;
    msg.writeUInt16LE(tag, 5);
    const replyRoom = this.msize;
    const dma = this.ctx.dma;
    const outAddr = dma.alloc(size, 16);
    let inAddr = -1;
    try {
      inAddr = dma.alloc(replyRoom, 16);
      this.ctx.memory.write(outAddr, msg, 0, size);
      // A zero size field: a device that wrote nothing is seen as such (below).
      this.ctx.memory.write(inAddr, NO_SIZE);
      let used = await this.queue.submit([{ addr: outAddr, len: size }], [{ addr: inAddr, len: replyRoom }]);
      if (used === 0) {
        // A device that reports no length (2.8.4: len is reserved in a used packed descriptor
        // without WRITE; docs/x-remote.md): a 9P reply carries its own, bounded by the room given.
        const head = Buffer.alloc(4);
        this.ctx.memory.read(inAddr, head);
        used = Math.min(head.readUInt32LE(0), replyRoom);
      }
      const reply = Buffer.alloc(Math.min(used, replyRoom));
      this.ctx.memory.read(inAddr, reply);
      const r = new P9Reader().reset(reply, 0, reply.length);
      const rsize = r.u32();
      const rtype = r.u8();
      const rtag = r.u16();
      if (rsize !== reply.length || rtag !== tag) throw new VirtioError(ErrorCode.REQUEST_FAILED, `9P reply size ${rsize} (used ${reply.length}) tag ${rtag} (sent ${tag})`);
      if (rtype === P9Type.RLERROR) throw new P9RemoteError(r.u32(), type);
      if (rtype !== type + 1) throw new VirtioError(ErrorCode.REQUEST_FAILED, `9P reply type ${rtype} to request type ${type}`);
      return r;
    } finally {
      dma.free(outAddr);
      if (inAddr >= 0) dma.free(inAddr);
      if (fixedTag === undefined) this.freeTags.push(tag);
    }
  }
}

