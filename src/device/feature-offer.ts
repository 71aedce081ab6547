/**
 * 2.2 Feature bits, the device side's two decisions: which bits a device offers on a given
 * transport and interface (modern or legacy), and why FEATURES_OK must be refused for what a
 * driver accepted. Pure functions of the device and the transport's bits, used by DeviceCore.
 */
import { DEVICE_TYPE_FEATURES, F, featureBits } from '../spec/features.js';
import type { VirtioDevice } from './types.js';

const U32_MASK = 0xffff_ffffn;
/** Transport bits a device need not list: the transport implements them entirely. */
const TRANSPORT_ONLY_BITS = F.NOTIF_CONFIG_DATA;
/** 6.3: legacy-only transport bits a legacy interface may carry. */
const LEGACY_TRANSPORT_BITS = F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT;

/**
 * The bits `device` offers (device_feature) on a transport supporting `transportFeatures`:
 * its device-type bits and the transport bits both support; a modern interface adds VERSION_1,
 * a legacy one carries 32 bits and never VERSION_1.
 */
export function offeredFeatures(device: VirtioDevice, transportFeatures: bigint, legacy: boolean, platformTranslated: boolean): bigint {
  const dev = device.offeredFeatures;
  if (legacy) {
    // A legacy interface carries 32 feature bits and never VERSION_1 (6.3, 2.2.3).
    const transport = transportFeatures | LEGACY_TRANSPORT_BITS;
    return dev & (DEVICE_TYPE_FEATURES | transport) & U32_MASK & ~(device.modernOnlyFeatures ?? 0n);
  }
  // device/content/20: a modern device offers VERSION_1.
  let offered = (dev & (DEVICE_TYPE_FEATURES | (transportFeatures & ~LEGACY_TRANSPORT_BITS & ~F.SUSPEND))) | F.VERSION_1;
  // Bits the transport alone implements (NOTIF_CONFIG_DATA: PCI's queue_notif_config_data):
  // the device has no part in them, so they are offered whatever it lists.
  offered |= transportFeatures & TRANSPORT_ONLY_BITS;
  // VIRTIO_F_ADMIN_VQ needs a transport that says where the administration queues are
  // (PCI's admin_queue_index); MMIO and Channel I/O reserve the bit (4.2.4, 4.3.4).
  if ((transportFeatures & F.ADMIN_VQ) === 0n) offered &= ~F.ADMIN_VQ;
  // VIRTIO_F_SUSPEND: the core runs the protocol for any device that can stop and restart
  // (its suspend and resume hooks), never for one that only lists the bit.
  if ((transportFeatures & F.SUSPEND) !== 0n && device.suspend && device.resume) offered |= F.SUSPEND;
  if (platformTranslated) offered |= F.ACCESS_PLATFORM;
  return offered;
}

/**
 * The reason FEATURES_OK must be refused for `accepted` (2.2.1, device/content/4: bits not
 * offered, VERSION_1 missing on a modern interface, ACCESS_PLATFORM declined where memory is
 * translated, the device's own validateFeatures), or null. May throw what validateFeatures throws.
 */
export function featureProblem(device: VirtioDevice, offered: bigint, accepted: bigint, legacy: boolean, platformTranslated: boolean): string | null {
  const extra = accepted & ~offered;
  if (extra !== 0n) return `driver accepted bits not offered: ${featureBits(extra).join(',')}`;
  if (!legacy && (accepted & F.VERSION_1) === 0n) return 'VERSION_1 not accepted on a modern interface';
  if (platformTranslated && !legacy && (accepted & F.ACCESS_PLATFORM) === 0n) return 'ACCESS_PLATFORM not accepted: the device reaches memory through platform-translated addresses';
  return device.validateFeatures?.(accepted) ?? null;
}
