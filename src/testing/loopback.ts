/**
 * A device and the generic driver wired in process (DeviceCore + InProcessTransport +
 * VirtioDriver), for device tests and examples: `createLoopback(device)` gives a running
 * DriverContext a device-type driver can use at once.
 */
import type { DeviceCore } from '../device/device-core.js';
import type { VirtioDevice } from '../device/types.js';
import type { DmaAllocator } from '../driver/dma-allocator.js';
import type { DriverContext } from '../driver/types.js';
import { VirtioDriver } from '../driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { type Logger, LogLevel, createLogger } from '../log.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { type InProcessTransport, type InterruptDelivery, connectInProcess } from '../transport/in-process/in-process-transport.js';

/** How createLoopback sets up the device and negotiates. */
export interface LoopbackOptions {
  /** Packed rings (2.8); default false (split). Fails when the device does not offer RING_PACKED. */
  packed?: boolean;
  /** EVENT_IDX: true or undefined accept it when offered, false refuses it. */
  eventIdx?: boolean;
  /** INDIRECT_DESC: true or undefined accept it when offered (and use indirect tables), false refuses it. */
  indirect?: boolean;
  /** IN_ORDER: accepted only when true (and offered). */
  inOrder?: boolean;
  /** NOTIFICATION_DATA and RING_RESET: accepted when offered unless false. */
  notificationData?: boolean;
  /** RING_RESET: accepted when offered unless false. */
  ringReset?: boolean;
  /** Legacy interface (no VERSION_1, legacy ring layout). */
  legacy?: boolean;
  /** Device-type feature bits to refuse (default none: everything offered is accepted). */
  refuseFeatures?: bigint;
  /** Guest memory size in bytes (default 16 MiB). */
  memorySize?: number;
  /** Queue size for every queue (capped at the device's maximum). Default 256. */
  queueSize?: number;
  /**
   * How the device's notifications reach the driver: 'microtask' (default, like a real interrupt
   * after the access) or 'sync'.
   */
  interrupts?: InterruptDelivery;
  /**
   * Where the device core logs. Default: warnings and errors to stderr, so a device that throws
   * (DEVICE_NEEDS_RESET with the device's message) is never silent; `silentLogger` mutes it.
   */
  logger?: Logger;
}

/**
 * A device and a VirtioDriver wired together in one process by createLoopback, initialised
 * (DRIVER_OK).
 */
export interface Loopback {
  /** The device's core: status, negotiated features, queues (for assertions). */
  readonly core: DeviceCore;
  /** The in-process transport between them. */
  readonly transport: InProcessTransport;
  /** The generic driver. */
  readonly driver: VirtioDriver;
  /** What a device-type driver attaches to. */
  readonly context: DriverContext;
  /** The private guest memory. */
  readonly memory: GuestMemory;
  /** The allocator of that memory the driver uses. */
  readonly dma: DmaAllocator;
  /** Resets the device and frees the rings; waits one microtask round so pending interrupts drain. */
  close(): Promise<void>;
}

/**
 * Wires `device` to a VirtioDriver in process and runs the initialization sequence. Rejects
 * with a VirtioError DEVICE_NEEDS_RESET whose `cause` is the device's error when the device
 * throws in `activate`; later failures reach `loopback.driver.onNeedsReset` the same way.
 */
export async function createLoopback(device: VirtioDevice, opts: LoopbackOptions = {}): Promise<Loopback> {
  const conn = connectInProcess(device, {
    memorySize: opts.memorySize ?? 16 << 20,
    legacy: opts.legacy ?? false,
    interrupts: opts.interrupts ?? 'microtask',
    logger: opts.logger ?? createLogger(LogLevel.WARN, 'virtio-ts loopback'),
  });
  let wanted = ~0n & ((1n << 128n) - 1n);
  if (!opts.packed) wanted &= ~F.RING_PACKED;
  else if ((conn.core.deviceFeatures() & F.RING_PACKED) === 0n) {
    throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'createLoopback: the device does not offer RING_PACKED');
  }
  if (opts.eventIdx === false) wanted &= ~F.EVENT_IDX;
  if (opts.indirect === false) wanted &= ~F.INDIRECT_DESC;
  if (opts.inOrder !== true) wanted &= ~F.IN_ORDER;
  if (opts.notificationData === false) wanted &= ~F.NOTIFICATION_DATA;
  if (opts.ringReset === false) wanted &= ~F.RING_RESET;
  if (opts.refuseFeatures !== undefined) wanted &= ~opts.refuseFeatures;
  const driver = await VirtioDriver.init(conn.transport, {
    wantedFeatures: wanted,
    dma: conn.dma,
    queueSizes: [opts.queueSize ?? 256],
    indirect: opts.indirect !== false,
  });
  let closed = false;
  return {
    core: conn.core,
    transport: conn.transport,
    driver,
    context: driver.context,
    memory: conn.memory,
    dma: conn.dma,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      driver.reset();
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
  };
}
