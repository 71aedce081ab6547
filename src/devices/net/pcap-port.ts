/**
 * A capture of the switch's traffic in the classic pcap format (magic 0xa1b2c3d4, version 2.4,
 * link type 1 = Ethernet, microsecond timestamps): every frame the switch accepts from any port,
 * through `NetSwitch.monitor`, as Wireshark and tcpdump read it.
 *
 * A frame with a partial checksum (NEEDS_CSUM) is completed in the record (not in the frame, which
 * the other ports still receive with the offload) so the capture shows what goes on a wire.
 * Records go into a
 * fixed buffer written out when full, by `flush()` (the CLI flushes every second) and on close:
 * no allocation per frame. `maxBytes` bounds the file (a guest cannot fill the disk); frames
 * beyond it are counted in `dropped`.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import type { NetSwitch, SwitchMonitor } from './switch.js';

/** Magic of a classic pcap file with microsecond timestamps (written little-endian; readers detect the order from it). */
export const PCAP_MAGIC = 0xa1b2c3d4;
/** pcap link type of the records: 1, Ethernet (LINKTYPE_ETHERNET). */
export const PCAP_LINKTYPE_ETHERNET = 1;
/** Largest frame a record holds (snaplen). */
export const PCAP_SNAPLEN = 65535;
/** Bytes of the pcap global header (magic, version 2.4, thiszone, sigfigs, snaplen, link type). */
export const PCAP_FILE_HEADER = 24;
/** Bytes of a pcap record header (ts_sec, ts_usec, incl_len, orig_len), before each frame. */
export const PCAP_RECORD_HEADER = 16;
/** Default bound of the file: 1 GiB. */
export const DEFAULT_PCAP_MAX_BYTES = 1 << 30;
const BUFFER_BYTES = 256 * 1024;

/** Options of PcapPort. */
export interface PcapPortOptions {
  /** The file (created or truncated). */
  readonly path: string;
  /** The file stops growing at this size (default 1 GiB). */
  readonly maxBytes?: number;
  /** The clock, for tests: milliseconds since the epoch. */
  readonly now?: () => number;
}

export class PcapPort implements NetPort {
  readonly name: string;
  /** Frames written, and frames not written (file full, or closed). */
  frames = 0;
  /** Frames not written: the file reached maxBytes, or the port was closed. */
  dropped = 0;
  private readonly fd: number;
  private readonly buf = new Uint8Array(BUFFER_BYTES);
  private readonly view = new DataView(this.buf.buffer);
  private used = 0;
  private fileBytes = 0;
  private readonly maxBytes: number;
  private readonly now: () => number;
  private monitorHandle: SwitchMonitor | null = null;
  private closed = false;
  /** The write error that stopped the capture (disk full, say), or null. */
  failure: Error | null = null;

  constructor(opts: PcapPortOptions) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_PCAP_MAX_BYTES;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < PCAP_FILE_HEADER) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `pcap maxBytes ${this.maxBytes}`);
    this.now = opts.now ?? Date.now;
    this.name = `pcap ${opts.path}`;
    try {
      this.fd = openSync(opts.path, 'w', 0o644);
    } catch (e) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `cannot create ${opts.path}: ${(e as Error).message}`, { cause: e });
    }
    const v = this.view;
    v.setUint32(0, PCAP_MAGIC, true); // written little-endian: readers detect the order from it
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true); // thiszone
    v.setUint32(12, 0, true); // sigfigs
    v.setUint32(16, PCAP_SNAPLEN, true);
    v.setUint32(20, PCAP_LINKTYPE_ETHERNET, true);
    this.used = PCAP_FILE_HEADER;
    this.fileBytes = PCAP_FILE_HEADER;
  }

  /** Starts capturing everything `sw` forwards. */
  captureFrom(sw: NetSwitch): void {
    this.monitorHandle?.detach();
    this.monitorHandle = sw.monitor(this);
  }

  /** NetPort: one frame to record. */
  deliver(p: NetPacket): void {
    const len = Math.min(p.length, PCAP_SNAPLEN);
    const rec = PCAP_RECORD_HEADER + len;
    if (this.closed || this.failure !== null || this.fileBytes + rec > this.maxBytes) {
      this.dropped++;
      return;
    }
    if (this.used + rec > this.buf.length && !this.tryFlush()) {
      this.dropped++;
      return;
    }
    const ms = this.now();
    const sec = Math.floor(ms / 1000);
    if (rec > this.buf.length) {
      // Only with a huge frame and a small buffer: never with these sizes, kept for safety.
      this.dropped++;
      return;
    }
    const v = this.view;
    const at = this.used;
    v.setUint32(at, sec, true);
    v.setUint32(at + 4, Math.floor((ms - sec * 1000) * 1000), true);
    v.setUint32(at + 8, len, true);
    v.setUint32(at + 12, p.length, true);
    copyBytes(p.data, this.buf, at + PCAP_RECORD_HEADER, len);
    if (p.needsCsum) completeInRecord(this.buf, at + PCAP_RECORD_HEADER, len, p.csumStart, p.csumOffset);
    this.used += rec;
    this.fileBytes += rec;
    this.frames++;
  }

  /** Writes buffered records to the file. */
  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    this.used = 0;
  }

  /** flush() that records a write error instead of throwing (the switch's path must not throw). */
  tryFlush(): boolean {
    try {
      this.flush();
      return true;
    } catch (e) {
      this.failure = e as Error;
      this.used = 0;
      return false;
    }
  }

  /** Stops capturing, flushes and closes the file. */
  close(): void {
    if (this.closed) return;
    this.monitorHandle?.detach();
    this.monitorHandle = null;
    try {
      this.flush();
    } finally {
      this.closed = true;
      closeSync(this.fd);
    }
  }
}

/** src[0, len) to dst at `at`, without the view object a subarray would allocate per frame. */
function copyBytes(src: Uint8Array, dst: Uint8Array, at: number, len: number): void {
  Buffer.prototype.copy.call(src, dst, at, 0, len);
}

/**
 * Completes a partial checksum (5.1.6.2) in a record's copy of the frame at `base`: the folded,
 * inverted 16-bit sum from csumStart to the end, stored big-endian at csumStart + csumOffset.
 * Offsets outside the captured bytes leave the record as it is.
 */
function completeInRecord(d: Uint8Array, base: number, len: number, csumStart: number, csumOffset: number): void {
  const at = csumStart + csumOffset;
  if (csumStart >= len || at + 2 > len) return;
  let sum = 0;
  const end = base + len;
  let i = base + csumStart;
  for (; i + 1 < end; i += 2) sum += (d[i]! << 8) | d[i + 1]!;
  if (i < end) sum += d[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const csum = ~sum & 0xffff;
  d[base + at] = csum >>> 8;
  d[base + at + 1] = csum & 0xff;
}
