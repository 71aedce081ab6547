/**
 * The options of VirtioDriver.init: the features wanted and required, the device-type driver
 * to attach, the allocator for the rings, queue sizes and counts, indirect tables, config read
 * retries and administration queues. Split from virtio-driver.ts, which re-exports them.
 */
import type { DeviceDriverInfo } from './device-driver.js';
import type { DmaAllocator } from './dma-allocator.js';

/** How VirtioDriver.init negotiates and sets up the device. */
export interface VirtioDriverOptions {
  /**
   * Features the caller wants: device-type bits and transport bits. The driver accepts
   * `wanted & offered`, limited to transport bits it implements (driver/content/5, /7), and
   * always VERSION_1 on a modern interface (driver/content/31).
   */
  wantedFeatures: bigint;
  /**
   * Features the caller cannot work without (driver/content/8): when the device does not offer
   * one of them, the driver sets FAILED and stops instead of negotiating. Default none.
   */
  requiredFeatures?: bigint;
  /**
   * The device-type driver that will attach (DeviceDriver contract): the device must have its
   * device id, its required features are added to `requiredFeatures`, and device-type bits
   * outside its wanted and required features are never accepted.
   */
  driverType?: DeviceDriverInfo;
  /** Allocator of guest memory for the rings (and, through the context, request buffers). */
  dma: DmaAllocator;
  /** Queue sizes per queue (the last entry repeats); capped at each queue's maximum. Default 256. */
  queueSizes?: number[];
  /** Number of queues to set up (default: all the transport reports). */
  numQueues?: number;
  /** Use indirect tables when INDIRECT_DESC is negotiated (default true). */
  indirect?: boolean;
  /** Segments per indirect table (default 16, capped at the queue size). */
  indirectMaxSegments?: number;
  /** Bounds the generation retries of a config read (2.5.1). Default 1000. */
  configRetries?: number;
  /**
   * Administration virtqueues to set up (2.13) when the device offers VIRTIO_F_ADMIN_VQ and the
   * transport says where they are (PCI admin_queue_index): ADMIN_VQ is accepted and up to this
   * many are set up at admin_queue_index onwards (driver/transport-pci/23, /24). Default 0:
   * ADMIN_VQ is never accepted.
   */
  adminQueues?: number;
}
