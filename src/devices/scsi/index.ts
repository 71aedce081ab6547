export { ScsiDevice, SCSI_MAX_LUNS, type ScsiDeviceOptions, type ScsiLunSpec } from './scsi-device.js';
export { ScsiLogicalUnit, SCSI_BLOCK_SIZE, type ScsiLunOptions } from './scsi-lun.js';
export {
  ScsiDriver,
  ScsiCommandError,
  SCSI_DRIVER_FEATURES,
  type ScsiCommand,
  type ScsiCommandResult,
  type ScsiDriverConfig,
  type ScsiDriverOptions,
  type ScsiEvent,
} from './scsi-driver.js';
export { SCSI_TYPE, type ScsiDeviceArgs } from './scsi-type.js';
export { SCSI_CLI, type ScsiOptions, type ScsiLunOption } from './cli.js';
export type { ScsiControlHost } from './scsi-control.js';
