/**
 * Test support: a device and a driver context wired over one GuestMemory, without a bus
 * transport: the rings are set up directly with the queue classes and lent to a DeviceCore,
 * which negotiates the features and hands the device its context as on every transport.
 * Notifications in both directions are delivered as microtasks, as an interrupt or doorbell
 * would arrive, so no call re-enters.
 */
import { DeviceCore } from '../../device/device-core.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import type { DriverContext } from '../../driver/types.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { createDriverQueue } from '../../driver/create-queue.js';
import { createDeviceQueue } from '../../queue/create-queue.js';
import { packedRingLayout } from '../../queue/packed-layout.js';
import { splitRingLayout } from '../../queue/split-layout.js';
import type { DeviceQueue, DriverQueue } from '../../queue/types.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
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
  /** Why the device needs a reset: empty, or the reason DEVICE_NEEDS_RESET was set (it sticks). */
  readonly resets: string[];
  /** Used-buffer notifications delivered, per queue. */
  readonly usedNotifications: number[];
  configChanges: number;
}

export function createTestPair(device: VirtioDevice, opts: TestPairOptions = {}): TestPair {
  const memory = GuestMemory.allocate(opts.memSize ?? 8 << 20);
  const le = opts.littleEndian ?? true;
  const usedNotifications: number[] = [];
  let configChanges = 0;
  const usedCbs: ((() => void) | null)[] = [];
  let configCb: (() => void) | null = null;
  const legacy = ((opts.accept ?? ~0n) & F.VERSION_1) === 0n;
  const core = new DeviceCore(device, {
    memory,
    legacy,
    littleEndian: le,
    interrupts: {
      usedBuffer(i) {
        queueMicrotask(() => {
          usedNotifications[i]!++;
          usedCbs[i]?.();
        });
      },
      configChange() {
        queueMicrotask(() => {
          configChanges++;
          configCb?.();
        });
      },
    },
  });
  let features = core.deviceFeatures() & (opts.accept ?? ~0n);
  if (!opts.packed) features &= ~F.RING_PACKED;
  else if ((features & F.RING_PACKED) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'device does not offer RING_PACKED');
  // 3.1.1: ACKNOWLEDGE, DRIVER, the features, FEATURES_OK (modern), as a driver would.
  core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  core.setDriverFeatures(features);
  if (!legacy) {
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    if (!(core.status & Status.FEATURES_OK)) throw new VirtioError(ErrorCode.FEATURES_REJECTED, `device refuses the features: ${core.checkFeatures(features)}`);
  }
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
    core.attachQueue(i, devQueues[i]!);
    usedNotifications.push(0);
    usedCbs.push(null);
  }
  const dma = new DmaAllocator(base, (opts.memSize ?? 8 << 20) - base);
  // DRIVER_OK: the core activates the device with the queues lent above.
  core.activateWithLentQueues();
  const devCtx = core.activeContext;
  if (devCtx === null) throw new VirtioError(ErrorCode.STATUS_INVALID, `device not activated: ${core.needsResetReason ?? 'features not negotiated'}`);
  const pair: TestPair = {
    memory,
    features,
    devQueues,
    drvQueues,
    get resets(): string[] {
      const reason = core.needsResetReason;
      return reason === null ? [] : [reason];
    },
    usedNotifications,
    get configChanges(): number {
      return configChanges;
    },
    set configChanges(v: number) {
      configChanges = v;
    },
    devCtx,
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
        core.readConfigBytes(offset, dst);
        return dst;
      },
      writeConfig(offset, src) {
        core.writeConfigBytes(offset, src);
      },
    },
  };
  return pair;
}
