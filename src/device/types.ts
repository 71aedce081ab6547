import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue, QueueConfig } from '../queue/types.js';
import type { QueueStats } from './queue-stats.js';

/**
 * What a device sees once the driver set DRIVER_OK (or a vhost-user front-end started its
 * rings): guest memory, the negotiated features, its queues, and the ways to signal the driver.
 */
export interface DeviceContext {
  /** The guest memory the device's queues and buffers live in. */
  readonly memory: GuestMemory;
  /** Negotiated features (device-specific and transport bits). */
  readonly features: bigint;
  /** False for a legacy interface on a big-endian guest (rings and config in guest endian). */
  readonly littleEndian: boolean;
  /** The queue at `index`, or null when the driver did not enable it. */
  queue(index: number): DeviceQueue | null;
  /**
   * Sends a used-buffer notification for queue `index` if the queue's event suppression asks
   * for one (callers need not check `needsNotification` themselves).
   */
  notifyUsed(index: number): void;
  /**
   * Present where the transport's driver runs alongside the device (`InterruptSink.usedBufferNow`):
   * like `notifyUsed`, but sent at once even inside a processing pass. The queue server uses it
   * to hand each completed request to a waiting driver while it serves the rest of the ring.
   */
  readonly notifyUsedNow?: ((index: number) => void) | undefined;
  /** Sends a configuration change notification (after the device changed its config). */
  notifyConfigChange(): void;
  /**
   * The device hit an error it cannot recover from: sets DEVICE_NEEDS_RESET and sends a
   * configuration change notification (2.1.2). `cause` (the error behind it, if any) reaches
   * a driver that can see the device's errors (in-process transports) as the `cause` of its
   * VirtioError.
   */
  needsReset(reason: string, cause?: unknown): void;
  /**
   * The device's per-queue counters (kicks, calls, requests, bytes, errors), when its transport
   * keeps them (DeviceCore does). The queue server counts requests and bytes itself; a device
   * counts the requests it answers with an error status through `stats.error(queue)`.
   */
  readonly stats?: QueueStats;
}

/**
 * 2.10 Shared Memory Regions: memory the device allocates and presents to the driver, outside
 * the rings. The transport decides where the driver sees it (a PCI BAR with a
 * VIRTIO_PCI_CAP_SHARED_MEMORY_CFG capability, the MMIO SHMSel/SHMLen/SHMBase registers);
 * references into it are offsets from its start (2.10.1).
 */
export interface SharedMemoryRegion {
  /** shmid: device-specific meaning (e.g. virtio-fs DAX window is 0). */
  readonly id: number;
  /** Length in bytes (a multiple of 4096 so a transport can map it page by page). */
  readonly length: number;
  /** The host memory backing the region, when the device serves it from this process. */
  readonly memory?: Uint8Array;
}

/**
 * A virtio device: a small object that does not know its transport. Transports (in-process,
 * PCI, MMIO, Channel I/O, vhost-user) drive it through a `DeviceCore`.
 */
export interface VirtioDevice {
  /** 5 Device Types: the device ID. */
  readonly deviceId: number;
  /** Features offered: device-specific bits and the transport bits this device supports. */
  readonly offeredFeatures: bigint;
  /**
   * Device-type bits never offered through a legacy interface, where feature negotiation has no
   * FEATURES_OK step (e.g. VIRTIO_BLK_F_ZONED, device/blk/5). None by default.
   */
  readonly modernOnlyFeatures?: bigint;
  /** Maximum size of each queue; its length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Size of the device-specific configuration space in bytes. */
  readonly configSize: number;
  /** 2.10: shared memory regions the transport presents to the driver (none when absent). */
  readonly sharedMemoryRegions?: readonly SharedMemoryRegion[];
  /**
   * 2.13 administration virtqueues, when the device has them (AdminDevice): the first index and
   * the count, after the device's own queues. A transport that defines their location (PCI
   * admin_queue_index / admin_queue_num) reports them; num_queues then excludes them.
   */
  readonly adminQueues?: AdminQueueRange;

  /**
   * Reads config bytes [offset, offset + dst.length) into dst. The core has checked bounds.
   * `features` is what was negotiated so far (some fields exist only with a feature);
   * `littleEndian` false for legacy big-endian guests.
   */
  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void;
  /** Writes config bytes; ignores writes to read-only fields. */
  writeConfig(offset: number, src: Uint8Array, features: bigint, littleEndian: boolean): void;
  /**
   * Whether a write of `size` bytes at `offset` touches only fields the driver may write under
   * `features` (see configWriteAllowed in spec/config-layout.ts). Transports whose protocol
   * refuses such writes (vhost-user SET_CONFIG) ask it; without it every in-range write is
   * accepted and left to writeConfig to ignore.
   */
  configWritable?(offset: number, size: number, features: bigint): boolean;

  /**
   * Device-specific feature dependencies (e.g. a feature that needs another): returns null when
   * `accepted` is valid, or the reason FEATURES_OK must be refused.
   */
  validateFeatures?(accepted: bigint): string | null;

  /**
   * Device Suspend (VIRTIO_F_SUSPEND, offered by the core when both hooks exist): stop
   * consuming buffers, finish those in processing (used and notified), then resolve. A throw or
   * rejection makes the core set DEVICE_NEEDS_RESET.
   */
  suspend?(): void | Promise<void>;
  /** Resume after `suspend`: consume buffers again (a throw sets DEVICE_NEEDS_RESET). */
  resume?(): void;

  /** The driver set DRIVER_OK: start serving queues. */
  activate(ctx: DeviceContext): void;
  /** The driver notified queue `index` (available buffer notification). */
  onQueueNotify(index: number): void;
  /** Device reset: drop every in-flight request and all state from the last activation. */
  reset(): void;
  /**
   * 2.6.1 queue reset (RING_RESET): forget queue `index` only. A device whose teardown cannot
   * finish at once (a request still held by its back-end) returns a promise: the reset is
   * ongoing until it settles, and the transport presents 1 in queue_reset / QueueReset
   * meanwhile (device/transport-pci/23, device/transport-mmio/11).
   */
  resetQueue?(index: number): void | Promise<void>;
}

/** Where a device's administration virtqueues are (2.13): after its own queues. */
export interface AdminQueueRange {
  /** Index of the first administration queue (PCI admin_queue_index). */
  readonly first: number;
  /** Number of administration queues (PCI admin_queue_num). */
  readonly count: number;
}

/** Where a transport sends the device's notifications to the driver. */
export interface InterruptSink {
  /** Used-buffer notification for a queue (ISR bit 0 + IRQ, MSI-X vector, indicator, call fd). */
  usedBuffer(queueIndex: number): void;
  /**
   * Optional, for a driver that runs alongside the device (another process or thread, as a
   * vhost-user front-end): a used-buffer notification sent at once, even inside a processing
   * pass whose other notifications the transport batches to the pass's end, so the driver
   * starts on the buffers already used while the device serves the rest. Without it the
   * device's mid-pass completions are only notified at the end of the pass.
   */
  usedBufferNow?(queueIndex: number): void;
  /** Configuration change notification (ISR bit 1, config vector, config indicator). */
  configChange(): void;
}

/**
 * Per-queue registers a transport collects before the queue is enabled. The core owns them:
 * transports read them and change them only through the `DeviceCoreApi` queue setters, so
 * every transport applies the same rules (2.6, 2.7, 2.8) and the core alone resets them.
 */
export interface QueueRegisters {
  /** Queue size the driver chose (queue_size, 2.6); 0 before it is set. */
  readonly size: number;
  /** Guest address of the descriptor area. */
  readonly descAddr: number;
  /** Guest address of the driver area (split: available ring; packed: driver event suppression). */
  readonly driverAddr: number;
  /** Guest address of the device area (split: used ring; packed: device event suppression). */
  readonly deviceAddr: number;
  /** Whether the driver enabled the queue (queue_enable, QueueReady, CCW SET_VQ). */
  readonly enabled: boolean;
  /** Transport-specific: MSI-X vector for the queue (PCI), else 0xffff. */
  readonly msixVector: number;
  /** NOTIF_CONFIG_DATA: value the driver passes in notifications (defaults to the index). */
  readonly notifyData: number;
}

/** Which ring part a queue address register names (2.6: descriptor, driver and device areas). */
export const QueueArea = {
  DESC: 'descAddr',
  DRIVER: 'driverAddr',
  DEVICE: 'deviceAddr',
} as const;
export type QueueArea = (typeof QueueArea)[keyof typeof QueueArea];

/** Why the core refused a queue register write; stable values a transport maps to its answer. */
export const QueueRefusalReason = {
  /** No queue with that index (queue select out of range). */
  NO_QUEUE: 'NO_QUEUE',
  /** The queue is enabled: its fields are frozen until a (queue) reset (4.1.4.3.2, 4.2.2). */
  QUEUE_ENABLED: 'QUEUE_ENABLED',
  /** A value the register does not take (size 0, above the maximum, not a power of two...). */
  VALUE: 'VALUE',
  /** The device status does not allow it (before FEATURES_OK, FAILED, DEVICE_NEEDS_RESET). */
  STATE: 'STATE',
  /** The ring the registers describe cannot be used (alignment, outside guest memory). */
  RING: 'RING',
} as const;
export type QueueRefusalReason = (typeof QueueRefusalReason)[keyof typeof QueueRefusalReason];

/** A refused queue register write: the reason and a message naming the queue and the rule. */
export interface QueueRefusal {
  /** Why the write was refused, as a stable value. */
  readonly reason: QueueRefusalReason;
  /** The rule that refused it, naming the queue, for logs and error replies. */
  readonly message: string;
}

/**
 * The transport-independent device lifecycle: status state machine (2.1, 3.1), feature
 * negotiation (2.2), config space with generation (2.5), queue set-up, enable and reset (2.6),
 * DEVICE_NEEDS_RESET. Every transport decodes its bus accesses into these calls.
 */
export interface DeviceCoreApi {
  /** The device this core drives. */
  readonly device: VirtioDevice;
  /**
   * The device status byte (2.1): ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET,
   * FAILED.
   */
  readonly status: number;
  /** config_generation (2.5.1): changes whenever the device changes its configuration space. */
  readonly configGeneration: number;
  /** Features the driver wrote so far (driver_feature). */
  readonly driverFeatures: bigint;
  /** Features in force once FEATURES_OK was accepted. */
  readonly negotiatedFeatures: bigint;
  /** Number of queues the device has (its queueMaxSizes length). */
  readonly numQueues: number;

  /** Offered features including the transport bits (device_feature). */
  deviceFeatures(): bigint;
  /** 32-bit window of device_feature (select 0, 1, ...). */
  deviceFeatureWord(select: number): number;
  /** Sets a 32-bit window of driver_feature. Ignored after FEATURES_OK. */
  setDriverFeatureWord(select: number, value: number): void;
  /**
   * Sets all of driver_feature at once (transports that write 64 bits or more in one access,
   * vhost-user SET_FEATURES). Ignored after FEATURES_OK.
   */
  setDriverFeatures(features: bigint): void;

  /**
   * Writes device status. Writing 0 resets the device. FEATURES_OK is kept only if the
   * features are acceptable (the driver re-reads it, 3.1.1). DRIVER_OK activates the device.
   */
  setStatus(value: number): void;

  /** Config space access with bounds and generation handling; out of range reads give 0. */
  readConfig(offset: number, width: number): number;
  /**
   * Writes `width` bytes of config space (1, 2, 4 or 8) at `offset`; writes the device does not
   * allow are dropped.
   */
  writeConfig(offset: number, width: number, value: number): void;
  /**
   * Reads `dst.length` bytes of config space at `offset` (a vhost-user GET_CONFIG); bytes beyond
   * the config read 0.
   */
  readConfigBytes(offset: number, dst: Uint8Array): void;

  /** Queue registers of queue `index` (null when index >= numQueues). */
  queueRegisters(index: number): QueueRegisters | null;
  /**
   * Queue register setters, one rule set for every transport. Each returns null when the write
   * took effect, or why it was refused (the registers are then unchanged).
   *
   * Queue size: 1..max, a power of two for a split ring (2.7), any for a packed ring (2.8);
   * refused while the queue is enabled.
   */
  setQueueSize(index: number, size: number): QueueRefusal | null;
  /** Address of a ring part (a non-negative safe integer); refused while the queue is enabled. */
  setQueueAddress(index: number, area: QueueArea, address: number): QueueRefusal | null;
  /** MSI-X vector of the queue (0..0xffff; the transport checks it against its table). */
  setQueueMsixVector(index: number, vector: number): QueueRefusal | null;
  /** Enables the queue with its registers (queue_enable / QueueReady = 1, CCW SET_VQ). */
  setQueueEnabled(index: number): QueueRefusal | null;
  /**
   * Legacy address form (4.1.5.4, 4.2.4, 4.3.2.5.1): one contiguous split ring of the current
   * size at `address`, the used ring aligned to `align`, then enabled. Address 0 stops (resets)
   * the queue; a live queue refuses a new address.
   */
  setQueueLegacyAddress(index: number, address: number, align: number): QueueRefusal | null;
  /** Enables a queue using its registers, throwing a VirtioError when refused. */
  enableQueue(index: number): void;
  /** 2.6.1 queue reset. */
  resetQueue(index: number): void;
  /** Whether the reset of queue `index` is still ongoing (the device's teardown has not finished). */
  queueResetOngoing(index: number): boolean;
  /** Available buffer notification from the driver for `index` (with optional NOTIFICATION_DATA). */
  notifyQueue(index: number, data?: number): void;

  /** The live queue object once the device was activated. */
  queue(index: number): DeviceQueue | null;
  /** Builds the queue config the core would use for `index` (for tests and vhost-user). */
  queueConfig(index: number): QueueConfig | null;

  /** The guest memory the device's queues live in. */
  readonly memory: GuestMemory;
  /** Whether the driver's fields are little-endian (false only for a legacy big-endian guest). */
  readonly littleEndian: boolean;
}
