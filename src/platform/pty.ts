/**
 * Pseudo-terminals (native/pty.c): the master side of a new pty, read and written without
 * blocking, whether a program has the terminal open, and its window size. Linux only.
 */
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

interface PtyAddon {
  ptyOpen(): [number, string];
  ptyRead(fd: number, buf: Uint8Array, off: number, len: number): number;
  ptyWrite(fd: number, buf: Uint8Array, off: number, len: number): number;
  ptyPeerOpen(fd: number): boolean;
  ptyGetSize(fd: number): [number, number];
  ptySetSize(fd: number, cols: number, rows: number): void;
  watchReadable(fd: number, cb: () => void): object;
  stopWatch(handle: object): void;
  close(fd: number): void;
}

/** ptyRead / ptyWrite results besides a byte count. */
export const PtyIo = {
  /** Nothing to read / no room to write now. */
  WOULD_BLOCK: -1,
  /** No program has the terminal open (EIO on the master). */
  PEER_CLOSED: -2,
} as const;

function addon(): PtyAddon {
  const a = loadNativeAddon() as unknown as Partial<PtyAddon>;
  if (typeof a.ptyOpen !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no pty functions (rebuild it: npm run install)');
  return a as PtyAddon;
}

/** The master side of a pseudo-terminal (non-blocking, close-on-exec). */
export class PtyMaster {
  private readonly a: PtyAddon;
  private watch: object | null = null;
  private closed = false;

  private constructor(
    a: PtyAddon,
    readonly fd: number,
    /** The terminal's path for programs (/dev/pts/N). */
    readonly path: string,
  ) {
    this.a = a;
  }

  /** posix_openpt + grantpt + unlockpt + ptsname; the master's line discipline is raw. */
  static open(): PtyMaster {
    const a = addon();
    try {
      const [fd, path] = a.ptyOpen();
      return new PtyMaster(a, fd, path);
    } catch (e) {
      throw toPlatformError('pty open', e);
    }
  }

  /** Bytes read into `buf`, or PtyIo.WOULD_BLOCK / PEER_CLOSED. */
  read(buf: Uint8Array, off = 0, len = buf.length - off): number {
    try {
      return this.a.ptyRead(this.fd, buf, off, len);
    } catch (e) {
      throw toPlatformError('pty read', e);
    }
  }

  /** Bytes written from `buf`, or PtyIo.WOULD_BLOCK / PEER_CLOSED. */
  write(buf: Uint8Array, off = 0, len = buf.length - off): number {
    try {
      return this.a.ptyWrite(this.fd, buf, off, len);
    } catch (e) {
      throw toPlatformError('pty write', e);
    }
  }

  /** Whether a program has the terminal open (no hang-up on the master). */
  peerOpen(): boolean {
    try {
      return this.a.ptyPeerOpen(this.fd);
    } catch (e) {
      throw toPlatformError('pty poll', e);
    }
  }

  size(): { cols: number; rows: number } {
    try {
      const [cols, rows] = this.a.ptyGetSize(this.fd);
      return { cols, rows };
    } catch (e) {
      throw toPlatformError('pty size', e);
    }
  }

  setSize(cols: number, rows: number): void {
    try {
      this.a.ptySetSize(this.fd, cols, rows);
    } catch (e) {
      throw toPlatformError('pty set size', e);
    }
  }

  /** Calls `cb` while the master is readable (or hung up: stop watching then). One watch at a time. */
  watchReadable(cb: () => void): void {
    if (this.watch !== null || this.closed) return;
    try {
      this.watch = this.a.watchReadable(this.fd, cb);
    } catch (e) {
      throw toPlatformError('pty watch', e);
    }
  }

  stopWatching(): void {
    if (this.watch === null) return;
    this.a.stopWatch(this.watch);
    this.watch = null;
  }

  close(): void {
    if (this.closed) return;
    this.stopWatching();
    this.closed = true;
    try {
      this.a.close(this.fd);
    } catch (e) {
      throw toPlatformError('pty close', e);
    }
  }
}
