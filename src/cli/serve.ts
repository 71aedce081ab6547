/**
 * Runs a vhost-user back-end process for the `blk` and `rng` commands (main.ts has checked the
 * socket with socket-check.ts before loading this): starts
 * the server (one front-end at a time, waiting for the next after a disconnect), and ends
 * cleanly on SIGTERM/SIGINT (vhost-user.rst, Backend program conventions: "must end as quickly
 * and cleanly as possible when the SIGTERM signal is received"), removing the socket it made.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { VirtioDevice } from '../device/types.js';
import { loadNativePlatform } from '../platform/native-platform.js';
import type { Platform } from '../platform/types.js';
import { QueueStats } from '../device/queue-stats.js';
import type { VhostUserBackend } from '../vhost-user/backend.js';
import { serveVhostUser, type ConnectEvent, type VhostUserServer } from '../vhost-user/server.js';
import { startMetricsEndpoint, type MetricsEndpoint } from './metrics-endpoint.js';
import { startInspector, type Inspector } from '../inspector/inspector-server.js';
import { EXIT, type BackendOptions } from './options.js';
import { startStatsReport } from './stats-report.js';
import { WorkerPool } from '../vhost-user/worker-pool.js';
import type { WorkerDeviceSpec } from '../device/worker-device.js';

/** The OS platform (fd passing, mmap, eventfd) from the native addon. */
export function loadPlatform(): Platform {
  return loadNativePlatform();
}

export interface RunBackendOptions {
  readonly options: BackendOptions;
  /** Called per front-end connection: a fresh device in reset state over shared storage. */
  readonly device: () => VirtioDevice;
  readonly logger: Logger;
  /** What is served, for the log ("virtio-blk on a 1 MiB RAM disk"). */
  readonly description: string;
  /** Releases what the command opened (image files), after the server has closed. */
  readonly cleanup?: () => Promise<void> | void;
  /** Options for each connection's VhostUserBackend (`--poll-us`). */
  readonly backend?: { readonly pollUs?: number };
  /** Tests: the platform to use instead of the native one. */
  readonly platform?: Platform;
  /** Tests: resolves to end the back-end as a signal would. */
  readonly stop?: Promise<unknown>;
  /** Where `--stats-interval` lines go (default stderr). */
  readonly statsWriter?: (line: string) => void;
  /** `--threads`: the rings are served on worker threads building this device (worker-pool.ts). */
  readonly workers?: { readonly threads: number; readonly device: WorkerDeviceSpec };
  /**
   * Called with each front-end connection's back-end before its first message: a command that
   * must adapt to a front-end's quirks wraps the back-end here (crypto: QEMU's cryptodev-vhost-user).
   */
  readonly onConnect?: (backend: VhostUserBackend) => void;
}

/**
 * Serves until SIGTERM, SIGINT or SIGHUP (or `stop`), then closes the server (the current
 * connection, the listening socket and its file) and resolves with the exit code.
 */
export async function runBackend(o: RunBackendOptions): Promise<number> {
  const { options, logger } = o;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await o.cleanup?.();
  };
  // Signal handlers go in before the socket exists: a supervisor (or test) that signals as soon as
  // the socket appears or "serving" is logged must get a clean shutdown, not the default death.
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  let onSignal: (s: NodeJS.Signals) => void = () => undefined;
  let stopWith: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopWith = resolve;
    onSignal = (s) => resolve(s);
    for (const s of signals) process.on(s, onSignal);
    void o.stop?.then(() => resolve('stop'));
  });
  const removeHandlers = (): void => {
    for (const s of signals) process.off(s, onSignal);
  };
  let server: VhostUserServer;
  // One set of counters for the process: every front-end connection adds to it.
  let stats = new QueueStats();
  const command = options.command ?? 'back-end';
  let metrics: MetricsEndpoint | null = null;
  let inspector: Inspector | null = null;
  let pool: WorkerPool | null = null;
  try {
    const platform = o.platform ?? loadPlatform();
    if (o.workers) {
      pool = await WorkerPool.start({
        threads: o.workers.threads,
        numQueues: o.device().queueMaxSizes.length,
        device: o.workers.device,
        platform,
        logger,
        verbosity: options.verbosity,
        pollUs: o.backend?.pollUs ?? 0,
        name: `virtio-ts ${command}`,
      });
      // The threads count into shared storage: reports and metrics read it.
      stats = pool.stats;
    }
    if (options.metrics !== undefined) {
      metrics = await startMetricsEndpoint([{ device: command, stats }], options.metrics);
      logger.info(`metrics at ${metrics.url}`);
    }
    try {
      server = await serveVhostUser({
        device: o.device,
        platform,
        logger,
        backend: { ...o.backend, stats, ...pool?.backendOptions() },
        ...(options.socketPath !== null ? { socketPath: options.socketPath } : { fd: options.fd! }),
      });
    } catch (e) {
      const where = options.socketPath !== null ? options.socketPath : `fd ${options.fd}`;
      throw new VirtioError(ErrorCode.PLATFORM, `cannot listen on ${where}: ${(e as Error).message}`, { cause: e });
    }
    const onConnect = o.onConnect;
    if (onConnect) server.on('connect', (ev: ConnectEvent) => onConnect(ev.backend));
    if (options.inspect !== undefined) {
      const served = server;
      try {
        inspector = await startInspector([{ name: command, stats, backend: () => served.backend }], options.inspect);
      } catch (e) {
        await server.close();
        throw e;
      }
      logger.info(`inspector at ${inspector.url}`);
    }
  } catch (e) {
    removeHandlers();
    await metrics?.close();
    await pool?.close();
    await cleanup();
    throw e;
  }
  const stopReport =
    options.statsIntervalMs === undefined
      ? () => undefined
      : startStatsReport(stats, command, options.statsIntervalMs, o.statsWriter ?? ((line) => void process.stderr.write(line)));
  logger.info(`serving ${o.description} on ${options.socketPath ?? `fd ${options.fd}`}`);
  // An inherited connected socket (--fd) is served once: the server closes when it ends.
  void server.closed.then(() => stopWith('front-end gone'));
  // Keeps the event loop alive however the platform's watchers count towards it.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const why = await stopped;
  removeHandlers();
  clearInterval(keepAlive);
  stopReport();
  logger.info(`${why}: shutting down`);
  await metrics?.close();
  await inspector?.close();
  let code: number = EXIT.OK;
  try {
    await server.close();
  } catch (e) {
    logger.error(`closing the server: ${(e as Error).message}`);
    code = EXIT.RUNTIME;
  }
  await pool?.close();
  try {
    await cleanup();
  } catch (e) {
    logger.error(`closing: ${(e as Error).message}`);
    code = EXIT.RUNTIME;
  }
  return code;
}
