/**
 * A minimal QMP (QEMU Machine Protocol) client over a Unix socket: the greeting, capability
 * negotiation, then one command at a time (JSON lines; asynchronous events are kept, not
 * waited for). Used by startXRemoteDevice to know QEMU's main loop runs (its start-up system
 * reset is over, see start-device.ts), and by device tests that steer a device model from the
 * host side (balloon targets, input events, screendumps, qom-set).
 */
import { type Socket, createConnection } from 'node:net';
import { ErrorCode, VirtioError } from '../../errors.js';

/** Bound on buffered bytes of one QMP line: a reply larger than this is refused, not buffered. */
const MAX_LINE = 16 << 20;
const MAX_EVENTS = 1000;

/** An asynchronous QMP event message, as QEMU sent it (its timestamp dropped). */
export interface QmpEvent {
  /** The event name, e.g. `RESET`, `SHUTDOWN`, `BALLOON_CHANGE`. */
  readonly event: string;
  /** The event's `data` member; absent for events that carry none. */
  readonly data?: unknown;
}

/** A QMP command QEMU answered with an `error` reply (code BACKEND_IO). */
export class QmpError extends VirtioError {
  constructor(
    /** The reply's `error.class`, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
    readonly qmpClass: string,
    message: string,
  ) {
    super(ErrorCode.BACKEND_IO, `QMP ${qmpClass}: ${message}`);
  }
}

type Waiter = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** A connected QMP session (`QmpClient.connect`); commands run one at a time in call order. */
export class QmpClient {
  /** Events received so far (oldest dropped beyond 1000). */
  readonly events: QmpEvent[] = [];
  private buf = '';
  private readonly waiters: Waiter[] = [];
  private failure: Error | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (s: string) => this.onData(s));
    sock.on('error', (e) => this.fail(new VirtioError(ErrorCode.BACKEND_IO, `QMP socket: ${e.message}`)));
    sock.on('close', () => this.fail(new VirtioError(ErrorCode.BACKEND_IO, 'QMP socket closed')));
  }

  /** Connects, reads the greeting and leaves capability negotiation mode. */
  static async connect(path: string, timeoutMs: number): Promise<QmpClient> {
    const sock = createConnection(path);
    const c = new QmpClient(sock);
    const greeting = c.next(); // registered first: the greeting may come with the connection
    greeting.catch(() => undefined); // a failed connect rejects it too; the connect error is the one reported
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      }),
      timeoutMs,
      `QMP connect ${path}`,
      () => sock.destroy(),
    );
    try {
      await withTimeout(greeting, timeoutMs, 'QMP greeting');
      await withTimeout(c.execute('qmp_capabilities'), timeoutMs, 'qmp_capabilities');
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Runs `command` with `args`; resolves with its `return` value, rejects with QmpError. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const run = async (): Promise<unknown> => {
      if (this.failure) throw this.failure;
      const reply = this.next();
      this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
      return reply;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Destroys the socket; pending and later `execute` calls reject with BACKEND_IO. */
  close(): void {
    this.sock.destroy();
    this.fail(new VirtioError(ErrorCode.BACKEND_IO, 'QMP client closed'));
  }

  private next(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.failure) reject(this.failure);
      else this.waiters.push({ resolve, reject });
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  private onData(s: string): void {
    this.buf += s;
    if (this.buf.length > MAX_LINE) {
      this.fail(new VirtioError(ErrorCode.BACKEND_IO, `QMP line longer than ${MAX_LINE} bytes`));
      this.sock.destroy();
      return;
    }
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new VirtioError(ErrorCode.BACKEND_IO, `QMP sent a line that is not JSON: ${line.slice(0, 200)}`));
      return;
    }
    if (typeof m.event === 'string') {
      this.events.push({ event: m.event, data: m.data });
      if (this.events.length > MAX_EVENTS) this.events.shift();
      return;
    }
    const w = this.waiters.shift();
    if (!w) return;
    if ('QMP' in m) w.resolve(m.QMP);
    else if ('return' in m) w.resolve(m.return);
    else {
      const err = (m.error ?? {}) as { class?: string; desc?: string };
      w.reject(new QmpError(err.class ?? 'GenericError', err.desc ?? line));
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => {
          onTimeout?.();
          reject(new VirtioError(ErrorCode.TIMEOUT, `${what}: no answer within ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}
