/**
 * The device registry: every device type virtio-ts knows, by name. The CLI builds its
 * sub-commands, usage and `--print-capabilities` from it, device workers build devices from it,
 * and the transport matrix runs every registered type on every transport.
 *
 * Adding a device type: a folder src/devices/<type>/ with its record (see
 * docs/writing-a-device.md), and one line in BUILTIN_DEVICE_TYPES.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { capabilities } from '../vhost-user/capabilities.js';
import { BALLOON_TYPE } from './balloon/balloon-type.js';
import { BLK_TYPE } from './blk/blk-type.js';
import { CONSOLE_TYPE } from './console/console-type.js';
import type { DeviceType } from './device-type.js';
import { ENTROPY_TYPE } from './entropy/entropy-type.js';
import { FS_TYPE } from './fs/fs-type.js';
import { P9_TYPE } from './9p/p9-type.js';
import { INPUT_TYPE } from './input/input-type.js';
import { VSOCK_TYPE } from './vsock/vsock-type.js';
import { NET_TYPE } from './net/net-type.js';
import { SCSI_TYPE } from './scsi/scsi-type.js';
import { MEM_TYPE } from './mem/mem-type.js';
import { RTC_TYPE } from './rtc/rtc-type.js';
import { I2C_TYPE } from './i2c/i2c-type.js';
import { GPIO_TYPE } from './gpio/gpio-type.js';
import { GPU_TYPE } from './gpu/gpu-type.js';
import { PMEM_TYPE } from './pmem/pmem-type.js';
import { CRYPTO_TYPE } from './crypto/crypto-type.js';
import { SOUND_TYPE } from './sound/sound-type.js';
import { CAN_TYPE } from './can/can-type.js';
import { SPI_TYPE } from './spi/spi-type.js';
import { RPMB_TYPE } from './rpmb/rpmb-type.js';
import { SCMI_TYPE } from './scmi/scmi-type.js';
import { MEDIA_TYPE } from './media/media-type.js';
import { IOMMU_TYPE } from './iommu/iommu-type.js';

/** The types built into virtio-ts, in the order the CLI lists them (one line a type). */
export const BUILTIN_DEVICE_TYPES: readonly DeviceType[] = [
  BLK_TYPE,
  ENTROPY_TYPE,
  FS_TYPE,
  P9_TYPE,
  INPUT_TYPE,
  BALLOON_TYPE,
  VSOCK_TYPE,
  NET_TYPE,
  CONSOLE_TYPE,
  SCSI_TYPE,
  MEM_TYPE,
  RTC_TYPE,
  I2C_TYPE,
  GPIO_TYPE,
  GPU_TYPE,
  PMEM_TYPE,
  CRYPTO_TYPE,
  SOUND_TYPE,
  CAN_TYPE,
  SPI_TYPE,
  RPMB_TYPE,
  SCMI_TYPE,
  MEDIA_TYPE,
  IOMMU_TYPE,
];

/** Sub-commands that are not device types. */
const RESERVED_NAMES = new Set(['demo', 'descriptors', 'help']);
// A leading digit is allowed: the 9P transport's name is "9p" (QEMU's virtio-9p, vhost-user.json's "9p").
const NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

const registered = new Map<string, DeviceType>();

/**
 * Adds a device type (an application's own, or a test's). Refuses a malformed or taken name,
 * a device ID out of range, or vhost-user capabilities the schema does not define.
 */
export function registerDeviceType(type: DeviceType): void {
  if (!NAME.test(type.name) || RESERVED_NAMES.has(type.name)) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device type name "${type.name}" is not a lower-case word or is reserved`);
  }
  if (registered.has(type.name)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device type "${type.name}" is registered already`);
  // 5: device IDs are 16 bits; 0 is "reserved (invalid)".
  if (!Number.isInteger(type.deviceId) || type.deviceId < 1 || type.deviceId > 0xffff) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device type "${type.name}": device ID ${type.deviceId} out of range`);
  }
  if (type.vhostUser) capabilities(type.vhostUser.type, type.vhostUser.features);
  registered.set(type.name, type);
}

/** Removes a type registered with registerDeviceType (returns whether it was there). */
export function unregisterDeviceType(name: string): boolean {
  return registered.delete(name);
}

/** Every registered type, built-in ones first, in registration order. */
export function deviceTypes(): readonly DeviceType[] {
  return [...registered.values()];
}

/** The type registered under `name`, or undefined. */
export function deviceType(name: string): DeviceType | undefined {
  return registered.get(name);
}

for (const t of BUILTIN_DEVICE_TYPES) registerDeviceType(t);
