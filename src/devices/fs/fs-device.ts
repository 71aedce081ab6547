/**
 * 5.11 File System Device, device side: a host directory shared over FUSE. Queue 0 is hiprio
 * (FORGET, BATCH_FORGET: no reply), queues 1..num_request_queues carry requests (5.11.2); with
 * VIRTIO_FS_F_NOTIFICATION (offered only when the user enables it) queue 1 is the notification
 * queue (fs-notifier.ts: SETLKW results, cache invalidations) and requests start at 2. Every
 * request is served synchronously in the order popped by one FuseServer over one HostFs (the
 * queues share them, which is sound because a handler runs to completion), except SETLKW on a
 * held lock, which completes when the lock is free: so IN_ORDER is not offered.
 *
 * Guest input is untrusted: the request is copied from the chain into a bounded buffer
 * (max_write + headers; a longer request is refused by its length check), the reply is built in
 * a bounded buffer and copied into the device-writable part, never past it. A chain with an
 * unmapped buffer, or with no room for even a reply header, is returned with nothing written.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { copySpan, wordsOf } from '../../memory/guest-copy.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { FS_CONFIG_LAYOUT, FS_F_NOTIFICATION, FS_HIPRIO_QUEUE, FS_NOTIFICATION_QUEUE, FS_NOTIFY_BUF_SIZE, FsConfig } from '../../spec/fs.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DescriptorChain } from '../../queue/chain.js';
import type { FsAt } from '../../platform/fs-at.js';
import { FuseInHeader, FuseOpcode, FuseOutHeader } from '../../spec/fs.js';
import { VECTORED_SPANS_MAX, VECTORED_VIEWS_MAX, loadVectoredIo, type VectoredIo } from '../../platform/fs-io.js';
import { FUSE_DEFAULT_MAX_WRITE, FUSE_REPLY_ASYNC, FUSE_REPLY_DEFERRED, FUSE_REQUEST_OVERHEAD, FUSE_WRITE_HEAD, FuseServer, type FsCachePolicy, type FuseDataPath } from './fuse-server.js';
import { FsAsyncIo } from './fs-async-io.js';
import { FsReadBatch } from './fs-read-batch.js';
import { FsNotifier } from './fs-notifier.js';
import { HostFs, type HostFsOptions } from './host-fs.js';

/** Options of FsDevice. */
export interface FsDeviceOptions extends HostFsOptions {
  /** The host directory shared with the guest. */
  readonly sharedDir: string;
  /** The mount tag (5.11.4: UTF-8, at most 36 bytes, not NUL-terminated when 36). */
  readonly tag: string;
  /** Request queues (num_request_queues, device/fs/1: at least 1). Default 1. */
  readonly numRequestQueues?: number;
  /** Maximum queue size. Default 1024. */
  readonly queueSize?: number;
  /** max_write offered at FUSE_INIT (and the largest READ). Default 1 MiB. */
  readonly maxWrite?: number;
  /**
   * Offer VIRTIO_FS_F_NOTIFICATION (5.11.3): a notification queue, SETLKW answered at once and
   * completed by FUSE_NOTIFY_LOCK, `notifyInval*` for the embedder. Off by default: it changes
   * the queue layout and the SETLKW protocol for a driver that negotiates it.
   */
  readonly notification?: boolean;
  /**
   * READ and WRITE on the libuv thread pool (fs-async-io.ts: through a bounce buffer per
   * transfer, at most ASYNC_IO_SLOTS at once, synchronous beyond). Default false: see
   * docs/devices/fs.md for the measurements behind the default.
   */
  readonly asyncIo?: boolean;
  /**
   * READs gathered and read with one io_uring_enter per batch (fs-read-batch.ts) where the
   * kernel allows io_uring; default true (ignored with asyncIo). False: one pread per READ.
   */
  readonly ioUring?: boolean;
  /** virtiofsd's cache= policy: never / auto (default) / always. */
  readonly cache?: FsCachePolicy;
  /** Entry and attribute validity given to the driver, in seconds (overrides the policy's). */
  readonly cacheSeconds?: number;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/** Longest mount tag in bytes of UTF-8: the 36-byte `tag` field of struct virtio_fs_config (5.11.4). */
export const FS_TAG_MAX_BYTES = FsConfig.TAG_BYTES;
/** Transfers on the thread pool at once (each holds a bounce buffer of max_write bytes). */
export const ASYNC_IO_SLOTS = 16;

/**
 * The request queues' hand-over cadence at most (QueueServerOptions.handOverEvery): completions
 * go to a vhost-user front-end after half of what it made available, up to 8 (4 at 8 or fewer
 * in flight, as every device). Against the C front-end at 16 in flight, this rather than a
 * fixed 4 (with READs read up to 8 to an io_uring_enter): lookup+getattr +12-20 %,
 * create+unlink +2-7 %, 4 KiB reads +45 % (bench/README.md "s20-fs"): a used-buffer
 * notification that wakes the driver costs the device a call eventfd write, a few µs where
 * system calls trap to a hypervisor.
 */
export const FS_HAND_OVER_EVERY = 8;

/** FsDevice.readBatchCounts: what went through the READ batch (fs-read-batch.ts). */
export interface ReadBatchCounts {
  /** READs answered through the batch (a lone one read by pread included). */
  readonly reads: number;
  /** Batches read. */
  readonly batches: number;
}

/**
 * The virtio-fs device (5.11): a host folder served as FUSE (the FuseServer on the HostFs layer),
 * reached only through *at calls. What it implements and its normative coverage:
 * docs/devices/fs.md.
 */
export class FsDevice implements VirtioDevice {
  readonly deviceId = DeviceId.FS;
  /**
   * VIRTIO_FS_F_NOTIFICATION only with `notification`. IN_ORDER is not offered: a SETLKW
   * waiting for a lock completes after requests popped behind it.
   */
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = FsConfig.SIZE;

  /**
   * The host layer: the shared folder, reached only through `*at` calls relative to directories it
   * holds open.
   */
  readonly host: HostFs;
  /** The FUSE server that decodes requests and answers them from `host`. */
  readonly fuse: FuseServer;
  private readonly tag: Uint8Array;
  private readonly numRequestQueues: number;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly inBuf: Buffer;
  private readonly outBuf: Buffer;
  /** Word views of inBuf and outBuf (made once; null if a buffer did not start on a word). */
  private readonly in32: Uint32Array | null;
  private readonly out32: Uint32Array | null;
  private readonly logger: Logger | undefined;
  /** Requests returned without a reply because the chain could not hold one (for tests and logs). */
  malformed = 0;
  /** Bumped by every reset and queue reset: a deferred reply of an older generation is not written. */
  private generation = 0;
  /** The zero-copy data path's state for the request being served (no closure per request). */
  private ioChain: DescriptorChain | null = null;
  private ioReq: QueueRequest | null = null;
  /** READ/WRITE on the thread pool (asyncIo), or null. */
  private readonly asyncIo: FsAsyncIo | null;
  /** READs batched through io_uring (not with asyncIo), or null. */
  private readonly readBatch: FsReadBatch | null;
  /** The reply data area readQueued found: its first span (a view of guest memory, dropped after use). */
  private spanBytes: Uint8Array | null = null;
  private spanOffset = 0;
  private spanLen = 0;
  private spanCount = 0;
  private ioFd = -1;
  private ioPos = 0;
  /** Where the span being copied goes in (or comes from) inBuf / outBuf. */
  private copyAt = 0;
  private ioDone = 0;
  private ioErr = 0;
  private ioStop = false;
  private ioWrite = false;
  /** Spans gathered for one vectored call: (view index, offset, length) triples over ioViews. */
  private readonly ioSpans = new Float64Array(3 * VECTORED_SPANS_MAX);
  /**
   * The guest memory views of the call: the first ioViewCount entries. Kept between requests,
   * its length changed only when the views change (a store to an array's length is a slow
   * runtime call, and a push after emptying regrows the backing store: both per request before).
   */
  private readonly ioViews: Uint8Array[] = [];
  private ioViewCount = 0;
  private ioCount = 0;
  private ioPending = 0;
  private readonly vio: VectoredIo;
  /** The single-span data path (pread/pwrite into one guest view). */
  private readonly fsAt: FsAt;
  /** The notification queue (used only when VIRTIO_FS_F_NOTIFICATION is negotiated). */
  readonly notifier: FsNotifier;
  /** Negotiated at activation: queue 1 is the notification queue. */
  private notificationOn = false;

  constructor(opts: FsDeviceOptions) {
    const tag = Buffer.from(opts.tag, 'utf8');
    if (tag.length === 0 || tag.length > FS_TAG_MAX_BYTES) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `tag "${opts.tag}" must be 1..${FS_TAG_MAX_BYTES} bytes of UTF-8`);
    }
    this.tag = tag;
    const nrq = opts.numRequestQueues ?? 1;
    if (!Number.isInteger(nrq) || nrq < 1 || nrq > 64) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `numRequestQueues ${nrq} not in 1..64`);
    this.numRequestQueues = nrq;
    const qs = opts.queueSize ?? 1024;
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 2..32768`);
    const notification = opts.notification ?? false;
    this.offeredFeatures = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET | (notification ? FS_F_NOTIFICATION : 0n);
    // With the feature offered the device has the notification queue too; a driver that does
    // not negotiate it uses queue 1 as a request queue (and the last queue stays unused).
    this.queueMaxSizes = new Array<number>(1 + nrq + (notification ? 1 : 0)).fill(qs);
    this.logger = opts.logger;
    this.host = new HostFs(opts.sharedDir, opts);
    const fuseOpts = {
      maxWrite: opts.maxWrite ?? FUSE_DEFAULT_MAX_WRITE,
      ...(opts.cache !== undefined ? { cache: opts.cache } : {}),
      ...(opts.cacheSeconds !== undefined ? { cacheSeconds: opts.cacheSeconds } : {}),
    };
    this.fuse = new FuseServer(this.host, fuseOpts);
    this.vio = loadVectoredIo();
    this.fsAt = this.host.fsAt;
    const dataPath: FuseDataPath = { readInto: (fd, pos, len) => this.readInto(fd, pos, len), writeFrom: (fd, pos, len) => this.writeFrom(fd, pos, len) };
    this.asyncIo = opts.asyncIo === true ? new FsAsyncIo(ASYNC_IO_SLOTS, this.fuse.maxWrite, this.asyncOwner()) : null;
    if (this.asyncIo !== null) {
      dataPath.readAsync = (fh, pos, len) => this.readAsync(fh, pos, len);
      dataPath.writeAsync = (fh, pos, len) => this.writeAsync(fh, pos, len);
    }
    this.readBatch =
      this.asyncIo === null && opts.ioUring !== false
        ? new FsReadBatch({
            complete: (req, written) => void this.server.complete(req, written),
            pread: (fd, bytes, at, len, pos) => this.fsAt.pread(fd, bytes, at, len, pos),
            batchLimit: (i) => this.server.handOverAt(i),
          })
        : null;
    if (this.readBatch !== null) dataPath.readQueued = (fd, pos, len) => this.readQueued(fd, pos, len);
    this.fuse.dataPath = dataPath;
    this.inBuf = Buffer.alloc(this.fuse.maxWrite + FUSE_REQUEST_OVERHEAD);
    this.outBuf = Buffer.alloc(this.fuse.maxWrite + FUSE_REQUEST_OVERHEAD);
    this.in32 = wordsOf(this.inBuf);
    this.out32 = wordsOf(this.outBuf);
    const serve = (req: QueueRequest): number | Promise<number> | undefined => this.serve(req);
    this.notifier = new FsNotifier(() => this.fuse.littleEndian);
    this.fuse.notifier = this.notifier;
    this.server = new QueueServer({
      name: 'virtio-fs',
      numQueues: this.queueMaxSizes.length,
      handOverEvery: FS_HAND_OVER_EVERY,
      logger: opts.logger,
      handler: (i) => (this.notificationOn && i === FS_NOTIFICATION_QUEUE ? null : serve),
      queueStarted: (i, vq) => {
        if (this.notificationOn && i === FS_NOTIFICATION_QUEUE && this.server.context !== null) this.notifier.start(this.server.context, vq);
      },
      queueStopped: (i) => {
        this.readBatch?.flush();
        // Its requests on the thread pool are stale now (a memory-table change restarts rings):
        // their completions must not touch the chain.
        this.generation++;
        if (this.notificationOn && i === FS_NOTIFICATION_QUEUE) this.notifier.stop();
      },
      // The driver made buffers available: waiting notifications go out.
      queueNotified: (i) => {
        if (i === FS_NOTIFICATION_QUEUE) this.notifier.flush();
      },
      // The READs of the round are read now and go out with its other replies.
      roundEnd: () => this.readBatch?.flush(),
    });
  }

  /** One FUSE request: copied in (bounded), served, the reply copied out; returns bytes written (nothing: answered later by the thread-pool path). */
  private serve(req: QueueRequest): number | Promise<number> | undefined {
    const { chain, queueIndex } = req;
    if (chain.fault !== null) {
      this.malformed++;
      return 0;
    }
    const inLen = chain.readableBytes;
    const want = Math.min(inLen, this.inBuf.length);
    this.reader.reset(chain);
    let copied: number;
    if (this.fuse.initialized && want > FUSE_WRITE_HEAD) {
      // A WRITE's data stays in guest memory (written to the file from there); others are copied whole.
      copied = this.copyIn(0, FUSE_WRITE_HEAD);
      const op = this.fuse.littleEndian ? this.inBuf.readUInt32LE(FuseInHeader.OPCODE) : this.inBuf.readUInt32BE(FuseInHeader.OPCODE);
      if (op !== FuseOpcode.WRITE) copied += this.copyIn(copied, want - copied);
    } else copied = this.copyIn(0, want);
    // Queued READs are read before any other request runs: nothing (a RELEASE, a DESTROY) can
    // close a descriptor they use, and the order of effects stays the order popped.
    if (this.readBatch !== null && this.readBatch.pending > 0 && !this.isRead(copied)) this.readBatch.flush();
    this.ioChain = chain;
    this.ioReq = req;
    const wasInitialized = this.fuse.initialized;
    const replyLen = this.fuse.handle(this.inBuf, inLen, this.outBuf, chain.writableBytes, copied);
    this.ioChain = null;
    this.ioReq = null;
    if (replyLen === FUSE_REPLY_ASYNC) return undefined;
    if (!wasInitialized && this.fuse.initialized) {
      const order = this.fuse.littleEndian ? 'little-endian' : 'big-endian';
      const io = this.asyncIo !== null ? 'READ/WRITE on the thread pool' : this.readBatch !== null ? 'READ/WRITE on the event loop, READs batched through io_uring' : 'READ/WRITE on the event loop';
      this.logger?.info(`virtio-fs: FUSE_INIT: protocol 7.${this.fuse.minor}, ${order} driver, max_write ${this.fuse.maxWrite}, ${io}`);
    }
    if (replyLen === FUSE_REPLY_DEFERRED) {
      // SETLKW waiting for a lock: the reply is written when it ends (the chain stays ours till
      // then; a reset in between cancels the request in the queue server, which drops it).
      // After a reset the chain is no longer ours: nothing is written (the server drops the request).
      const generation = this.generation;
      return this.fuse.takeDeferred().then((reply) => (generation === this.generation ? new ChainCursor(true).reset(chain).write(reply, 0, reply.length) : 0));
    }
    if (replyLen === 0) {
      // FORGET and BATCH_FORGET (hiprio) have no reply; anything else here lacked room for one.
      if (queueIndex !== FS_HIPRIO_QUEUE && chain.writableBytes < 16) this.malformed++;
      return 0;
    }
    if (this.fuse.replyInPlace) {
      // READ: the data is already in guest memory after the header; only the header goes in.
      this.writer.reset(chain).write(this.outBuf, 0, FuseOutHeader.SIZE);
      return replyLen;
    }
    this.copyAt = 0;
    return this.writer.reset(chain).spans(replyLen, this.copyOutSpan);
  }

  /** Whether the request copied into inBuf (`copied` bytes) is a READ. */
  private isRead(copied: number): boolean {
    if (copied < FuseInHeader.OPCODE + 4) return false;
    const op = this.fuse.littleEndian ? this.inBuf.readUInt32LE(FuseInHeader.OPCODE) : this.inBuf.readUInt32BE(FuseInHeader.OPCODE);
    return op === FuseOpcode.READ;
  }

  /** The next `len` bytes of the request (this.reader) into inBuf at `at`; bytes copied. */
  private copyIn(at: number, len: number): number {
    this.copyAt = at;
    return this.reader.spans(len, this.copyInSpan);
  }

  /**
   * Copies between one guest span (inside its region: the cursor checked it) and inBuf/outBuf
   * at copyAt. Requests and replies are mostly under WORD_COPY_MAX bytes: copySpan moves them
   * in 32-bit words when the guest span and the buffer are equally aligned (a Linux guest's
   * kmalloc'ed header and argument buffers usually are), without allocating; a byte loop cost
   * 6.7 % of the lookup job's back-end samples (perf, bench/README.md "s19-fs"; 3.2 % after).
   */
  private readonly copyInSpan = (bytes: Uint8Array, offset: number, len: number, words: Uint32Array | null): void => {
    const at = this.copyAt;
    copySpan(bytes, words, offset, this.inBuf, this.in32, at, len);
    this.copyAt = at + len;
  };

  private readonly copyOutSpan = (bytes: Uint8Array, offset: number, len: number, words: Uint32Array | null): void => {
    const at = this.copyAt;
    copySpan(this.outBuf, this.out32, at, bytes, words, offset, len);
    this.copyAt = at + len;
  };

  private asyncOwner(): ConstructorParameters<typeof FsAsyncIo>[2] {
    return {
      generation: () => this.generation,
      unpin: (h) => this.host.unpinHandle(h),
      complete: (req, written) => void this.server.complete(req, written),
    };
  }

  /** READs answered through the io_uring batch so far, and the batches (null: READs are not batched). */
  get readBatchCounts(): ReadBatchCounts | null {
    return this.readBatch === null ? null : { reads: this.readBatch.batchedReads, batches: this.readBatch.batches };
  }

  /** READs and WRITEs on the thread pool now (asyncIo). */
  get asyncIoPending(): number {
    return this.asyncIo?.pending ?? 0;
  }

  /** READ on the thread pool: the handle pinned till the completion; false when no slot is free. */
  private readAsync(fh: number, position: number, len: number): boolean {
    const h = this.host.pinHandle(fh);
    if (this.asyncIo!.read(this.ioReq!, h, position, len, this.inBuf, this.fuse.littleEndian)) return true;
    this.host.unpinHandle(h);
    return false;
  }

  private writeAsync(fh: number, position: number, len: number): boolean {
    const h = this.host.pinHandle(fh);
    if (this.asyncIo!.write(this.ioReq!, h, position, len, FUSE_WRITE_HEAD, this.inBuf, this.fuse.littleEndian)) return true;
    this.host.unpinHandle(h);
    return false;
  }

  /**
   * READ queued for the batch (fs-read-batch.ts) when its reply data area is one guest buffer
   * (a 4 KiB READ into one page; a longer one over several buffers is read now with preadv).
   */
  private readQueued(fd: number, position: number, len: number): boolean {
    this.spanCount = 0;
    this.writer.reset(this.ioChain!).skip(FuseOutHeader.SIZE);
    this.writer.spans(len, this.noteSpan);
    const bytes = this.spanBytes;
    this.spanBytes = null;
    if (this.spanCount !== 1 || this.spanLen !== len || bytes === null) return false;
    return this.readBatch!.queue(this.ioReq!, fd, bytes, this.spanOffset, len, position, this.inBuf, this.fuse.littleEndian);
  }

  private readonly noteSpan = (bytes: Uint8Array, offset: number, len: number): void => {
    if (this.spanCount++ > 0) return;
    this.spanBytes = bytes;
    this.spanOffset = offset;
    this.spanLen = len;
  };

  /** READ's data path: one preadv straight into the chain's writable spans after the out header. */
  private readInto(fd: number, position: number, len: number): number {
    this.startIo(fd, position, false);
    this.writer.reset(this.ioChain!).skip(FuseOutHeader.SIZE);
    this.writer.spans(len, this.collectSpan);
    this.flushIo();
    return this.ioDone === 0 && this.ioErr !== 0 ? -this.ioErr : this.ioDone;
  }

  /** WRITE's data path: one pwritev straight from the chain's readable spans after the WRITE head. */
  private writeFrom(fd: number, position: number, len: number): number {
    this.startIo(fd, position, true);
    this.reader.reset(this.ioChain!).skip(FUSE_WRITE_HEAD);
    this.reader.spans(len, this.collectSpan);
    this.flushIo();
    return this.ioDone === 0 && this.ioErr !== 0 ? -this.ioErr : this.ioDone;
  }

  private startIo(fd: number, position: number, write: boolean): void {
    this.ioFd = fd;
    this.ioPos = position;
    this.ioDone = 0;
    this.ioErr = 0;
    this.ioStop = false;
    this.ioWrite = write;
    this.ioCount = 0;
    this.ioPending = 0;
    this.ioViewCount = 0;
  }

  /**
   * One span of guest memory, gathered for the vectored call (a Linux guest's 128 KiB request
   * is 32 page-sized buffers: one system call instead of 32). Past VECTORED_SPANS_MAX spans or
   * VECTORED_VIEWS_MAX regions the gathered ones go first.
   */
  private readonly collectSpan = (bytes: Uint8Array, offset: number, len: number): void => {
    if (this.ioStop) return;
    let vi = this.ioViewCount - 1;
    if (vi < 0 || this.ioViews[vi] !== bytes) {
      vi = this.viewIndex(bytes);
      if (vi < 0) {
        if (this.ioViewCount === VECTORED_VIEWS_MAX) {
          this.flushIo();
          if (this.ioStop) return;
        }
        vi = this.addView(bytes);
      }
    }
    if (this.ioCount === VECTORED_SPANS_MAX) {
      this.flushIo();
      if (this.ioStop) return;
      vi = this.addView(bytes);
    }
    const at = 3 * this.ioCount++;
    this.ioSpans[at] = vi;
    this.ioSpans[at + 1] = offset;
    this.ioSpans[at + 2] = len;
    this.ioPending += len;
  };

  /** The gathered spans in one preadv/pwritev; a short transfer (end of file, full disk) or an error ends the request's I/O. */
  private flushIo(): void {
    if (this.ioCount === 0) return;
    const pos = this.ioPos + this.ioDone;
    // The addon takes every element of the array as a view of the call.
    if (this.ioViews.length !== this.ioViewCount) this.ioViews.length = this.ioViewCount;
    let r: number;
    if (this.ioCount === 1) {
      // One span (a 4 KiB READ into one page, a small WRITE): pread/pwrite, whose binding takes
      // the view and numbers, not an array of views and a span table (fewer N-API conversions).
      const view = this.ioViews[this.ioSpans[0]!]!;
      const at = this.ioSpans[1]!;
      const len = this.ioSpans[2]!;
      r = this.ioWrite ? this.fsAt.pwrite(this.ioFd, view, at, len, pos) : this.fsAt.pread(this.ioFd, view, at, len, pos);
    } else r = this.ioWrite ? this.vio.pwritev(this.ioFd, pos, this.ioViews, this.ioSpans, this.ioCount) : this.vio.preadv(this.ioFd, pos, this.ioViews, this.ioSpans, this.ioCount);
    if (r < 0) this.ioErr = -r;
    else this.ioDone += r;
    if (r !== this.ioPending) this.ioStop = true;
    this.ioCount = 0;
    this.ioPending = 0;
    this.ioViewCount = 0;
  }

  /** The index of `bytes` among the call's views, or -1. */
  private viewIndex(bytes: Uint8Array): number {
    for (let i = 0; i < this.ioViewCount; i++) if (this.ioViews[i] === bytes) return i;
    return -1;
  }

  /** `bytes` as the call's next view (the array left as it is when it already holds it there); its index. */
  private addView(bytes: Uint8Array): number {
    const vi = this.ioViewCount++;
    if (vi < this.ioViews.length) {
      if (this.ioViews[vi] !== bytes) this.ioViews[vi] = bytes;
    } else this.ioViews.push(bytes);
    return vi;
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    // notify_buf_size (device/fs/2): the largest message this device emits; present only with NOTIFICATION.
    encodeConfig(FS_CONFIG_LAYOUT, { numRequestQueues: this.numRequestQueues, notifyBufSize: FS_NOTIFY_BUF_SIZE }, features, offset, dst, littleEndian);
    // The tag is bytes (5.11.4): copied where the window overlaps it, the rest of it stays 0.
    for (let i = 0; i < dst.length; i++) {
      const at = offset + i;
      if (at < FsConfig.TAG_BYTES) dst[i] = at < this.tag.length ? this.tag[at]! : 0;
    }
  }

  /** driver/fs/1: the driver must not write the configuration; a write changes nothing. */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.notificationOn = (ctx.features & FS_F_NOTIFICATION) !== 0n;
    this.server.activate(ctx);
    // Queue 1 has no handler then: it starts on the driver's first notification, or here.
    if (this.notificationOn) this.server.onQueueNotify(FS_NOTIFICATION_QUEUE);
  }

  /** FUSE_NOTIFY_INVAL_INODE to the driver (false: no notification queue, or too many waiting). */
  notifyInvalInode(nodeid: number, offset = 0, len = 0): boolean {
    return this.notifier.active && this.notifier.invalInode(nodeid, offset, len);
  }

  /** FUSE_NOTIFY_INVAL_ENTRY: the driver forgets `name` in directory `parent` (its cache). */
  notifyInvalEntry(parent: number, name: Uint8Array): boolean {
    return this.notifier.active && this.notifier.invalEntry(parent, name);
  }

  /** FUSE_NOTIFY_DELETE: `name` (inode `child`) in `parent` is gone. */
  notifyDelete(parent: number, child: number, name: Uint8Array): boolean {
    return this.notifier.active && this.notifier.delete(parent, child, name);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device reset: every open handle closed and every inode forgotten; the driver must INIT again. */
  reset(): void {
    // Queued READs are read while their descriptors and buffers are still the device's.
    this.readBatch?.flush();
    this.generation++;
    this.ioViews.length = 0; // no view of the old guest memory kept past a reset
    this.server.reset();
    this.notifier.clear();
    this.fuse.reset();
  }

  resetQueue(index: number): void {
    this.readBatch?.flush();
    this.generation++;
    this.server.resetQueue(index);
  }

  /** Releases the host descriptors (the root's too): for a device that will not be used again. */
  close(): void {
    this.readBatch?.close();
    this.generation++;
    this.asyncIo?.close();
    this.server.reset();
    this.fuse.reset();
    this.host.close();
  }
}
