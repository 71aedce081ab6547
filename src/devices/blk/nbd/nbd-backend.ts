/**
 * A virtio-blk backend on an NBD export (5.2 over NetworkBlockDevice/nbd doc/proto.md):
 *
 * | virtio-blk request            | NBD command                                             |
 * | ----------------------------- | ------------------------------------------------------- |
 * | IN                            | READ (split at the maximum payload)                     |
 * | OUT                           | WRITE (split likewise)                                  |
 * | FLUSH (and writethrough)      | FLUSH when the export offers SEND_FLUSH, else nothing   |
 * | DISCARD                       | TRIM when offered (advisory: skipped otherwise)         |
 * | WRITE_ZEROES, UNMAP=0         | WRITE_ZEROES with NO_HOLE (or written zeroes)           |
 * | WRITE_ZEROES, UNMAP=1         | WRITE_ZEROES without NO_HOLE: the server may punch      |
 *
 * Block size constraints: a request the server's minimum block size does not divide (a guest
 * segment of odd length, a write-zeroes edge) is done read-modify-write on the enclosing blocks
 * through a bounce buffer, one at a time so two partial writes of one block cannot race. This
 * path allocates; aligned requests (all of them when the minimum is 1, as qemu-nbd and nbdkit
 * report by default) go straight between guest memory and the socket.
 */
import type { Logger } from '../../../log.js';
import type { BlkBackend } from '../backend.js';
import { NbdClient, type NbdClientOptions } from './nbd-client.js';
import { NbdError, NbdFault } from './nbd-error.js';
import { NbdFlag } from './nbd-protocol.js';
import { formatNbdAddress, parseNbdUri, type NbdAddress } from './nbd-uri.js';

/** Largest TRIM or WRITE_ZEROES length sent in one command (a u32 field; servers cap lower). */
const MAX_ZERO_TRIM = 1 << 30;
const ZERO_CHUNK = 1 << 20;
let zeroes: Uint8Array | null = null;

/** Options of {@link NbdBackend.open}: the client's, plus read-only. */
export interface NbdBackendOptions extends NbdClientOptions {
  /** Refuse writes even when the export allows them. */
  readonly readOnly?: boolean;
}

/** What the export's block sizes mean for the virtio-blk configuration (5.2.4). */
export interface NbdDeviceHints {
  /** blk_size: the server's minimum block size, at least 512 and at most 64 KiB. */
  readonly blockSize: number;
  /** opt_io_size in bytes: the server's preferred block size. */
  readonly optIoSizeBytes: number;
  /**
   * size_max in bytes when the server's maximum payload is small enough to matter (below
   * 4 MiB), else null: larger segments are split by the backend anyway.
   */
  readonly sizeMax: number | null;
}

/** At or above this maximum payload, size_max is not offered (see NbdDeviceHints.sizeMax). */
const SIZE_MAX_LIMIT = 4 << 20;

/**
 * A virtio-blk backend (5.2) on an NBD export: requests split to the server's maximum payload,
 * unaligned ones done by read-modify-write at the server's minimum block size, and FLUSH, DISCARD
 * and WRITE_ZEROES mapped to the NBD commands the export offers (table in the module description).
 * Made by {@link NbdBackend.open}.
 */
export class NbdBackend implements BlkBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly canUnmap: boolean;
  /** `NBD export <URI>`, for logs and the CLI's summary. */
  readonly description: string;
  private readonly align: number;
  private readonly maxPayload: number;
  private readonly hasFlush: boolean;
  private readonly hasTrim: boolean;
  private readonly hasWriteZeroes: boolean;
  /** Read-modify-write operations run one after the other. */
  private rmw: Promise<void> = Promise.resolve();

  private constructor(
    /** The NBD client the backend sends its requests through (its `info` is the export as negotiated). */
    readonly client: NbdClient,
    address: NbdAddress,
    readOnly: boolean,
  ) {
    const info = client.info;
    this.size = info.size;
    this.readOnly = readOnly || (info.flags & NbdFlag.READ_ONLY) !== 0;
    this.hasFlush = client.supports(NbdFlag.SEND_FLUSH);
    this.hasTrim = client.supports(NbdFlag.SEND_TRIM);
    this.hasWriteZeroes = client.supports(NbdFlag.SEND_WRITE_ZEROES);
    // Only WRITE_ZEROES without NO_HOLE can deallocate (device/blk/23).
    this.canUnmap = this.hasWriteZeroes;
    this.align = info.minBlock;
    this.maxPayload = client.maxPayload;
    this.description = `NBD export ${formatNbdAddress(address)}`;
  }

  /** Connects to `uri` (or an address) and runs the handshake; rejects with an NbdError. */
  static async open(target: string | NbdAddress, opts: NbdBackendOptions = {}): Promise<NbdBackend> {
    const address = typeof target === 'string' ? parseNbdUri(target) : target;
    const client = await NbdClient.connect(address, opts);
    return new NbdBackend(client, address, opts.readOnly ?? false);
  }

  /**
   * blk_size, opt_io_size and size_max for the device configuration (5.2.4), derived from the
   * export's block sizes (NBD_INFO_BLOCK_SIZE) and the client's maximum payload.
   */
  get hints(): NbdDeviceHints {
    const info = this.client.info;
    return {
      blockSize: Math.min(65536, Math.max(512, info.minBlock)),
      optIoSizeBytes: Math.min(info.preferredBlock, this.maxPayload),
      sizeMax: this.maxPayload < SIZE_MAX_LIMIT ? this.maxPayload : null,
    };
  }

  private aligned(offset: number, len: number): boolean {
    return this.align === 1 || (offset % this.align === 0 && len % this.align === 0);
  }

  read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> | void {
    if (len === 0) return;
    if (!this.aligned(offset, len)) return this.serialized(() => this.readUnaligned(offset, dst, dstOff, len));
    return this.readAligned(offset, dst, dstOff, len);
  }

  private readAligned(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<void> {
    if (len <= this.maxPayload) return this.client.read(offset, dst, dstOff, len);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < len; done += this.maxPayload) {
      parts.push(this.client.read(offset + done, dst, dstOff + done, Math.min(this.maxPayload, len - done)));
    }
    return all(parts);
  }

  write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> | void {
    this.checkWritable();
    if (len === 0) return;
    if (!this.aligned(offset, len)) return this.serialized(() => this.writeUnaligned(offset, src, srcOff, len));
    return this.writeAligned(offset, src, srcOff, len);
  }

  private writeAligned(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<void> {
    if (len <= this.maxPayload) return this.client.write(offset, src, srcOff, len);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < len; done += this.maxPayload) {
      parts.push(this.client.write(offset + done, src, srcOff + done, Math.min(this.maxPayload, len - done)));
    }
    return all(parts);
  }

  flush(): Promise<void> | void {
    // Without SEND_FLUSH the server has no cache to flush (proto.md: the client MUST NOT send it).
    if (this.hasFlush) return this.client.flush();
  }

  discard(offset: number, len: number): Promise<void> | void {
    this.checkWritable();
    // A discard may do nothing (5.2.6.2: contents afterwards are unspecified); trim whole blocks only.
    if (!this.hasTrim) return;
    const a = this.align;
    const start = Math.ceil(offset / a) * a;
    const end = Math.floor((offset + len) / a) * a;
    if (end <= start) return;
    const parts: Promise<void>[] = [];
    for (let at = start; at < end; at += MAX_ZERO_TRIM) parts.push(this.client.trim(at, Math.min(MAX_ZERO_TRIM, end - at)));
    return all(parts);
  }

  writeZeroes(offset: number, len: number, unmap: boolean): Promise<void> | void {
    this.checkWritable();
    if (len === 0) return;
    const a = this.align;
    const start = Math.ceil(offset / a) * a;
    const end = Math.floor((offset + len) / a) * a;
    const parts: Promise<void>[] = [];
    // Unaligned edges: written zeroes through the read-modify-write path.
    if (end <= start) return this.writtenZeroes(offset, len);
    if (start > offset) parts.push(this.writtenZeroes(offset, start - offset));
    if (end < offset + len) parts.push(this.writtenZeroes(end, offset + len - end));
    if (this.hasWriteZeroes) {
      // UNMAP=0: the range must stay allocated (NO_HOLE); UNMAP=1: the server may deallocate.
      for (let at = start; at < end; at += MAX_ZERO_TRIM) parts.push(this.client.writeZeroes(at, Math.min(MAX_ZERO_TRIM, end - at), !unmap));
    } else {
      parts.push(this.writtenZeroes(start, end - start));
    }
    return all(parts);
  }

  /** Zeroes by WRITE, for servers without WRITE_ZEROES and for unaligned edges. */
  private async writtenZeroes(offset: number, len: number): Promise<void> {
    zeroes ??= new Uint8Array(ZERO_CHUNK);
    const step = Math.min(ZERO_CHUNK, this.maxPayload);
    for (let done = 0; done < len; done += step) {
      const r = this.write(offset + done, zeroes, 0, Math.min(step, len - done));
      if (r !== undefined) await r;
    }
  }

  private serialized(op: () => Promise<void>): Promise<void> {
    const p = this.rmw.then(op);
    this.rmw = p.then(noop, noop);
    return p;
  }

  private async readUnaligned(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<void> {
    const a = this.align;
    const start = Math.floor(offset / a) * a;
    const end = Math.min(this.size, Math.ceil((offset + len) / a) * a);
    const bounce = new Uint8Array(end - start);
    await this.readAligned(start, bounce, 0, bounce.length);
    dst.set(bounce.subarray(offset - start, offset - start + len), dstOff);
  }

  private async writeUnaligned(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<void> {
    const a = this.align;
    const start = Math.floor(offset / a) * a;
    const end = Math.min(this.size, Math.ceil((offset + len) / a) * a);
    const bounce = new Uint8Array(end - start);
    await this.readAligned(start, bounce, 0, bounce.length);
    bounce.set(src.subarray(srcOff, srcOff + len), offset - start);
    await this.writeAligned(start, bounce, 0, bounce.length);
  }

  private checkWritable(): void {
    if (this.readOnly) throw new NbdError(NbdFault.UNSUPPORTED, `${this.description} is read-only`);
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** For logs: the export as negotiated. */
  summary(logger?: Logger): string {
    const i = this.client.info;
    const s =
      `${this.description}: ${i.size} bytes, blocks ${i.minBlock}/${i.preferredBlock}/${i.maxBlock}, ` +
      `${this.client.connectionCount} connection${this.client.connectionCount === 1 ? '' : 's'}, ` +
      `${i.structuredReplies ? 'structured' : 'simple'} replies, flags 0x${i.flags.toString(16)}` +
      (this.client.tlsProtocol === null ? '' : `, over ${this.client.tlsProtocol}`);
    logger?.debug(s);
    return s;
  }
}

function noop(): void {}

function all(parts: Promise<void>[]): Promise<void> {
  return Promise.all(parts).then(noop);
}
