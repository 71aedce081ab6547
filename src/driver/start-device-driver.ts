/**
 * One call from a transport to a running device-type driver: the initialization sequence of
 * 3.1.1 negotiated from the driver's contract (device id, wanted and required features), then
 * the driver attached to the DRIVER_OK device.
 */
import { F } from '../spec/features.js';
import { type DeviceDriver, type DeviceDriverType, attachDeviceDriver } from './device-driver.js';
import type { DriverTransport } from './types.js';
import { VirtioDriver, type VirtioDriverOptions } from './virtio-driver.js';

/**
 * Options of startDeviceDriver: VirtioDriver's, without the features (they come from the driver's
 * contract).
 */
export interface StartDeviceDriverOptions<O> extends Omit<VirtioDriverOptions, 'wantedFeatures' | 'driverType'> {
  /** Transport and ring features wanted besides the driver's own. Default VERSION_1, INDIRECT_DESC, EVENT_IDX. */
  transportFeatures?: bigint;
  /** Options passed to the driver's attach. */
  driverOptions?: O;
}

/** A device-type driver started by startDeviceDriver, with the VirtioDriver under it. */
export interface StartedDeviceDriver<D extends DeviceDriver> {
  /** The generic driver: features, queues, reset. */
  readonly virtio: VirtioDriver;
  /** The device-type driver, attached. */
  readonly driver: D;
  /** Detaches the driver (pending requests fail) and resets the device. */
  close(): void;
}

/**
 * Transport features startDeviceDriver wants unless told otherwise: VERSION_1, INDIRECT_DESC,
 * EVENT_IDX, and NOTIF_CONFIG_DATA (driver/content/42: accepted when offered; only a PCI device
 * offers it and only the PCI driver transport implements it, so elsewhere it is never accepted).
 */
export const DEFAULT_TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.NOTIF_CONFIG_DATA;

/**
 * Initialises the device behind `transport` for `type` and attaches it. Fails with
 * DeviceDriverMismatchError for another device type and FEATURES_REJECTED when a required
 * feature is not offered (the device is then left FAILED, driver/content/20).
 */
export async function startDeviceDriver<D extends DeviceDriver, O>(
  transport: DriverTransport,
  type: DeviceDriverType<D, O>,
  opts: StartDeviceDriverOptions<O>,
): Promise<StartedDeviceDriver<D>> {
  const { transportFeatures, driverOptions, ...rest } = opts;
  const virtio = await VirtioDriver.init(transport, {
    ...rest,
    wantedFeatures: type.wantedFeatures | (transportFeatures ?? DEFAULT_TRANSPORT_FEATURES),
    driverType: type,
  });
  let driver: D;
  try {
    driver = attachDeviceDriver(type, virtio.context, driverOptions);
  } catch (e) {
    virtio.reset();
    throw e;
  }
  return {
    virtio,
    driver,
    close(): void {
      driver.detach();
      virtio.reset();
    },
  };
}
