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
let backend: VhostUserBackend | null = null;
let session = -1;
let replies: WorkerReply[] = [];

function startSession(id: number): void {
  backend?.close();
  session = id;
  const b = new VhostUserBackend({
    device: factory.device(),
    platform,
    logger,
    stats,
    pollUs: init.pollUs,
    protocolFeatures: init.protocolFeatures,
    // 2.1.2 and config changes: the main thread's core (and its back-end channel) follows.
    onConfigChange: () => post({ kind: 'config-change', session: id, needsReset: b.core.needsResetReason }),
  });
  b.attach((request, flags, payload, fds) => {
    replies.push({ request, flags, payload: payload ? payload.slice() : null, fds: fds ? [...fds] : [] });
  });
  backend = b;
}

/** A call's answer; a fault of this thread's own (a bug, not the front-end's) ends the session. */
function answer(call: WorkerCall): WorkerAnswer {
  try {
    return handle(call);
  } catch (e) {
    logger.error(`ring thread: ${(e as Error).message}`);
    backend?.close();
    backend = null;
    return { replies: [], refused: null, ended: (e as Error).message };
  }
}

function handle(call: WorkerCall): WorkerAnswer {
  replies = [];
  if (call.kind === 'session-start') {
    startSession(call.session);
    return { replies: [], refused: null, ended: null };
  }
  const b = backend;
  if (!b || call.session !== session) {
    // A call for a session already ended here: its fds are not ours to keep.
    if (call.kind === 'message') for (const fd of call.message.fds) if (fd >= 0) platform.close(fd);
    return { replies: [], refused: null, ended: call.kind === 'message' ? 'no session' : null };
  }
  if (call.kind === 'session-end') {
    b.close();
    backend = null;
    return { replies: [], refused: null, ended: null };
  }
  const errors = b.errorCount;
  let ended: string | null = null;
  try {
    b.handleMessage(call.message);
  } catch (e) {
    ended = (e as Error).message;
    backend = null;
  }
  const refused = b.errorCount > errors ? (b.lastError?.message ?? 'refused') : null;
  return { replies, refused, ended };
}

try {
  factory = await openWorkerDevice(init.device, logger);
  serveWorkerCalls<WorkerCall, WorkerAnswer>(init.port, init.signal, answer);
  // Ends the worker: the session (if any) and the device's storage, then the port lets the
  // event loop finish.
  parentPort!.on('message', (m: { kind: string }) => {
    if (m.kind !== 'shutdown') return;
    backend?.close();
    backend = null;
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
