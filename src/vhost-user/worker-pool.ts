/**
 * Ring workers: T worker threads (node:worker_threads), each serving a fixed share of a
 * device's rings for every front-end connection of a back-end process (ring i on worker
 * i mod T). The pool is made once per process; each connection's back-end gets a
 * WorkerMessageRouter through `messageRouter` (VhostUserBackendOptions), which sends the
 * workers the connection's requests. Counters are shared: every thread adds to one QueueStats
 * over a SharedArrayBuffer, each ring's slots written by the one thread serving it.
 */
import { Worker } from 'node:worker_threads';
import { MessageChannel } from 'node:worker_threads';
import { ErrorCode, VirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Platform } from '../platform/types.js';
import { PF } from './messages.js';
import { QueueStats } from '../device/queue-stats.js';
import type { WorkerDeviceSpec } from '../device/worker-device.js';
import { SUPPORTED_PROTOCOL_FEATURES, type VhostUserBackendOptions } from './backend.js';
import { WorkerCallChannel } from './worker-call-channel.js';
import type { WorkerAnswer, WorkerCall, WorkerEvent, WorkerInit } from './worker-protocol.js';
import { WorkerMessageRouter, type RingWorkers } from './worker-router.js';

/**
 * Protocol features a session with ring workers offers: not INFLIGHT_SHMFD and LOG_SHMFD, whose
 * shared areas (inflight descriptors, dirty log) the threads would all have to map and write
 * (a limit of this version, docs/worker-threads.md).
 */
export const WORKER_PROTOCOL_FEATURES = SUPPORTED_PROTOCOL_FEATURES & ~(PF.INFLIGHT_SHMFD | PF.LOG_SHMFD);

/** Longest wait for a worker to load its device, and to end. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** How {@link WorkerPool.start} starts the ring worker threads of a vhost-user device (`--threads`). */
export interface WorkerPoolOptions {
  /** Worker threads (1..numQueues). */
  readonly threads: number;
  /** The device's queue count (rings are spread over the threads). */
  readonly numQueues: number;
  /** The worker-side device (src/device/worker-device.ts). */
  readonly device: WorkerDeviceSpec;
  /** The main thread's platform: duplicates the memory region fds each worker gets its own copy of, and closes them. */
  readonly platform: Platform;
  /** The main thread's logger: worker start-up, worker failures and session events. */
  readonly logger: Logger;
  /** The workers' log level (a LogLevel value); the logger's level by default. */
  readonly verbosity?: number;
  /** Busy-poll window of each worker's back-end (VhostUserBackendOptions.pollUs). */
  readonly pollUs?: number;
  /** Log name prefix of the workers ("virtio-ts blk"). */
  readonly name?: string;
  /** What the threads serve, for the start-up log (default: "N queues (ring i on thread i mod T)"). */
  readonly placement?: string;
}

/** One connection's rings pinned to one thread (WorkerPool.backendOptions). */
export interface WorkerPin {
  /** The thread serving every ring of the connection. */
  readonly thread: number;
  /** The session's device arguments (WorkerDeviceFactory.device), structured-cloneable. */
  readonly args: unknown;
  /** The connection's counters (QueueStats.shared storage, so the thread writes them). */
  readonly stats?: QueueStats;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly channel: WorkerCallChannel<WorkerCall, WorkerAnswer>;
}

export class WorkerPool implements RingWorkers {
  /** Counters of every ring, written by the workers, read anywhere (QueueStats.shared). */
  readonly stats: QueueStats;
  /** One synchronous call channel per worker thread, by worker index (ring i is on worker i mod threads). */
  readonly channels: WorkerCallChannel<WorkerCall, WorkerAnswer>[];
  private readonly routers = new Map<number, WorkerMessageRouter>();
  private nextSession = 1;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly o: WorkerPoolOptions,
    private readonly workers: PoolWorker[],
    stats: QueueStats,
  ) {
    this.stats = stats;
    this.channels = workers.map((w) => w.channel);
    for (const w of workers) {
      w.worker.on('message', (e: WorkerEvent) => {
        if (e.kind === 'config-change') this.routers.get(e.session)?.configChange(e.needsReset);
      });
      // A thread that dies leaves its rings unserved: every session with rings on it needs a
      // reset (2.1.2: the front-end sees DEVICE_NEEDS_RESET, a config-change message when it
      // negotiated one), and its next call fails at once, which ends the session.
      w.worker.on('error', (e) => o.logger.error(`ring thread failed: ${e.message}`));
      w.worker.on('exit', (code) => {
        w.channel.peerGone(`exited with ${code}`);
        if (this.closing !== null) return;
        o.logger.error(`ring thread exited with ${code}`);
        for (const r of this.routers.values()) if (r.uses(w.channel)) r.configChange(`ring thread exited with ${code}`);
      });
    }
  }

  /** Starts the workers and waits until each has opened its device. */
  static async start(o: WorkerPoolOptions): Promise<WorkerPool> {
    if (!Number.isInteger(o.threads) || o.threads < 1 || o.threads > o.numQueues) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `threads ${o.threads} not in 1..${o.numQueues} (a ring is served by one thread)`);
    }
    const stats = QueueStats.shared(QueueStats.sharedBuffer(o.numQueues));
    const workers: PoolWorker[] = [];
    const started: Promise<void>[] = [];
    for (let i = 0; i < o.threads; i++) {
      const { port1, port2 } = new MessageChannel();
      const signal = new SharedArrayBuffer(4);
      const init: WorkerInit = {
        index: i,
        device: o.device,
        stats: stats.sharedStorage!,
        signal,
        port: port2,
        protocolFeatures: WORKER_PROTOCOL_FEATURES,
        pollUs: o.pollUs ?? 0,
        verbosity: o.verbosity ?? o.logger.level,
        name: `${o.name ?? 'virtio-ts'} [ring thread ${i}]`,
      };
      const worker = new Worker(new URL('./worker-thread-main.js', import.meta.url), { workerData: init, transferList: [port2] });
      workers.push({ worker, channel: new WorkerCallChannel(port1, signal, `ring thread ${i}`) });
      started.push(waitReady(worker, i));
    }
    try {
      await Promise.all(started);
    } catch (e) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw e;
    }
    o.logger.info(`${o.threads} ring thread${o.threads === 1 ? '' : 's'} serving ${o.placement ?? `${o.numQueues} queues (ring i on thread i mod ${o.threads})`}`);
    return new WorkerPool(o, workers, stats);
  }

  /** Ends thread `i` abruptly, as a crash would (tests of the failure path: sessions on it need a reset). */
  async crashThread(i: number): Promise<void> {
    const w = this.workers[i];
    if (w === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no ring thread ${i}`);
    await w.worker.terminate();
  }

  ownerOf(index: number): number {
    return index % this.workers.length;
  }

  /**
   * Back-end options for each connection: the router and the protocol features workers support.
   * With `pin`, every ring of the connection is served by thread `pin.thread` alone (net pins a
   * port, all its queue pairs, to one thread), whose device is built from `pin.args`, counting
   * into `pin.stats`.
   */
  backendOptions(pin?: WorkerPin): Pick<VhostUserBackendOptions, 'messageRouter' | 'protocolFeatures' | 'stats'> {
    let pinned: RingWorkers | null = null;
    if (pin !== undefined) {
      const channel = this.channels[pin.thread];
      if (channel === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no ring thread ${pin.thread}`);
      pinned = { channels: [channel], ownerOf: () => 0 };
    }
    const stats = pin?.stats ?? this.stats;
    const start = pin === undefined ? {} : { args: pin.args, ...(pin.stats?.sharedStorage ? { stats: pin.stats.sharedStorage } : {}) };
    return {
      stats,
      protocolFeatures: WORKER_PROTOCOL_FEATURES,
      messageRouter: (backend, dispatch) => {
        const session = this.nextSession++;
        const router = new WorkerMessageRouter(session, pinned ?? this, backend, dispatch, this.o.platform, this.o.logger, () => this.routers.delete(session), start);
        this.routers.set(session, router);
        return router;
      },
    };
  }

  /** Ends every worker (after the server closed its connections): storage closed, threads gone. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(
        this.workers.map(async (w) => {
          const exited = new Promise<void>((resolve) => w.worker.once('exit', () => resolve()));
          w.worker.postMessage({ kind: 'shutdown' });
          let timer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS)));
          const how = await Promise.race([exited, late]);
          clearTimeout(timer);
          if (how === 'late') await w.worker.terminate();
          w.channel.close();
        }),
      );
    })();
    return this.closing;
  }
}

function waitReady(worker: Worker, i: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new VirtioError(ErrorCode.PLATFORM, `ring thread ${i} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const onMessage = (e: WorkerEvent): void => {
      if (e.kind === 'ready') done(null);
      else if (e.kind === 'failed') done(new VirtioError(ErrorCode.PLATFORM, `ring thread ${i}: ${e.message}`));
    };
    const onError = (e: Error): void => done(new VirtioError(ErrorCode.PLATFORM, `ring thread ${i}: ${e.message}`, { cause: e }));
    const onExit = (code: number): void => done(new VirtioError(ErrorCode.PLATFORM, `ring thread ${i} exited with ${code} before it was ready`));
    function done(e: VirtioError | null): void {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (e) reject(e);
      else resolve();
    }
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
