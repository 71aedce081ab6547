/** Starting a VirtioDriver over virtio-ts's vhost-user front-end (VhostUserDriverTransport). */
import type { DmaAllocator } from '../driver/dma-allocator.js';
import { VirtioDriver, type VirtioDriverOptions } from '../driver/virtio-driver.js';
import type { VhostUserDriverTransport } from './frontend-transport.js';

/** Whether `F.RING_PACKED` etc. are offered; a convenience for tests choosing a layout. */
export function offers(t: VhostUserDriverTransport, mask: bigint): boolean {
  return (t.backendFeatures & mask) === mask;
}

/**
 * Runs VirtioDriver's initialization over the transport and waits until the back-end has every
 * ring (`settle()`); the driver can be used at once afterwards.
 */
export async function startVhostUserDriver(
  t: VhostUserDriverTransport,
  opts: Omit<VirtioDriverOptions, 'dma'> & { dma?: DmaAllocator },
): Promise<VirtioDriver> {
  const d = VirtioDriver.initSync(t, { ...opts, dma: opts.dma ?? t.dma });
  try {
    await t.settle();
  } catch (e) {
    d.reset();
    throw e;
  }
  return d;
}
