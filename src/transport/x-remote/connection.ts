/**
 * One x-remote link: the socket to a QEMU `-machine x-remote` process and the synchronous
 * request/reply conversation on it. Register accesses of the PCI driver are synchronous, and
 * the protocol answers each one with exactly one RET, so a request blocks this thread until the
 * reply arrives (a poll(2) with a time bound through the platform), as a vCPU blocks on an
 * MMIO exit in QEMU's own proxy. Only the first request (QEMU may still be starting) waits
 * asynchronously, so the process can be watched meanwhile.
 *
 * After any failure (timeout, malformed reply, peer gone) the stream can no longer be trusted
 * to be in step: the link is marked broken and every later request fails at once, with the
 * first failure as its cause.
 */
import type { FdWatcher, Platform } from '../../platform/types.js';
import {
  HEADER_SIZE,
  MAX_FDS,
  MAX_MESSAGE,
  REPLY_SIZE,
  type SysmemRegion,
  XRemoteCmd,
  decodeReplyHeader,
  encodeBarAccess,
  encodeConfigAccess,
  encodeHeaderOnly,
  encodeSyncSysmem,
} from './messages.js';
import { XRemoteError, XRemoteFault } from './x-remote-error.js';

/** The platform calls a link needs: the Platform plus a blocking readiness wait. */
export type XRemotePlatform = Platform & {
  /**
   * Whether `fd` is readable (or at end of stream), blocking this thread up to `timeoutMs`
   * (0 or absent: no wait); how a register access waits for its RET reply.
   */
  pollReadable(fd: number, timeoutMs?: number): boolean;
};

const ALL_ONES = 0xffff_ffff;

/** The synchronous request/reply link to one QEMU x-remote device process (module comment above). */
export class XRemoteConnection {
  /** Round trips (requests answered) so far. */
  roundTrips = 0;
  private readonly out = new Uint8Array(MAX_MESSAGE);
  private readonly reply = new Uint8Array(HEADER_SIZE + REPLY_SIZE);
  private readonly replyView = new DataView(this.reply.buffer);
  /** The last reply's u64 as two halves (no allocation per access). */
  private lo = 0;
  private hi = 0;
  private broken: XRemoteError | null = null;
  private closed = false;

  /** Takes ownership of `fd`, a connected stream socket to the x-remote process. */
  constructor(
    private readonly platform: XRemotePlatform,
    private readonly fd: number,
    /** Bound on each reply once the link is up. */
    readonly timeoutMs = 5000,
  ) {}

  /** False once `close` was called or a failure broke the link (every request then throws). */
  get isOpen(): boolean {
    return !this.closed && this.broken === null;
  }

  /**
   * The first round trip (a read of the vendor id), waiting without blocking the event loop,
   * so `abort` (the QEMU process exiting) or `timeoutMs` can end it. Resolves with the id.
   */
  async handshake(timeoutMs: number, abort?: Promise<string>): Promise<number> {
    this.send(encodeConfigAccess(this.out, false, 0, 2));
    const watchers: FdWatcher[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          watchers.push(this.platform.watchReadable(this.fd, () => resolve()));
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new XRemoteError(XRemoteFault.TIMEOUT, `no reply to the first request within ${timeoutMs} ms`)), timeoutMs);
        }),
        ...(abort ? [abort.then((why) => Promise.reject(new XRemoteError(XRemoteFault.PEER_CLOSED, why)))] : []),
      ]);
    } catch (e) {
      this.fail(e as XRemoteError);
    } finally {
      for (const w of watchers) w.stop();
      clearTimeout(timer);
    }
    this.receive(false);
    return this.lo & 0xffff;
  }

  /** PCI config read of `len` bytes at `addr` (the caller keeps addr + 4 within the space). */
  configRead(addr: number, len: number): number {
    this.send(encodeConfigAccess(this.out, false, addr, len));
    this.receive(false);
    return this.lo;
  }

  /** PCI config write of the low `len` bytes of `value` at `addr`; throws DEVICE_ERROR when the device refuses it. */
  configWrite(addr: number, len: number, value: number): void {
    this.send(encodeConfigAccess(this.out, true, addr, len, value));
    this.receive(true);
  }

  /** Read of `size` bytes at bus address `addr` of the memory or I/O space. */
  barRead(addr: number, size: number, memory: boolean): number {
    this.send(encodeBarAccess(this.out, false, addr, size, memory));
    this.receive(false);
    return size === 8 ? this.hi * 2 ** 32 + this.lo : this.lo;
  }

  /** Write of `size` bytes of `value` at bus address `addr` of the memory or I/O space; throws DEVICE_ERROR when refused. */
  barWrite(addr: number, size: number, memory: boolean, value: number): void {
    this.send(encodeBarAccess(this.out, true, addr, size, memory, value));
    this.receive(true);
  }

  /** Shares guest RAM: region i is `fds[i]` (sent as duplicates; the caller keeps its fds). No reply. */
  syncSysmem(regions: readonly SysmemRegion[], fds: readonly number[]): void {
    if (fds.length !== regions.length) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `${regions.length} regions with ${fds.length} fds`);
    this.send(encodeSyncSysmem(this.out, regions), fds);
  }

  /** Hands the device its INTx line: the interrupt eventfd and the resample eventfd. No reply. */
  setIrqfd(irqFd: number, resampleFd: number): void {
    this.send(encodeHeaderOnly(this.out, XRemoteCmd.SET_IRQFD), [irqFd, resampleFd]);
  }

  /** Resets the device model (its DeviceClass reset). */
  deviceReset(): void {
    this.send(encodeHeaderOnly(this.out, XRemoteCmd.DEVICE_RESET));
    this.receive(true);
  }

  /** Closes the socket (QEMU's message loop then ends and the process shuts down). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.platform.close(this.fd);
  }

  private check(): void {
    if (this.closed) throw new XRemoteError(XRemoteFault.CLOSED, 'the link is closed');
    if (this.broken) throw new XRemoteError(this.broken.fault, `the link broke earlier: ${this.broken.message}`, { cause: this.broken });
  }

  private fail(e: unknown): never {
    const err = e instanceof XRemoteError ? e : new XRemoteError(XRemoteFault.PEER_CLOSED, String(e), { cause: e });
    this.broken ??= err;
    throw err;
  }

  private send(len: number, fds?: readonly number[]): void {
    this.check();
    if (fds && fds.length >= MAX_FDS) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `${fds.length} fds (at most ${MAX_FDS - 1})`);
    let sent: number;
    try {
      sent = this.platform.sendmsg(this.fd, this.out, 0, len, fds);
    } catch (e) {
      this.fail(new XRemoteError(XRemoteFault.PEER_CLOSED, `send failed: ${(e as Error).message}`, { cause: e }));
    }
    // Messages are tiny and the peer answers each before the next: a full socket buffer (-1)
    // or a short send means the peer stopped reading.
    if (sent !== len) this.fail(new XRemoteError(XRemoteFault.PEER_CLOSED, `sent ${sent} of ${len} bytes`));
  }

  /**
   * Reads one RET reply. For a write, a non-zero value is the device's refusal; for a read,
   * UINT64_MAX is (no 1, 2 or 4-byte access can read it).
   */
  private receive(write: boolean): void {
    this.check();
    let size = 0;
    try {
      size = decodeReplyHeader(this.reply, this.readExact(0, HEADER_SIZE));
      if (size !== 0) this.readExact(HEADER_SIZE, size);
    } catch (e) {
      this.fail(e);
    }
    this.roundTrips++;
    this.lo = size === 0 ? 0 : this.replyView.getUint32(HEADER_SIZE, true);
    this.hi = size === 0 ? 0 : this.replyView.getUint32(HEADER_SIZE + 4, true);
    if (write ? this.lo !== 0 || this.hi !== 0 : this.lo === ALL_ONES && this.hi === ALL_ONES) {
      const v = `0x${this.hi.toString(16)}${this.lo.toString(16).padStart(8, '0')}`;
      this.fail(new XRemoteError(XRemoteFault.DEVICE_ERROR, `the device refused the access (reply ${v})`));
    }
  }

  /** Reads exactly `len` bytes into the reply buffer at `at`, blocking up to the time bound; returns how many fds came (closed). */
  private readExact(at: number, len: number): number {
    const deadline = Date.now() + this.timeoutMs;
    let got = 0;
    let fds = 0;
    while (got < len) {
      const r = this.platform.recvmsg(this.fd, this.reply, at + got, len - got, MAX_FDS);
      for (const fd of r.fds) this.platform.close(fd); // a reply carries none; never leak them
      fds += r.fds.length;
      if (r.bytes === 0) throw new XRemoteError(XRemoteFault.PEER_CLOSED, got === 0 && at === 0 ? 'the peer closed the link' : `the peer closed the link mid-reply (${at + got} of ${at + len} bytes)`);
      if (r.bytes > 0) {
        got += r.bytes;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || !this.platform.pollReadable(this.fd, left)) {
        throw new XRemoteError(XRemoteFault.TIMEOUT, `no reply within ${this.timeoutMs} ms (${at + got} of ${at + len} bytes)`);
      }
    }
    return fds;
  }
}
