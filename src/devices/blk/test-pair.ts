/**
 * Test support: a device and a driver context wired over one GuestMemory, without a transport
 * (rings set up directly with the queue classes). Notifications in both directions are
 * delivered as microtasks, as an interrupt or doorbell would arrive, so no call re-enters.
 */
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import type { DriverContext } from '../../driver/types.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { createDeviceQueue, createDriverQueue } from '../../queue/create-queue.js';
import { packedRingLayout } from '../../queue/packed-layout.js';
import { splitRingLayout } from '../../queue/split-layout.js';
import type { DeviceQueue, DriverQueue } from '../../queue/types.js';
import { F } from '../../spec/features.js';
import { ErrorCode, VirtioError } from '../../errors.js';

export interface TestPairOptions {
  packed?: boolean;
  /** Features the driver accepts (intersected with the offer). Default: everything offered. */
  accept?: bigint;
  /** Queue size (capped by the device's maximum). Default 64. */
  queueSize?: number;
  /** Queues set up (default all the device has). */
  numQueues?: number;
  memSize?: number;
  littleEndian?: boolean;
}

export interface TestPair {
  readonly memory: GuestMemory;
  readonly features: bigint;
  readonly ctx: DriverContext;
  readonly devCtx: DeviceContext;
  readonly devQueues: DeviceQueue[];
  readonly drvQueues: DriverQueue<number>[];
  /** Reasons passed to needsReset. */
  readonly resets: string[];
  /** Used-buffer notifications delivered, per queue. */
  readonly usedNotifications: number[];
  configChanges: number;
}

export function createTestPair(device: VirtioDevice, opts: TestPairOptions = {}): TestPair {
  const memory = GuestMemory.allocate(opts.memSize ?? 8 << 20);
  const le = opts.littleEndian ?? true;
  let features = device.offeredFeatures & (opts.accept ?? ~0n);
  if (!opts.packed) features &= ~F.RING_PACKED;
  else if ((features & F.RING_PACKED) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'device does not offer RING_PACKED');
  const n = opts.numQueues ?? device.queueMaxSizes.length;
  const devQueues: DeviceQueue[] = [];
  const drvQueues: DriverQueue<number>[] = [];
  let base = 0x1000;
  for (let i = 0; i < n; i++) {
    const size = Math.min(opts.queueSize ?? 64, device.queueMaxSizes[i]!);
    const l = opts.packed ? packedRingLayout(size, base) : splitRingLayout(size, base);
    base = Math.ceil((base + l.total) / 0x1000) * 0x1000;
    const config = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features, littleEndian: le, index: i };
    devQueues.push(createDeviceQueue(memory, config));
    drvQueues.push(createDriverQueue<number>(memory, config));
  }
  const dma = new DmaAllocator(base, (opts.memSize ?? 8 << 20) - base);
  const usedCbs: ((() => void) | null)[] = drvQueues.map(() => null);
  let configCb: (() => void) | null = null;
  const pair: TestPair = {
    memory,
    features,
    devQueues,
    drvQueues,
    resets: [],
    usedNotifications: drvQueues.map(() => 0),
    configChanges: 0,
    devCtx: {
      memory,
      features,
      littleEndian: le,
      queue: (i) => devQueues[i] ?? null,
      notifyUsed(i) {
        const q = devQueues[i];
        if (!q || !q.needsNotification()) return;
        queueMicrotask(() => {
          pair.usedNotifications[i]!++;
          usedCbs[i]?.();
        });
      },
      notifyConfigChange() {
        queueMicrotask(() => {
          pair.configChanges++;
          configCb?.();
        });
      },
      needsReset(reason) {
        pair.resets.push(reason);
      },
    },
    ctx: {
      memory,
      features,
      littleEndian: le,
      dma,
      numQueues: n,
      queue(i) {
        const q = drvQueues[i];
        if (!q) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no queue ${i}`);
        return q;
      },
      kick(i) {
        if (drvQueues[i]!.kick()) queueMicrotask(() => device.onQueueNotify(i));
      },
      onUsed(i, cb) {
        usedCbs[i] = cb;
      },
      onConfigChange(cb) {
        configCb = cb;
      },
      readConfig(offset, len) {
        const dst = new Uint8Array(len);
        device.readConfig(offset, dst, features, le);
        return dst;
      },
      writeConfig(offset, src) {
        device.writeConfig(offset, src, features, le);
      },
    },
  };
  device.activate(pair.devCtx);
  return pair;
}
