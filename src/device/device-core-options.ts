/**
 * What a transport gives the DeviceCore it builds: guest memory, the interrupt sink, the
 * transport's feature bits and mode, counters, logging and the embedder's hooks.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { InterruptSink } from './types.js';
import type { Logger } from '../log.js';
import type { QueueStats } from './queue-stats.js';

/** What a transport gives the DeviceCore it builds. */
export interface DeviceCoreOptions {
  /** The guest memory the device's queues live in. */
  memory: GuestMemory;
  /** Where used-buffer and configuration change notifications go (the transport's interrupt). */
  interrupts: InterruptSink;
  /** Transport bits this transport supports; default TRANSPORT_FEATURES_SUPPORTED. */
  transportFeatures?: bigint;
  /** Legacy interface in use: no FEATURES_OK, features take effect when written, guest endian. */
  legacy?: boolean;
  /**
   * VIRTIO_F_NOTIF_CONFIG_DATA (offered where the transport passes the bit, PCI): the 16-bit
   * value queue `index` is named by in notifications; default the index.
   */
  readonly queueNotifyData?: (index: number) => number;
  /** Counters to add to (one object may serve many cores: a back-end's connections); default a new one. */
  readonly stats?: QueueStats;
  /** Legacy only: false for a big-endian guest. Modern interfaces are always little-endian. */
  littleEndian?: boolean;
  /**
   * Where the core logs (DEVICE_NEEDS_RESET with its reason, refused writes); silent by default.
   */
  logger?: Logger;
  /**
   * Called before the core reads guest memory on its own, outside any bus access: a deferred
   * used-buffer notification reads the ring's suppression fields in a microtask. An emulator
   * whose RAM buffer can be replaced while the guest runs (v86 grows its wasm memory, which
   * detaches the old buffer) rebinds the memory here (`V86PciAdapter.refreshMemory`).
   */
  readonly beforeHostAccess?: () => void;
  /**
   * The device reaches guest memory through addresses the platform translates (`memory` is an
   * IOMMU endpoint's view, IommuTranslation.endpointMemory): VIRTIO_F_ACCESS_PLATFORM is offered
   * (device/content/22) and FEATURES_OK refused when the driver declines it (device/content/23:
   * its physical addresses would reach the wrong memory). Modern interfaces only. Default false.
   */
  readonly platformTranslated?: boolean;
}
