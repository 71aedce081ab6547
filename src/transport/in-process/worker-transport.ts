/**
 * A DriverTransport whose device runs in a worker_thread (worker-device.ts) over guest memory
 * in a SharedArrayBuffer: the rings are shared between two threads for real, so the ordering
 * rules of 2.7 and 2.8 (acquire/release on idx and flags, the fences around event suppression)
 * are exercised across cores. Register accesses block the calling thread in Atomics.wait until
 * the worker answers (bounded by `callTimeoutMs`); interrupts arrive through Atomics.waitAsync
 * and are delivered as callbacks on the driver's event loop.
 */
import { Worker } from 'node:worker_threads';
import type { DmaAllocator } from '../../driver/dma-allocator.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { dmaFor } from './in-process-transport.js';
import type { DeviceWorkerData, DeviceWorkerReady } from './worker-device.js';
import { Ctl, Op, PAYLOAD_BYTES, WorkerChannel, decodeDeviceError, decodeError, getFeatures, putFeatures, waitAsync } from './worker-protocol.js';

/** Which device startDeviceWorker runs in a worker thread, and how. */
export interface DeviceWorkerOptions {
  /** Module URL (e.g. `new URL('./factories.js', import.meta.url).href`) exporting `factory`. */
  module: string;
  /** Name of the exported `(args) => VirtioDevice` function. */
  factory: string;
  /** Structured-clonable arguments for the factory. */
  args?: unknown;
  /** Guest memory size (default 16 MiB); the memory is allocated over a SharedArrayBuffer. */
  memorySize?: number;
  /** Transport bits the core offers (default TRANSPORT_FEATURES_SUPPORTED). */
  transportFeatures?: bigint;
  /** Queues the channel can carry (default 16). */
  maxQueues?: number;
  /** Bound on one register access (default 5000 ms). */
  callTimeoutMs?: number;
  /** Bound on the worker's start (default 10000 ms). */
  startTimeoutMs?: number;
  /** Longest the worker sleeps without a wake before it looks at STOP again (default 10 ms). */
  idleWaitMs?: number;
  /** Start of the driver's DMA area (default 0x1000). */
  dmaBase?: number;
}

/**
 * A DriverTransport to a device running in a worker thread (startDeviceWorker): register operations
 * cross a SharedArrayBuffer channel with Atomics, guest memory is shared.
 */
export class WorkerTransport implements DriverTransport {
  readonly legacy = false;
  readonly littleEndian = true;
  private handler: DriverInterruptHandler | null = null;
  private readonly seenUsed: Int32Array;
  private seenConfig = 0;
  private seenIrq = 0;
  private closed = false;
  private irqLoopDone: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private exited = false;
  /** Why the worker died, when it did. */
  workerError: unknown = null;
  /** Used-buffer and config callbacks delivered so far. */
  usedDelivered = 0;
  /** Configuration change callbacks delivered so far. */
  configDelivered = 0;

  /** Use `startDeviceWorker`. */
  constructor(
    /** The worker thread the device runs in. */
    readonly worker: Worker,
    /** The shared channel register operations cross. */
    readonly channel: WorkerChannel,
    readonly memory: GuestMemory,
    readonly deviceId: number,
    private readonly queueMax: readonly number[],
    private readonly callTimeoutMs: number,
  ) {
    this.seenUsed = new Int32Array(channel.maxQueues);
    // A worker that dies takes the device with it: later register accesses fail at once
    // instead of waiting out the call timeout.
    worker.on('error', (e) => {
      this.workerError = e;
      this.closed = true;
    });
    worker.on('exit', () => {
      this.exited = true;
      this.closed = true;
      Atomics.notify(channel.ctl, Ctl.IRQ);
    });
  }


  /** @internal Starts the interrupt loop (once the worker is ready). */
  startInterrupts(): void {
    this.seenIrq = Atomics.load(this.channel.ctl, Ctl.IRQ);
    this.irqLoopDone = this.irqLoop();
  }

  private async irqLoop(): Promise<void> {
    const ctl = this.channel.ctl;
    while (!this.closed) {
      const w = waitAsync(ctl, Ctl.IRQ, this.seenIrq, 1000);
      if (w.async) await w.value;
      if (this.closed) break;
      this.seenIrq = Atomics.load(ctl, Ctl.IRQ);
      this.deliver();
    }
  }

  /** Passes on every counter that moved since the last delivery (coalesced, level-like). */
  private deliver(): void {
    const ch = this.channel;
    const cfg = Atomics.load(ch.ctl, Ctl.CONFIG_IRQ);
    if (cfg !== this.seenConfig) {
      this.seenConfig = cfg;
      this.configDelivered++;
      this.handler?.configChange();
    }
    const n = this.queueMax.length;
    for (let q = 0; q < n; q++) {
      const u = Atomics.load(ch.irqUsed, q);
      if (u === this.seenUsed[q]) continue;
      this.seenUsed[q] = u;
      this.usedDelivered++;
      this.handler?.used(q);
    }
  }

  /** Interrupts the device raised so far (counted in the worker). */
  get interruptCounts(): {
    /** Used buffer notifications the worker's device raised, summed over all queues. */
    used: number;
    /** Configuration change notifications the worker's device raised. */
    config: number;
  } {
    let used = 0;
    for (let q = 0; q < this.channel.maxQueues; q++) used += Atomics.load(this.channel.irqUsed, q);
    return { used, config: Atomics.load(this.channel.ctl, Ctl.CONFIG_IRQ) };
  }

  /** One synchronous register access: request, wake, wait for the answer (bounded). */
  private call(op: number): void {
    if (this.closed) {
      const why = this.workerError === null ? 'closed' : `died: ${String(this.workerError)}`;
      throw new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, `device worker ${why}`);
    }
    const ch = this.channel;
    const ctl = ch.ctl;
    Atomics.store(ctl, Ctl.OP, op);
    const seq = (Atomics.load(ctl, Ctl.REQ) + 1) | 0;
    Atomics.store(ctl, Ctl.REQ, seq);
    ch.wakeDevice();
    const deadline = Date.now() + this.callTimeoutMs;
    for (;;) {
      const cur = Atomics.load(ctl, Ctl.RESP);
      if (cur === seq) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new VirtioError(ErrorCode.TIMEOUT, `device worker did not answer op ${op} in ${this.callTimeoutMs} ms`);
      Atomics.wait(ctl, Ctl.RESP, cur, left);
    }
    if (Atomics.load(ctl, Ctl.STATUS) !== 0) throw decodeError(ch.payload, Atomics.load(ctl, Ctl.LEN));
  }

  getStatus(): number {
    this.call(Op.GET_STATUS);
    return this.channel.results[0]!;
  }
  setStatus(value: number): void {
    this.channel.args[0] = value & 0xff;
    this.call(Op.SET_STATUS);
  }
  getDeviceFeatures(): bigint {
    this.call(Op.GET_FEATURES);
    return getFeatures(this.channel.results, 0);
  }
  setDriverFeatures(features: bigint): void {
    putFeatures(this.channel.args, 0, features);
    this.call(Op.SET_FEATURES);
  }
  configGeneration(): number {
    this.call(Op.GENERATION);
    return this.channel.results[0]!;
  }
  readConfig(offset: number, dst: Uint8Array): void {
    for (let done = 0; done < dst.length; ) {
      const n = Math.min(PAYLOAD_BYTES, dst.length - done);
      this.channel.args[0] = offset + done;
      this.channel.args[1] = n;
      this.call(Op.READ_CONFIG);
      dst.set(this.channel.payload.subarray(0, n), done);
      done += n;
    }
  }
  writeConfig(offset: number, src: Uint8Array): void {
    for (let done = 0; done < src.length; ) {
      const n = Math.min(PAYLOAD_BYTES, src.length - done);
      this.channel.payload.set(src.subarray(done, done + n));
      this.channel.args[0] = offset + done;
      this.channel.args[1] = n;
      this.call(Op.WRITE_CONFIG);
      done += n;
    }
  }
  numQueues(): number {
    return this.queueMax.length;
  }
  queueMaxSize(index: number): number {
    return this.queueMax[index] ?? 0;
  }
  setupQueue(index: number, addrs: DriverQueueAddresses): void {
    const a = this.channel.args;
    a[0] = index;
    a[1] = addrs.size;
    a[2] = addrs.descAddr;
    a[3] = addrs.driverAddr;
    a[4] = addrs.deviceAddr;
    this.call(Op.SETUP_QUEUE);
  }
  resetQueue(index: number): void {
    this.channel.args[0] = index;
    this.call(Op.RESET_QUEUE);
  }
  /** Available buffer notification: a kick counter and a wake, no reply (like a doorbell write). */
  notify(index: number, data?: number): void {
    const ch = this.channel;
    if (this.closed || index < 0 || index >= this.queueMax.length) return;
    Atomics.store(ch.notifyData, index, (data ?? index) >>> 0);
    Atomics.add(ch.kicks, index, 1);
    ch.wakeDevice();
  }
  /** The device's error behind DEVICE_NEEDS_RESET, asked of the worker (its messages, not the object). */
  deviceError(): VirtioError | null {
    if (this.closed) return null;
    this.call(Op.DEVICE_ERROR);
    return this.channel.results[0] === 0 ? null : decodeDeviceError(this.channel.payload, this.channel.results[1]!);
  }
  setInterruptHandler(h: DriverInterruptHandler): void {
    this.handler = h;
  }

  /**
   * Stops the worker: STOP and a wake, waits (bounded) for it to leave its loop, then
   * terminates it (whether or not it left). Idempotent.
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = this.shutdown(timeoutMs);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const ctl = this.channel.ctl;
    Atomics.store(ctl, Ctl.STOP, 1);
    this.channel.wakeDevice();
    Atomics.notify(ctl, Ctl.IRQ);
    // The worker leaves its loop at its next wake (it resets its device on the way out).
    if (!this.exited) {
      const stopped = waitAsync(ctl, Ctl.STOPPED, 0, timeoutMs);
      if (stopped.async) await stopped.value;
    }
    await this.worker.terminate();
    await this.irqLoopDone;
  }
}

/** A device running in a worker thread and the transport to drive it. */
export interface DeviceWorkerConnection {
  /** The transport for VirtioDriver. */
  readonly transport: WorkerTransport;
  /** The shared guest memory. */
  readonly memory: GuestMemory;
  /** An allocator of that memory for the driver. */
  readonly dma: DmaAllocator;
  /** The worker thread. */
  readonly worker: Worker;
  /** Stops the device and ends the worker (bounded). */
  close(): Promise<void>;
}

/** Starts a device in a worker_thread and returns a transport to drive it from this thread. */
export async function startDeviceWorker(opts: DeviceWorkerOptions): Promise<DeviceWorkerConnection> {
  const memory = GuestMemory.allocate(opts.memorySize ?? 16 << 20, { shared: true });
  const maxQueues = opts.maxQueues ?? 16;
  const channel = WorkerChannel.create(maxQueues);
  const data: DeviceWorkerData = {
    kind: 'virtio-ts-device-worker',
    channel: channel.buffer,
    maxQueues,
    regions: memory.regionSpecs(),
    module: opts.module,
    factory: opts.factory,
    args: opts.args,
    idleWaitMs: opts.idleWaitMs ?? 10,
    ...(opts.transportFeatures !== undefined ? { transportFeatures: opts.transportFeatures } : {}),
  };
  const worker = new Worker(new URL('./worker-device.js', import.meta.url), { workerData: data });
  let ready: DeviceWorkerReady;
  try {
    ready = await new Promise<DeviceWorkerReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new VirtioError(ErrorCode.TIMEOUT, 'device worker did not start')), opts.startTimeoutMs ?? 10_000);
      worker.once('message', (m: DeviceWorkerReady) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        reject(new VirtioError(ErrorCode.PLATFORM, `device worker failed: ${String(e)}`, { cause: e }));
      });
      worker.once('exit', (c) => {
        clearTimeout(timer);
        reject(new VirtioError(ErrorCode.PLATFORM, `device worker exited with ${c}`));
      });
    });
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  if (!ready.ok) {
    await worker.terminate();
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device worker: ${ready.error}`);
  }
  const transport = new WorkerTransport(worker, channel, memory, ready.deviceId, ready.queueMax, opts.callTimeoutMs ?? 5000);
  transport.startInterrupts();
  return {
    transport,
    memory,
    dma: dmaFor(memory, opts.dmaBase ?? 0x1000),
    worker,
    close: () => transport.close(),
  };
}
