/**
 * READ and WRITE of virtio-fs off the event loop: the pread/pwrite runs on the libuv thread pool
 * (src/platform/fs-io.ts) into or out of a bounce buffer of the request's slot, never guest
 * memory, because a vhost-user memory-table change or a reset may unmap guest memory while a
 * pool thread works. WRITE copies its data from the chain into the bounce buffer before it is
 * queued; READ copies the bounce buffer into the chain at completion, on the JS thread, only
 * when the request is still live (the device's generation, bumped by a reset, a queue reset or a
 * queue stopping, e.g. for a memory-table change, is the one it was submitted in); a stale
 * request goes back to the queue server, which drops it without touching the ring.
 *
 * The file handle is pinned while its transfer runs (HostFsTables.pinHandle): RELEASE or DESTROY
 * meanwhile closes the descriptor only at the completion, so a pool thread never uses a number
 * the process reused for another file.
 *
 * Bounded: at most `maxSlots` transfers in flight (each with a bounce buffer of max_write bytes,
 * made when first needed); with none free the device serves the request synchronously.
 * Completions that arrive together (one turn of the event loop) are answered in one batch, so
 * the queue server sends one used-buffer notification for them.
 */
import type { QueueRequest } from '../../device/queue-server.js';
import type { DescriptorChain } from '../../queue/chain.js';
import { ChainCursor } from '../../queue/chain.js';
import { FsIoOp, createFsIoSlot, type FsIoSlot } from '../../platform/fs-io.js';
import { FuseInHeader, FuseOutHeader, FuseWriteOut } from '../../spec/fs.js';
import type { FileHandle } from './host-fs-tables.js';

export interface FsAsyncIoOwner {
  /** The device's generation now (a request submitted in another one is stale). */
  generation(): number;
  /** Ends the pinned transfer of `h` (the descriptor may close now). */
  unpin(h: FileHandle): void;
  /** Hands the request back to the queue server with `written` bytes in its writable part. */
  complete(req: QueueRequest, written: number): void;
}

class AsyncSlot {
  io: FsIoSlot | null = null;
  req: QueueRequest | null = null;
  chain: DescriptorChain | null = null;
  handle: FileHandle | null = null;
  op: FsIoOp = FsIoOp.READ;
  generation = 0;
  littleEndian = true;
  result = 0;
  /** fuse_out_header (+ fuse_write_out) of the reply; the request's unique copied in at submit. */
  readonly header = Buffer.alloc(FuseOutHeader.SIZE + FuseWriteOut.SIZE);
  readonly view = new DataView(this.header.buffer, this.header.byteOffset, this.header.length);
}

export class FsAsyncIo {
  private readonly free: AsyncSlot[] = [];
  private created = 0;
  private inFlight = 0;
  /** Completions waiting for the batch that answers them. */
  private readonly done: AsyncSlot[] = [];
  private flushScheduled = false;
  private readonly cursor = new ChainCursor(true);
  private readonly reader = new ChainCursor(false);
  private closed = false;
  private readonly flush = (): void => this.answer();

  constructor(
    private readonly maxSlots: number,
    private readonly bounceSize: number,
    private readonly owner: FsAsyncIoOwner,
  ) {}

  /** Transfers on the thread pool now. */
  get pending(): number {
    return this.inFlight;
  }

  /**
   * READ of `len` bytes at `position` of the pinned handle `h` for `req`; `inb` holds the
   * request (its unique). False when no slot is free (the caller serves it synchronously and
   * keeps the pin's responsibility: nothing was pinned here).
   */
  read(req: QueueRequest, h: FileHandle, position: number, len: number, inb: Buffer, littleEndian: boolean): boolean {
    const s = this.take(req, h, FsIoOp.READ, inb, littleEndian);
    if (s === null) return false;
    s.io!.submit(FsIoOp.READ, h.fd, position, len);
    return true;
  }

  /** WRITE of the `len` data bytes after `dataOffset` in `req`'s chain; false when no slot is free. */
  write(req: QueueRequest, h: FileHandle, position: number, len: number, dataOffset: number, inb: Buffer, littleEndian: boolean): boolean {
    const s = this.take(req, h, FsIoOp.WRITE, inb, littleEndian);
    if (s === null) return false;
    this.reader.reset(req.chain).skip(dataOffset);
    const got = this.reader.read(s.io!.bounce, 0, len);
    s.io!.submit(FsIoOp.WRITE, h.fd, position, got);
    return true;
  }

  private take(req: QueueRequest, h: FileHandle, op: FsIoOp, inb: Buffer, littleEndian: boolean): AsyncSlot | null {
    if (this.closed) return null;
    let s = this.free.pop();
    if (s === undefined) {
      if (this.created >= this.maxSlots) return null;
      const slot = new AsyncSlot();
      slot.io = createFsIoSlot(this.bounceSize, (result) => this.onDone(slot, result));
      this.created++;
      s = slot;
    }
    s.req = req;
    s.chain = req.chain;
    s.handle = h;
    s.op = op;
    s.generation = this.owner.generation();
    s.littleEndian = littleEndian;
    inb.copy(s.header, FuseOutHeader.UNIQUE, FuseInHeader.UNIQUE, FuseInHeader.UNIQUE + 8);
    this.inFlight++;
    return s;
  }

  /** On the JS thread: the transfer ended; answered with the others of this turn. */
  private onDone(s: AsyncSlot, result: number): void {
    s.result = result;
    this.done.push(s);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private answer(): void {
    this.flushScheduled = false;
    const done = this.done;
    for (let i = 0; i < done.length; i++) {
      const s = done[i]!;
      this.inFlight--;
      this.owner.unpin(s.handle!);
      const req = s.req!;
      const written = s.generation === this.owner.generation() ? this.reply(s) : 0;
      s.req = null;
      s.chain = null;
      s.handle = null;
      if (this.closed) s.io!.free();
      else this.free.push(s);
      this.owner.complete(req, written);
    }
    done.length = 0;
  }

  /** The reply into the live request's chain; bytes written. */
  private reply(s: AsyncSlot): number {
    const r = s.result;
    const le = s.littleEndian;
    const v = s.view;
    const chain = s.chain!;
    let len = FuseOutHeader.SIZE;
    if (r >= 0 && s.op === FsIoOp.READ) {
      len += this.cursor.reset(chain).skip(FuseOutHeader.SIZE) === FuseOutHeader.SIZE ? this.cursor.write(s.io!.bounce, 0, r) : 0;
    } else if (r >= 0) {
      v.setUint32(FuseOutHeader.SIZE + FuseWriteOut.SIZE_FIELD, r, le);
      v.setUint32(FuseOutHeader.SIZE + 4, 0, le);
      len += FuseWriteOut.SIZE;
    }
    v.setUint32(FuseOutHeader.LEN, len, le);
    v.setInt32(FuseOutHeader.ERROR, r < 0 ? r : 0, le);
    const headerBytes = s.op === FsIoOp.WRITE && r >= 0 ? len : FuseOutHeader.SIZE;
    this.cursor.reset(chain).write(s.header, 0, headerBytes);
    return len;
  }

  /** No more transfers; the slots' native parts go now, or as their transfers complete. */
  close(): void {
    this.closed = true;
    for (const s of this.free) s.io!.free();
    this.free.length = 0;
  }
}
