/**
 * A vhost-user back-end server: listens on a Unix socket (or an inherited listening fd, the
 * `--fd` convention), serves one front-end at a time, and after a disconnect waits for the next
 * one (QEMU `reconnect=`). Each connection gets a fresh VhostUserBackend over a device from the
 * factory; everything of a connection (fds, mappings, device activation) ends with it.
 */
import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import { VirtioError, isVirtioError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { FdWatcher, Platform } from '../platform/types.js';
import type { VirtioDevice } from '../device/types.js';
import { VhostUserBackend, type VhostUserBackendOptions } from './backend.js';
import { MessageFramer } from './framer.js';
import { frontendReqName } from './messages.js';

/** What a VhostUserServer serves, where, and how. */
export interface VhostUserServerOptions {
  /** Called once per connection for the device to serve (may return the same instance). */
  readonly device: () => VirtioDevice;
  /** Listen on this path (a stale socket file is replaced); or */
  readonly socketPath?: string;
  /**
   * an inherited socket fd (`--fd`), owned by the server from then on: a listening socket is
   * accepted from; a connected one is served as the only connection, after which the server
   * closes itself.
   */
  readonly listenFd?: number;
  /** Defaults to the native platform. */
  readonly platform?: Platform;
  /** Where the server logs connections, refused requests and device errors. */
  readonly logger?: Logger;
  /** Back-end tuning passed to each connection's VhostUserBackend. */
  readonly backend?: Omit<VhostUserBackendOptions, 'device' | 'platform' | 'logger'>;
}

/** A front-end connected (the 'connect' event). */
export interface ConnectEvent {
  /** The connection's number, from 1. */
  readonly id: number;
  /** The back-end serving it. */
  readonly backend: VhostUserBackend;
}
/** A front-end's connection ended (the 'disconnect' event). */
export interface DisconnectEvent {
  /** The connection's number. */
  readonly id: number;
  /** 'eof' (front-end closed), 'protocol' (unrecoverable framing error), 'io', 'close' (server closed). */
  readonly reason: 'eof' | 'protocol' | 'io' | 'close';
  /** The error that ended it, for 'protocol' and 'io'. */
  readonly error?: VirtioError;
}

/**
 * Events: 'listening' (), 'connect' (ConnectEvent), 'disconnect' (DisconnectEvent),
 * 'message' ({ id, request, name }) for each request handled (debug logging),
 * 'warning' (VirtioError) for refused requests and device errors.
 */
export class VhostUserServer extends EventEmitter {
  private readonly opts: VhostUserServerOptions;
  private readonly logger: Logger;
  private platform: Platform | null;
  private listenFd = -1;
  private ownsPath = false;
  private listenWatcher: FdWatcher | null = null;
  private conn: VhostUserConnection | null = null;
  private nextId = 1;
  private state: 'idle' | 'listening' | 'closed' = 'idle';
  /** Serving an inherited connected socket: no listening socket, one connection only. */
  private single = false;
  private resolveClosed: () => void = () => {};
  /** Resolves once close() has released the connection and the listening socket. */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  constructor(opts: VhostUserServerOptions) {
    super();
    if ((opts.socketPath === undefined) === (opts.listenFd === undefined)) {
      throw new VirtioError('INVALID_ARGUMENT', 'give exactly one of socketPath and listenFd');
    }
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.platform = opts.platform ?? null;
  }

  /** The back-end of the current connection, or null between connections. */
  get backend(): VhostUserBackend | null {
    return this.conn?.backend ?? null;
  }
  /** Whether a front-end is connected now. */
  get connected(): boolean {
    return this.conn !== null;
  }
  /** Whether the server listens for front-ends. */
  get listening(): boolean {
    return this.state === 'listening';
  }

  /** Starts listening (resolves once the socket is ready for a front-end). */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new VirtioError('INVALID_ARGUMENT', 'server already started');
    if (!this.platform) this.platform = await loadDefaultPlatform();
    const p = this.platform;
    if (this.opts.socketPath !== undefined) {
      this.listenFd = p.listenUnix(this.opts.socketPath);
      this.ownsPath = true;
      this.logger.info(`vhost-user: listening on ${this.opts.socketPath}`);
    } else {
      const fd = this.opts.listenFd!;
      // accept(2) tells the two kinds of inherited fd apart: EINVAL on a connected socket.
      let first: number;
      try {
        first = p.accept(fd);
      } catch {
        first = -2;
      }
      if (first === -2) {
        this.logger.info(`vhost-user: serving the connected socket of inherited fd ${fd}`);
        this.state = 'listening';
        this.single = true;
        this.emit('listening');
        this.serve(fd);
        return;
      }
      this.listenFd = fd;
      this.logger.info(`vhost-user: listening on inherited fd ${fd}`);
      this.state = 'listening';
      this.emit('listening');
      if (first >= 0) this.serve(first);
      else this.resumeAccepting();
      return;
    }
    this.state = 'listening';
    this.resumeAccepting();
    this.emit('listening');
  }

  /** Ends the current connection and stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasListening = this.state === 'listening';
    this.state = 'closed';
    this.listenWatcher?.stop();
    this.listenWatcher = null;
    this.conn?.end('close');
    this.conn = null;
    if (wasListening && this.platform && this.listenFd >= 0) {
      this.platform.close(this.listenFd);
      this.listenFd = -1;
      if (this.ownsPath && this.opts.socketPath !== undefined) {
        try {
          unlinkSync(this.opts.socketPath);
        } catch {
          // already gone
        }
      }
    }
    this.resolveClosed();
  }

  /** Resolves with the next connection's end (a front-end disconnect or close()). */
  nextDisconnect(): Promise<DisconnectEvent> {
    return new Promise((resolve) => this.once('disconnect', resolve));
  }

  private resumeAccepting(): void {
    if (this.state !== 'listening' || this.listenWatcher) return;
    const p = this.platform!;
    this.listenWatcher = p.watchReadable(this.listenFd, () => this.onAcceptable());
    // A front-end that connected while the previous one was served is already pending.
    this.onAcceptable();
  }

  private onAcceptable(): void {
    if (this.state !== 'listening' || this.conn) return;
    const p = this.platform!;
    let fd: number;
    try {
      fd = p.accept(this.listenFd);
    } catch (e) {
      this.logger.error(`vhost-user: accept failed: ${(e as Error).message}`);
      return;
    }
    if (fd < 0) return;
    this.serve(fd);
  }

  /** Serves the front-end on connected socket `fd` (owned from now on). */
  private serve(fd: number): void {
    const p = this.platform!;
    // One front-end at a time: stop accepting until this one leaves.
    this.listenWatcher?.stop();
    this.listenWatcher = null;
    const id = this.nextId++;
    let device: VirtioDevice;
    try {
      device = this.opts.device();
    } catch (e) {
      this.logger.error(`vhost-user: device factory failed: ${(e as Error).message}`);
      p.close(fd);
      if (this.single) void this.close();
      else this.resumeAccepting();
      return;
    }
    const backend = new VhostUserBackend({ ...this.opts.backend, device, platform: p, logger: this.logger });
    backend.onError = (err) => this.emit('warning', err);
    this.conn = new VhostUserConnection({
      id,
      fd,
      platform: p,
      backend,
      logger: this.logger,
      events: this,
      onEnd: (ev) => {
        this.conn = null;
        this.logger.info(`vhost-user: front-end ${id} disconnected (${ev.reason})`);
        this.emit('disconnect', ev);
        if (this.single) void this.close();
        else this.resumeAccepting();
      },
    });
    this.logger.info(`vhost-user: front-end ${id} connected`);
    this.emit('connect', { id, backend } satisfies ConnectEvent);
    this.conn.begin();
  }
}

/** Messages handled per readiness callback before yielding to the event loop. */
const MESSAGES_PER_TURN = 256;

/** Options of VhostUserConnection: the socket, the back-end it feeds, and where it reports. */
export interface VhostUserConnectionOptions {
  /** The connected socket; the connection owns it and closes it when it ends. */
  readonly fd: number;
  /** The OS access (fd passing, mmap, eventfd). */
  readonly platform: Platform;
  /** The back-end the connection feeds. */
  readonly backend: VhostUserBackend;
  /** Where the connection logs. */
  readonly logger?: Logger;
  /** The connection's number for logs and events (default 1). */
  readonly id?: number;
  /** Receives 'message' events. */
  readonly events?: EventEmitter;
  /** Called once when the connection ends for a reason other than end('close'). */
  readonly onEnd?: (ev: DisconnectEvent) => void;
}

/** One front-end session over a connected socket: framing, dispatch to the back-end, teardown. */
export class VhostUserConnection {
  /** The connection's number. */
  readonly id: number;
  /** The back-end it feeds. */
  readonly backend: VhostUserBackend;
  private readonly fd: number;
  private readonly platform: Platform;
  private readonly logger: Logger;
  private readonly events: EventEmitter | null;
  private readonly onEnd: (ev: DisconnectEvent) => void;
  private readonly framer: MessageFramer;
  private watcher: FdWatcher | null = null;
  private isEnded = false;
  private pending: ReturnType<typeof setImmediate> | null = null;

  constructor(o: VhostUserConnectionOptions) {
    this.id = o.id ?? 0;
    this.fd = o.fd;
    this.platform = o.platform;
    this.backend = o.backend;
    this.logger = o.logger ?? silentLogger;
    this.events = o.events ?? null;
    this.onEnd = o.onEnd ?? (() => {});
    this.framer = new MessageFramer(this.platform, this.fd);
    this.backend.attach((req, flags, payload, fds) => this.framer.send(req, flags, payload, fds));
  }

  /** Whether the connection has ended. */
  get ended(): boolean {
    return this.isEnded;
  }

  /** Starts reading messages (call once, after attaching listeners). */
  begin(): void {
    this.watcher = this.platform.watchReadable(this.fd, () => this.onReadable());
    this.onReadable();
  }

  private onReadable(): void {
    if (this.isEnded) return;
    for (let n = 0; n < MESSAGES_PER_TURN; n++) {
      let msg;
      try {
        msg = this.framer.read();
      } catch (e) {
        const err = isVirtioError(e) ? e : undefined;
        this.logger.error(`vhost-user: front-end ${this.id}: ${(e as Error).message}`);
        this.end(err && err.code === 'VHOST_USER_PROTOCOL' ? 'protocol' : 'io', err);
        return;
      }
      if (msg === null) return;
      if (msg === 'eof') {
        this.end('eof');
        return;
      }
      if (this.events && this.events.listenerCount('message') > 0) {
        this.events.emit('message', { id: this.id, request: msg.request, name: frontendReqName(msg.request) });
      }
      this.logger.debug(`vhost-user: <- ${frontendReqName(msg.request)} (${msg.payload.length} bytes, ${msg.fds.length} fds)`);
      try {
        this.backend.handleMessage(msg);
      } catch (e) {
        // A request that ends the session (SessionEndingError), or a reply the socket refused.
        const err = isVirtioError(e) ? e : undefined;
        const protocol = err?.code === 'VHOST_USER_PROTOCOL';
        this.logger.error(`vhost-user: front-end ${this.id}: ${protocol ? '' : 'reply failed: '}${(e as Error).message}`);
        this.end(protocol ? 'protocol' : 'io', err);
        return;
      }
    }
    // More may be queued: continue on the next turn rather than starving the event loop.
    if (!this.pending) {
      this.pending = setImmediate(() => {
        this.pending = null;
        this.onReadable();
      });
    }
  }

  /** Releases everything of this connection: watcher, back-end (rings, memory, fds), socket. */
  end(reason: DisconnectEvent['reason'], error?: VirtioError): void {
    if (this.isEnded) return;
    this.isEnded = true;
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    this.watcher?.stop();
    this.watcher = null;
    try {
      this.backend.close();
    } finally {
      this.framer.close();
      this.platform.close(this.fd);
      if (reason !== 'close') this.onEnd(error ? { id: this.id, reason, error } : { id: this.id, reason });
      else this.events?.emit('disconnect', { id: this.id, reason } satisfies DisconnectEvent);
    }
  }
}

async function loadDefaultPlatform(): Promise<Platform> {
  // Resolved at run time so this layer builds and tests without the native addon.
  const spec = '../platform/index.js';
  const mod = (await import(spec)) as { defaultPlatform?: () => Platform };
  if (typeof mod.defaultPlatform !== 'function') {
    throw new VirtioError('PLATFORM', 'no default platform available: pass `platform`');
  }
  return mod.defaultPlatform();
}

/** What serveVhostUser serves, where, and how. */
export interface ServeVhostUserOptions {
  /**
   * The device to serve: one object, reset before each front-end after the first (a fresh
   * back-end state per connection over the same device), or a factory called per connection.
   */
  readonly device: VirtioDevice | (() => VirtioDevice);
  /** Defaults to the native platform. */
  readonly platform?: Platform;
  /** `--socket-path`: listen on this path (a stale socket file is replaced); or */
  readonly socketPath?: string;
  /** `--fd`: an inherited socket: listening (accepted from) or already connected (served once). */
  readonly fd?: number;
  /** Where the server logs. */
  readonly logger?: Logger;
  /** Aborting closes the server (as close()). */
  readonly signal?: AbortSignal;
  /**
   * Back-end tuning for every connection (busy polling, memory slots, protocol features, stats).
   */
  readonly backend?: Omit<VhostUserBackendOptions, 'device' | 'platform' | 'logger'>;
}

/**
 * Starts a vhost-user back-end server (vhost-user.rst "Backend program conventions": exactly one
 * of --socket-path and --fd) and resolves once it is ready for a front-end. An `fd` that is a
 * connected socket (e.g. one end of a socketpair the front-end holds) is served as the one and
 * only connection: when it ends, the server closes.
 */
export async function serveVhostUser(o: ServeVhostUserOptions): Promise<VhostUserServer> {
  if ((o.socketPath === undefined) === (o.fd === undefined)) {
    throw new VirtioError('INVALID_ARGUMENT', 'give exactly one of socketPath and fd');
  }
  const platform = o.platform ?? (await loadDefaultPlatform());
  const given = o.device;
  let device: () => VirtioDevice;
  if (typeof given === 'function') device = given;
  else {
    let served = false;
    device = () => {
      // The same device object for every front-end, from its reset state.
      if (served) given.reset();
      served = true;
      return given;
    };
  }
  const server = new VhostUserServer({
    device,
    platform,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.backend ? { backend: o.backend } : {}),
    ...(o.socketPath !== undefined ? { socketPath: o.socketPath } : { listenFd: o.fd! }),
  });
  if (o.signal?.aborted) {
    if (o.fd !== undefined) platform.close(o.fd);
    throw new VirtioError('INVALID_ARGUMENT', 'aborted before the server started', { cause: o.signal.reason });
  }
  await server.start();
  if (o.signal) {
    const signal = o.signal;
    const onAbort = (): void => void server.close();
    signal.addEventListener('abort', onAbort, { once: true });
    void server.closed.then(() => signal.removeEventListener('abort', onAbort));
  }
  return server;
}
