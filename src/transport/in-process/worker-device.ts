/**
 * Worker entry: runs a DeviceCore and its device in a worker_thread over guest memory in a
 * SharedArrayBuffer, served through a WorkerChannel (see worker-protocol.ts). Started by
 * `startDeviceWorker` (worker-transport.ts); does nothing when imported on another thread.
 *
 * The loop blocks in Atomics.wait on WAKE (bounded by `idleWaitMs`, so STOP is seen even
 * without a wake), then answers a pending register call, then passes new kicks to the core,
 * then yields to the event loop once (setImmediate) so device microtasks and asynchronous
 * back-ends make progress between waits.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DeviceCore } from '../../device/device-core.js';
import { setUpQueue } from '../../device/queue-register-file.js';
import type { InterruptSink, VirtioDevice } from '../../device/types.js';
import { GuestMemory, type RegionSpec } from '../../memory/guest-memory.js';
import { Ctl, Op, PAYLOAD_BYTES, WorkerChannel, encodeDeviceError, encodeError, getFeatures, putFeatures } from './worker-protocol.js';
import { ErrorCode, VirtioError } from '../../errors.js';

/** What the driver side hands the worker (structured-cloned; SharedArrayBuffers are shared). */
export interface DeviceWorkerData {
  readonly kind: 'virtio-ts-device-worker';
  readonly channel: SharedArrayBuffer;
  readonly maxQueues: number;
  readonly regions: readonly RegionSpec[];
  /** Module URL exporting `factory`: `(args) => VirtioDevice`. */
  readonly module: string;
  readonly factory: string;
  readonly args: unknown;
  readonly transportFeatures?: bigint;
  readonly idleWaitMs: number;
}

/** First message the worker posts: the device is built (or why not). */
export type DeviceWorkerReady =
  | { readonly ok: true; readonly deviceId: number; readonly numQueues: number; readonly queueMax: readonly number[] }
  | { readonly ok: false; readonly error: string };

class ChannelInterrupts implements InterruptSink {
  constructor(private readonly ch: WorkerChannel) {}
  usedBuffer(q: number): void {
    if (q < 0 || q >= this.ch.maxQueues) return;
    Atomics.add(this.ch.irqUsed, q, 1);
    this.ch.wakeDriver();
  }
  configChange(): void {
    Atomics.add(this.ch.ctl, Ctl.CONFIG_IRQ, 1);
    this.ch.wakeDriver();
  }
}

function answer(core: DeviceCore, ch: WorkerChannel): void {
  const a = ch.args;
  const r = ch.results;
  const op = Atomics.load(ch.ctl, Ctl.OP);
  switch (op) {
    case Op.GET_STATUS:
      r[0] = core.status;
      break;
    case Op.SET_STATUS:
      core.setStatus(a[0]!);
      break;
    case Op.GET_FEATURES:
      putFeatures(r, 0, core.deviceFeatures());
      break;
    case Op.SET_FEATURES:
      core.setDriverFeatures(getFeatures(a, 0));
      break;
    case Op.GENERATION:
      r[0] = core.configGeneration;
      break;
    case Op.READ_CONFIG: {
      const len = Math.min(a[1]!, PAYLOAD_BYTES);
      core.readConfigBytes(a[0]!, ch.payload.subarray(0, len));
      break;
    }
    case Op.WRITE_CONFIG: {
      const len = Math.min(a[1]!, PAYLOAD_BYTES);
      core.writeConfigBytes(a[0]!, ch.payload.subarray(0, len));
      break;
    }
    case Op.QUEUE_MAX:
      r[0] = core.device.queueMaxSizes[a[0]!] ?? 0;
      break;
    case Op.SETUP_QUEUE: {
      if (!core.queueRegisters(a[0]!)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no queue ${a[0]}`);
      setUpQueue(core, a[0]!, { size: a[1]!, descAddr: a[2]!, driverAddr: a[3]!, deviceAddr: a[4]! });
      break;
    }
    case Op.RESET_QUEUE:
      core.resetQueue(a[0]!);
      break;
    case Op.DEVICE_ERROR: {
      const e = core.needsResetError;
      r[0] = e === null ? 0 : 1;
      r[1] = e === null ? 0 : encodeDeviceError(ch.payload, e);
      break;
    }
    default:
      throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `unknown op ${op}`);
  }
}

async function run(data: DeviceWorkerData): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const ch = new WorkerChannel(data.channel, data.maxQueues);
  let core: DeviceCore;
  try {
    const mod = (await import(data.module)) as Record<string, unknown>;
    const make = mod[data.factory];
    if (typeof make !== 'function') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${data.module} has no function ${data.factory}`);
    const device = (make as (args: unknown) => VirtioDevice)(data.args);
    const memory = new GuestMemory(data.regions);
    const opts: ConstructorParameters<typeof DeviceCore>[1] = { memory, interrupts: new ChannelInterrupts(ch) };
    if (data.transportFeatures !== undefined) opts.transportFeatures = data.transportFeatures;
    core = new DeviceCore(device, opts);
    if (core.numQueues > data.maxQueues) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device has ${core.numQueues} queues, channel ${data.maxQueues}`);
    const ready: DeviceWorkerReady = { ok: true, deviceId: device.deviceId, numQueues: core.numQueues, queueMax: [...device.queueMaxSizes] };
    port.postMessage(ready);
  } catch (e) {
    const ready: DeviceWorkerReady = { ok: false, error: String(e) };
    port.postMessage(ready);
    return;
  }
  const ctl = ch.ctl;
  const seenKicks = new Int32Array(core.numQueues);
  let seenWake = Atomics.load(ctl, Ctl.WAKE);
  const yieldTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
  for (;;) {
    if (Atomics.load(ctl, Ctl.STOP) !== 0) break;
    // Compare-and-wait: a wake raised after the load makes the wait return at once.
    if (Atomics.load(ctl, Ctl.WAKE) === seenWake) Atomics.wait(ctl, Ctl.WAKE, seenWake, data.idleWaitMs);
    seenWake = Atomics.load(ctl, Ctl.WAKE);
    const req = Atomics.load(ctl, Ctl.REQ);
    if (req !== Atomics.load(ctl, Ctl.RESP)) {
      let status = 0;
      let len = 0;
      try {
        answer(core, ch);
      } catch (e) {
        status = 1;
        len = encodeError(ch.payload, e);
      }
      Atomics.store(ctl, Ctl.STATUS, status);
      Atomics.store(ctl, Ctl.LEN, len);
      Atomics.store(ctl, Ctl.RESP, req);
      Atomics.notify(ctl, Ctl.RESP);
    }
    for (let q = 0; q < seenKicks.length; q++) {
      const k = Atomics.load(ch.kicks, q);
      if (k === seenKicks[q]) continue;
      seenKicks[q] = k;
      core.notifyQueue(q, Atomics.load(ch.notifyData, q));
    }
    await yieldTurn();
  }
  core.reset();
  Atomics.store(ctl, Ctl.STOPPED, 1);
  Atomics.notify(ctl, Ctl.STOPPED);
}

const wd = workerData as Partial<DeviceWorkerData> | null;
if (!isMainThread && wd?.kind === 'virtio-ts-device-worker') {
  run(wd as DeviceWorkerData).catch((e: unknown) => {
    parentPort?.postMessage({ ok: false, error: String(e) } satisfies DeviceWorkerReady);
  });
}
