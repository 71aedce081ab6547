/**
 * A minimal virtio-fs driver (5.11): FUSE requests over the request queue, FORGET over hiprio.
 * Enough to mount-less browse and edit a shared folder: INIT, LOOKUP, GETATTR, OPEN, CREATE,
 * READ, WRITE, RELEASE, OPENDIR, READDIR, RELEASEDIR, FORGET.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DriverContext } from '../../driver/types.js';
import {
  FS_HIPRIO_QUEUE,
  FS_REQUEST_QUEUE,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FuseAttr,
  FuseAttrOut,
  FuseCreateIn,
  FuseDirent,
  FuseEntryOut,
  FuseForgetIn,
  FuseGetattrIn,
  FuseInHeader,
  FuseInitIn,
  FuseInitOut,
  FuseOpcode,
  FuseOpenIn,
  FuseOpenOut,
  FuseOutHeader,
  FuseReadIn,
  FuseReleaseIn,
  FuseWriteIn,
  FuseWriteOut,
} from '../../spec/fs.js';
import { RequestQueue } from '../../driver/request-queue.js';
import { exchangeBytes } from './byte-exchange.js';

/** A FUSE reply with an error (negated errno in the out header). */
export class FuseError extends VirtioError {
  constructor(
    readonly opcode: number,
    readonly errno: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode} failed with errno ${errno}`);
  }
}

export interface FuseAttrs {
  ino: bigint;
  size: number;
  mode: number;
  nlink: number;
}

export interface FuseEntry {
  nodeid: bigint;
  attr: FuseAttrs;
}

export interface FuseDirEntry {
  ino: bigint;
  name: string;
  type: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function parseAttr(b: Uint8Array, off: number): FuseAttrs {
  const v = new DataView(b.buffer, b.byteOffset + off, FuseAttr.BYTES);
  return {
    ino: v.getBigUint64(FuseAttr.INO, true),
    size: Number(v.getBigUint64(FuseAttr.SIZE, true)),
    mode: v.getUint32(FuseAttr.MODE, true),
    nlink: v.getUint32(FuseAttr.NLINK, true),
  };
}

export class FsClient {
  private readonly req: RequestQueue;
  private readonly hiprio: RequestQueue;
  private unique = 1n;
  /** Negotiated FUSE minor version and max_write (after init). */
  minor = 0;
  maxWrite = 0;

  constructor(private readonly ctx: DriverContext) {
    if (ctx.numQueues <= FS_REQUEST_QUEUE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-fs needs the hiprio and one request queue');
    this.hiprio = new RequestQueue(ctx, FS_HIPRIO_QUEUE);
    this.req = new RequestQueue(ctx, FS_REQUEST_QUEUE);
  }

  /** One FUSE request: header + args out, out header + `outLen` bytes back. */
  async call(opcode: number, nodeid: bigint, args: Uint8Array, outLen: number): Promise<Uint8Array> {
    const msg = new Uint8Array(FuseInHeader.SIZE + args.length);
    const v = new DataView(msg.buffer);
    const unique = this.unique++;
    v.setUint32(FuseInHeader.LEN, msg.length, true);
    v.setUint32(FuseInHeader.OPCODE, opcode, true);
    v.setBigUint64(FuseInHeader.UNIQUE, unique, true);
    v.setBigUint64(FuseInHeader.NODEID, nodeid, true);
    v.setUint32(FuseInHeader.UID, process.getuid?.() ?? 0, true);
    v.setUint32(FuseInHeader.GID, process.getgid?.() ?? 0, true);
    v.setUint32(FuseInHeader.PID, process.pid, true);
    msg.set(args, FuseInHeader.SIZE);
    const c = await exchangeBytes(this.req, msg, FuseOutHeader.SIZE + outLen);
    if (c.data.length < FuseOutHeader.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode}: short reply (${c.data.length} bytes)`);
    const o = new DataView(c.data.buffer, c.data.byteOffset, c.data.length);
    const len = o.getUint32(FuseOutHeader.LEN, true);
    const error = o.getInt32(FuseOutHeader.ERROR, true);
    if (o.getBigUint64(FuseOutHeader.UNIQUE, true) !== unique) throw new VirtioError(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode}: reply to another request`);
    if (error !== 0) throw new FuseError(opcode, -error);
    return c.data.subarray(FuseOutHeader.SIZE, Math.min(len, c.data.length));
  }

  /** FUSE_INIT: must come first. */
  async init(): Promise<void> {
    const a = new Uint8Array(FuseInitIn.SIZE);
    const v = new DataView(a.buffer);
    v.setUint32(FuseInitIn.MAJOR, FUSE_KERNEL_VERSION, true);
    v.setUint32(FuseInitIn.MINOR, FUSE_KERNEL_MINOR_VERSION, true);
    v.setUint32(FuseInitIn.MAX_READAHEAD, 128 << 10, true);
    v.setUint32(FuseInitIn.FLAGS, 0, true);
    const r = await this.call(FuseOpcode.INIT, 0n, a, FuseInitOut.SIZE);
    const o = new DataView(r.buffer, r.byteOffset, r.length);
    if (r.length < 24 || o.getUint32(FuseInitOut.MAJOR, true) !== FUSE_KERNEL_VERSION) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'FUSE_INIT: unexpected reply');
    this.minor = o.getUint32(FuseInitOut.MINOR, true);
    this.maxWrite = o.getUint32(FuseInitOut.MAX_WRITE, true);
  }

  async lookup(parent: bigint, name: string): Promise<FuseEntry> {
    const n = enc.encode(`${name}\0`);
    const r = await this.call(FuseOpcode.LOOKUP, parent, n, FuseEntryOut.SIZE);
    if (r.length < FuseEntryOut.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'LOOKUP: short reply');
    return { nodeid: new DataView(r.buffer, r.byteOffset).getBigUint64(FuseEntryOut.NODEID, true), attr: parseAttr(r, FuseEntryOut.ATTR) };
  }

  async getattr(nodeid: bigint): Promise<FuseAttrs> {
    const r = await this.call(FuseOpcode.GETATTR, nodeid, new Uint8Array(FuseGetattrIn.SIZE), FuseAttrOut.SIZE);
    if (r.length < FuseAttrOut.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'GETATTR: short reply');
    return parseAttr(r, FuseAttrOut.ATTR);
  }

  private openArgs(flags: number): Uint8Array {
    const a = new Uint8Array(FuseOpenIn.SIZE);
    new DataView(a.buffer).setUint32(FuseOpenIn.FLAGS, flags, true);
    return a;
  }

  private fh(r: Uint8Array): bigint {
    if (r.length < FuseOpenOut.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'OPEN: short reply');
    return new DataView(r.buffer, r.byteOffset).getBigUint64(FuseOpenOut.FH, true);
  }

  /** OPEN with open(2) flags; returns the file handle. */
  async open(nodeid: bigint, flags: number): Promise<bigint> {
    return this.fh(await this.call(FuseOpcode.OPEN, nodeid, this.openArgs(flags), FuseOpenOut.SIZE));
  }

  /** CREATE a file in `parent`; returns its entry and an open handle. */
  async create(parent: bigint, name: string, mode: number, flags: number): Promise<{ entry: FuseEntry; fh: bigint }> {
    const n = enc.encode(`${name}\0`);
    const a = new Uint8Array(FuseCreateIn.SIZE + n.length);
    const v = new DataView(a.buffer);
    v.setUint32(FuseCreateIn.FLAGS, flags, true);
    v.setUint32(FuseCreateIn.MODE, mode, true);
    v.setUint32(FuseCreateIn.UMASK, 0, true);
    a.set(n, FuseCreateIn.SIZE);
    const r = await this.call(FuseOpcode.CREATE, parent, a, FuseEntryOut.SIZE + FuseOpenOut.SIZE);
    if (r.length < FuseEntryOut.SIZE + FuseOpenOut.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'CREATE: short reply');
    const entry = { nodeid: new DataView(r.buffer, r.byteOffset).getBigUint64(FuseEntryOut.NODEID, true), attr: parseAttr(r, FuseEntryOut.ATTR) };
    return { entry, fh: this.fh(r.subarray(FuseEntryOut.SIZE)) };
  }

  private rwArgs(fh: bigint, offset: number, size: number, extra = 0): Uint8Array {
    const a = new Uint8Array(FuseReadIn.SIZE + extra);
    const v = new DataView(a.buffer);
    v.setBigUint64(FuseReadIn.FH, fh, true);
    v.setBigUint64(FuseReadIn.OFFSET, BigInt(offset), true);
    v.setUint32(FuseReadIn.SIZE_FIELD, size, true);
    return a;
  }

  async read(nodeid: bigint, fh: bigint, offset: number, size: number): Promise<Uint8Array> {
    return (await this.call(FuseOpcode.READ, nodeid, this.rwArgs(fh, offset, size), size)).slice();
  }

  async write(nodeid: bigint, fh: bigint, offset: number, data: Uint8Array): Promise<number> {
    const a = this.rwArgs(fh, offset, data.length, data.length);
    a.set(data, FuseWriteIn.SIZE);
    const r = await this.call(FuseOpcode.WRITE, nodeid, a, FuseWriteOut.SIZE);
    if (r.length < FuseWriteOut.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'WRITE: short reply');
    return new DataView(r.buffer, r.byteOffset).getUint32(FuseWriteOut.SIZE_FIELD, true);
  }

  private releaseArgs(fh: bigint): Uint8Array {
    const a = new Uint8Array(FuseReleaseIn.SIZE);
    new DataView(a.buffer).setBigUint64(FuseReleaseIn.FH, fh, true);
    return a;
  }

  async release(nodeid: bigint, fh: bigint): Promise<void> {
    await this.call(FuseOpcode.RELEASE, nodeid, this.releaseArgs(fh), 0);
  }

  /** OPENDIR + READDIR until empty (bounded) + RELEASEDIR. */
  async readdir(nodeid: bigint): Promise<FuseDirEntry[]> {
    const fh = this.fh(await this.call(FuseOpcode.OPENDIR, nodeid, this.openArgs(0), FuseOpenOut.SIZE));
    const out: FuseDirEntry[] = [];
    try {
      let offset = 0;
      for (let round = 0; round < 10_000; round++) {
        const r = await this.call(FuseOpcode.READDIR, nodeid, this.rwArgs(fh, offset, 8192), 8192);
        if (r.length === 0) break;
        const v = new DataView(r.buffer, r.byteOffset, r.length);
        let p = 0;
        while (p + FuseDirent.NAME <= r.length) {
          const namelen = v.getUint32(p + FuseDirent.NAMELEN, true);
          if (p + FuseDirent.NAME + namelen > r.length) break;
          out.push({
            ino: v.getBigUint64(p + FuseDirent.INO, true),
            type: v.getUint32(p + FuseDirent.TYPE, true),
            name: dec.decode(r.subarray(p + FuseDirent.NAME, p + FuseDirent.NAME + namelen)),
          });
          offset = Number(v.getBigUint64(p + FuseDirent.OFF, true));
          p += (FuseDirent.NAME + namelen + 7) & ~7;
        }
      }
    } finally {
      await this.call(FuseOpcode.RELEASEDIR, nodeid, this.releaseArgs(fh), 0);
    }
    return out;
  }

  /** FORGET over the hiprio queue (no reply: the device returns the buffer unwritten). */
  async forget(nodeid: bigint, nlookup: number): Promise<void> {
    const msg = new Uint8Array(FuseInHeader.SIZE + FuseForgetIn.SIZE);
    const v = new DataView(msg.buffer);
    v.setUint32(FuseInHeader.LEN, msg.length, true);
    v.setUint32(FuseInHeader.OPCODE, FuseOpcode.FORGET, true);
    v.setBigUint64(FuseInHeader.UNIQUE, this.unique++, true);
    v.setBigUint64(FuseInHeader.NODEID, nodeid, true);
    v.setBigUint64(FuseInHeader.SIZE + FuseForgetIn.NLOOKUP, BigInt(nlookup), true);
    await exchangeBytes(this.hiprio, msg, 0);
  }
}
