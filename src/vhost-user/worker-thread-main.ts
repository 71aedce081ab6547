/**
 * The entry of a ring worker thread (node:worker_threads): a complete VhostUserBackend over the
 * worker's own device instance, fed by the main thread with the requests of the rings it owns
 * and the session set-up every worker applies (worker-protocol.ts). Its kick eventfds are
 * watched on this thread's event loop, its call eventfds written from here, guest memory mapped
 * here from the region fds the main thread duplicated for it (an mmapped ArrayBuffer cannot be
 * shared between threads: posting it would copy it).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { QueueStats } from '../device/queue-stats.js';
import { openWorkerDevice, type WorkerDeviceFactory } from '../device/worker-device.js';
import { createLogger } from '../log.js';
import { loadNativePlatform } from '../platform/native-platform.js';
import { VhostUserBackend } from './backend.js';
import { serveWorkerCalls } from './worker-call-channel.js';
import type { WorkerAnswer, WorkerCall, WorkerEvent, WorkerInit, WorkerReply } from './worker-protocol.js';

const init = workerData as WorkerInit;
const post = (e: WorkerEvent): void => parentPort!.postMessage(e);
const logger = createLogger(init.verbosity, init.name);
const platform = loadNativePlatform();
const stats = QueueStats.shared(init.stats);

let factory: WorkerDeviceFactory;
/**
 * The sessions this thread serves, by number: one per front-end connection whose rings it owns
 * (a device type pinning several sockets to one thread, as net does, has several at once).
 */
const sessions = new Map<number, { readonly backend: VhostUserBackend; readonly args: unknown }>();
let replies: WorkerReply[] = [];

function startSession(id: number, args: unknown, statsBuffer: SharedArrayBuffer | undefined): void {
  endSession(id);
  const b = new VhostUserBackend({
    device: factory.device(args),
    platform,
    logger,
    stats: statsBuffer !== undefined ? QueueStats.shared(statsBuffer) : stats,
    pollUs: init.pollUs,
    protocolFeatures: init.protocolFeatures,
    // 2.1.2 and config changes: the main thread's core (and its back-end channel) follows.
    onConfigChange: () => post({ kind: 'config-change', session: id, needsReset: b.core.needsResetReason }),
  });
  b.attach((request, flags, payload, fds) => {
    replies.push({ request, flags, payload: payload ? payload.slice() : null, fds: fds ? [...fds] : [] });
  });
  sessions.set(id, { backend: b, args });
}

function endSession(id: number): void {
  const s = sessions.get(id);
  if (s === undefined) return;
  sessions.delete(id);
  s.backend.close();
  factory.endSession?.(s.args);
}

/** A call's answer; a fault of this thread's own (a bug, not the front-end's) ends the session. */
function answer(call: WorkerCall): WorkerAnswer {
  try {
    return handle(call);
  } catch (e) {
    logger.error(`ring thread: ${(e as Error).message}`);
    endSession(call.session);
    return { replies: [], refused: null, ended: (e as Error).message };
  }
}

function handle(call: WorkerCall): WorkerAnswer {
  replies = [];
  if (call.kind === 'session-start') {
    startSession(call.session, call.args, call.stats);
    return { replies: [], refused: null, ended: null };
  }
  const b = sessions.get(call.session)?.backend;
  if (!b) {
    // A call for a session already ended here: its fds are not ours to keep.
    if (call.kind === 'message') for (const fd of call.message.fds) if (fd >= 0) platform.close(fd);
    return { replies: [], refused: null, ended: call.kind === 'message' ? 'no session' : null };
  }
  if (call.kind === 'session-end') {
    endSession(call.session);
    return { replies: [], refused: null, ended: null };
  }
  const errors = b.errorCount;
  let ended: string | null = null;
  try {
    b.handleMessage(call.message);
  } catch (e) {
    ended = (e as Error).message;
    endSession(call.session);
  }
  const refused = b.errorCount > errors ? (b.lastError?.message ?? 'refused') : null;
  return { replies, refused, ended };
}

try {
  factory = await openWorkerDevice(init.device, logger, init.index);
  serveWorkerCalls<WorkerCall, WorkerAnswer>(init.port, init.signal, answer);
  // Ends the worker: the session (if any) and the device's storage, then the port lets the
  // event loop finish.
  parentPort!.on('message', (m: { kind: string }) => {
    if (m.kind !== 'shutdown') return;
    for (const id of [...sessions.keys()]) endSession(id);
    void Promise.resolve(factory.close?.())
      .catch((e: unknown) => logger.error(`closing the device storage: ${String(e)}`))
      .finally(() => {
        init.port.close();
        parentPort!.close();
      });
  });
  post({ kind: 'ready' });
} catch (e) {
  post({ kind: 'failed', message: (e as Error).message });
}
