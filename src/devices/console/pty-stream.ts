/**
 * A pseudo-terminal's master as a Duplex for a console port (`--port ...,pty`): what a program
 * writes to the terminal comes out of the Readable, what is written goes to the terminal.
 * 'peeropen' / 'peerclose' tell when a program has the terminal open (the port's host side),
 * 'resize' when the terminal's size changed. Bounded both ways: reading stops while the
 * Readable is full (the terminal's own buffer then fills and its writer blocks), and a write
 * completes only once the terminal took all of it (retried while it would block).
 */
import { Duplex } from 'node:stream';
import { closeSync, constants, openSync } from 'node:fs';
import { PtyIo, PtyMaster } from '../../platform/pty.js';

/** How often the peer state and size are checked (there is no event for either on the master). */
const CHECK_MS = 200;
/** Retry delay of a write the terminal had no room for. */
const WRITE_RETRY_MS = 10;
const READ_CHUNK = 16 * 1024;

export class PtyStream extends Duplex {
  readonly path: string;
  private readonly master: PtyMaster;
  private peer = false;
  private wantRead = false;
  private cols = 0;
  private rows = 0;
  private readonly timer: NodeJS.Timeout;
  private writeTimer: NodeJS.Timeout | null = null;
  private readBuf = Buffer.allocUnsafe(READ_CHUNK);

  constructor(size: { cols: number; rows: number }) {
    super({ readableHighWaterMark: 16 * 1024, writableHighWaterMark: 16 * 1024, allowHalfOpen: true });
    this.master = PtyMaster.open();
    this.path = this.master.path;
    this.master.setSize(size.cols, size.rows);
    this.cols = size.cols;
    this.rows = size.rows;
    // Opened and closed once, the master reports a hang-up until a program opens the terminal:
    // so "nobody has it open" is visible from the start, not only after a first user left.
    closeSync(openSync(this.path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK));
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  /** Whether a program has the terminal open. */
  get peerOpen(): boolean {
    return this.peer;
  }

  get size(): { cols: number; rows: number } {
    return { cols: this.cols, rows: this.rows };
  }

  /** Sets the terminal's size (SIGWINCH for its foreground program). */
  setSize(cols: number, rows: number): void {
    this.master.setSize(cols, rows);
    this.cols = cols;
    this.rows = rows;
  }

  /** Checks the peer state and the size now (also run every CHECK_MS). */
  check(): void {
    if (this.destroyed) return;
    const open = this.master.peerOpen();
    if (open !== this.peer) {
      this.peer = open;
      if (open && this.wantRead) this.master.watchReadable(() => this.pull());
      this.emit(open ? 'peeropen' : 'peerclose');
    }
    if (open) {
      const s = this.master.size();
      if (s.cols !== this.cols || s.rows !== this.rows) {
        this.cols = s.cols;
        this.rows = s.rows;
        this.emit('resize', s.cols, s.rows);
      }
    }
  }

  override _read(): void {
    this.wantRead = true;
    if (this.peer) this.master.watchReadable(() => this.pull());
  }

  private pull(): void {
    for (;;) {
      const buf = this.readBuf;
      const n = this.master.read(buf);
      if (n === PtyIo.WOULD_BLOCK) return;
      if (n === PtyIo.PEER_CLOSED) {
        // Hung up: the watcher would fire without end; the timer notices a new peer.
        this.master.stopWatching();
        this.check();
        return;
      }
      // The bytes go to the consumer: the next read gets a fresh buffer (one per read that got data).
      this.readBuf = Buffer.allocUnsafe(READ_CHUNK);
      if (!this.push(buf.subarray(0, n))) {
        this.wantRead = false;
        this.master.stopWatching();
        return;
      }
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    let off = 0;
    const attempt = (): void => {
      this.writeTimer = null;
      if (this.destroyed) return;
      while (off < chunk.length) {
        const n = this.master.write(chunk, off, chunk.length - off);
        if (n === PtyIo.PEER_CLOSED) break; // nobody to show it to: as a terminal with no reader
        if (n === PtyIo.WOULD_BLOCK) {
          this.writeTimer = setTimeout(attempt, WRITE_RETRY_MS);
          return;
        }
        off += n;
      }
      cb();
    };
    attempt();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearInterval(this.timer);
    if (this.writeTimer) clearTimeout(this.writeTimer);
    try {
      this.master.close();
    } catch {
      // already gone
    }
    cb(err);
  }
}
