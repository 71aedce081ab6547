import type { VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DriverQueue } from '../queue/types.js';
import type { DmaAllocator } from './dma-allocator.js';
import type { AdminQueueRange } from '../device/types.js';

/** Where a driver puts a queue (2.6); the transport writes these to the device. */
export interface DriverQueueAddresses {
  /** Queue size the driver chose. */
  readonly size: number;
  /** Guest address of the descriptor table (split) or ring (packed). */
  readonly descAddr: number;
  /** Guest address of the driver area (available ring, or driver event suppression). */
  readonly driverAddr: number;
  /** Guest address of the device area (used ring, or device event suppression). */
  readonly deviceAddr: number;
}

/** Notifications the device sends, delivered by the transport to the driver. */
export interface DriverInterruptHandler {
  /** The device used buffers of queue `queueIndex` (a used-buffer notification, 2.3). */
  used(queueIndex: number): void;
  /** The device changed its configuration space (a configuration change notification, 2.5). */
  configChange(): void;
}

/** How long a driver waits for an asynchronous queue reset (2.6.1, `resetQueueAsync`). */
export interface QueueResetWaitOptions {
  /**
   * Milliseconds to wait for the device to report the reset done before rejecting with a
   * VirtioError of code TIMEOUT (default 5000). The queue is then left as it is: neither set up
   * again nor its memory released (driver/content/14, 15).
   */
  readonly timeoutMs?: number;
}

/**
 * The driver's view of one device through one transport: the operations of 3.1.1 and 2.6,
 * decoded by each transport into its own registers, CCWs or messages. Synchronous, like
 * register accesses.
 */
export interface DriverTransport {
  /** The guest memory the driver's rings and buffers live in. */
  readonly memory: GuestMemory;
  /** Device ID as discovered on the bus. */
  readonly deviceId: number;
  /** True when driving the legacy (pre-1.0) interface of a legacy or transitional device. */
  readonly legacy: boolean;
  /** False for a legacy interface on a big-endian guest. */
  readonly littleEndian: boolean;
  /**
   * Transport bits only this transport implements, which the driver may accept besides the
   * common ones (PCI's modern interface: VIRTIO_F_NOTIF_CONFIG_DATA). Default none.
   */
  readonly transportFeatures?: bigint;

  /** Reads the device status byte (2.1). */
  getStatus(): number;
  /** Writes status; writing 0 resets the device (the transport waits for the reset to finish). */
  setStatus(value: number): void;
  /** Reads every device_feature bit the device offers (2.2). */
  getDeviceFeatures(): bigint;
  /** Writes driver_feature: the features the driver accepts (2.2). */
  setDriverFeatures(features: bigint): void;

  /** Reads config_generation (2.5.1). */
  configGeneration(): number;
  /**
   * Reads `dst.length` bytes of config space at `offset` (no generation check: the caller retries,
   * 2.5.1).
   */
  readConfig(offset: number, dst: Uint8Array): void;
  /**
   * Size of the device configuration space when the transport tells it (PCI: the device
   * configuration capability's length, 0 without one); null or absent when it cannot.
   */
  configSize?(): number | null;
  /** Writes `src` into config space at `offset`. */
  writeConfig(offset: number, src: Uint8Array): void;

  /** Number of queues the device reports (or the transport can address). */
  numQueues(): number;
  /** Maximum size of queue `index` (0 when the queue is not available). */
  queueMaxSize(index: number): number;
  /** Programs and enables queue `index` (legacy: the single PFN / address form). */
  setupQueue(index: number, addrs: DriverQueueAddresses): void;
  /** 2.6.1 queue reset (RING_RESET negotiated). */
  resetQueue(index: number): void;
  /**
   * Optional: 2.6.1 queue reset that waits, without blocking the event loop, until the device
   * reports it done (PCI, MMIO): a device may keep the reset ongoing while its teardown finishes.
   * Rejects with VirtioError TIMEOUT after `opts.timeoutMs`. Without it drivers use `resetQueue`.
   */
  resetQueueAsync?(index: number, opts?: QueueResetWaitOptions): Promise<void>;
  /**
   * Optional: where the administration virtqueues are (2.13) once VIRTIO_F_ADMIN_VQ was
   * negotiated (PCI: admin_queue_index and admin_queue_num), or null when the transport has none.
   * Absent on transports that define no administration queues (MMIO, Channel I/O).
   */
  adminQueueRange?(): AdminQueueRange | null;
  /** Available buffer notification; `data` is the NOTIFICATION_DATA value when negotiated. */
  notify(index: number, data?: number): void;

  /** Where the transport delivers used-buffer and configuration change notifications. */
  setInterruptHandler(h: DriverInterruptHandler): void;
  /**
   * Optional: the error behind DEVICE_NEEDS_RESET when the transport can see the device's own
   * errors (a device in the same process), or null. The driver makes it the `cause` of the
   * VirtioError it surfaces, so the device's message is not lost.
   */
  deviceError?(): VirtioError | null;
}

/** Why buffers the driver made available will never be used by the device. */
export const DriverStopReason = {
  /** The driver reset the device (2.4): every queue is gone. */
  DEVICE_RESET: 'device-reset',
  /** The device set DEVICE_NEEDS_RESET (2.1.2): it cannot continue until reset. */
  NEEDS_RESET: 'needs-reset',
  /** One queue was reset (2.6.1): its buffers are dropped, the queue starts again empty. */
  QUEUE_RESET: 'queue-reset',
} as const;
export type DriverStopReason = (typeof DriverStopReason)[keyof typeof DriverStopReason];

/** Why and where in-flight buffers of a driver will never complete. */
export interface DriverStopEvent {
  /** Why they will not complete. */
  readonly reason: DriverStopReason;
  /** The queue that was reset, or -1 when the whole device stopped. */
  readonly queueIndex: number;
}

/** What a device-type driver (blk, entropy, ...) gets once the device is DRIVER_OK. */
export interface DriverContext {
  /** Device ID of the device driven, when the context knows it (VirtioDriver does). */
  readonly deviceId?: number;
  /** The guest memory the rings and buffers live in. */
  readonly memory: GuestMemory;
  /** Negotiated features. */
  readonly features: bigint;
  /**
   * Whether config and ring fields are little-endian (false only for a legacy big-endian guest).
   */
  readonly littleEndian: boolean;
  /** Allocator of guest memory for request headers, buffers and rings. */
  readonly dma: DmaAllocator;
  /** Number of queues set up. */
  readonly numQueues: number;
  /** The driver-side queue `index`, for a RequestQueue or a driver that runs its own ring. */
  queue(index: number): DriverQueue<number>;
  /** Publishes added buffers and notifies the device when its event suppression asks for it. */
  kick(index: number): void;
  /** Sets the used-buffer callback of queue `index`. */
  onUsed(index: number, cb: () => void): void;
  /** Sets the configuration change callback. */
  onConfigChange(cb: () => void): void;
  /** Reads config bytes consistently (2.5.1: retried until the generation is stable). */
  readConfig(offset: number, len: number): Uint8Array;
  /**
   * Size of the device configuration space when the transport tells it (PCI: the length of
   * the device configuration capability); null or absent when it does not (MMIO, CCW).
   */
  readonly configSize?: number | null;
  /** Writes `src` into config space at `offset`. */
  writeConfig(offset: number, src: Uint8Array): void;
  /**
   * Whether the driver suspended the device (VIRTIO_F_SUSPEND): buffers must not be made
   * available meanwhile (driver/content/27). Optional: absent means never suspended.
   */
  readonly suspended?: boolean;
  /**
   * Adds a listener told when in-flight buffers will never complete (device reset,
   * DEVICE_NEEDS_RESET, queue reset); returns a function that removes it. Optional: a context
   * without it never stops on its own.
   */
  onStop?(listener: (event: DriverStopEvent) => void): () => void;
}
