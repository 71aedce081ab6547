/**
 * The DeviceDriver contract: what a device-type driver (blk, entropy, net, fs, ...) declares so
 * the generic VirtioDriver can negotiate for it (3.1.1 steps 4 to 6: device id, features it can
 * use, features it cannot work without) and how it attaches to an initialised device. A driver
 * for a new device type is its contract plus typed requests over a RequestQueue.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { deviceIdName } from '../spec/device-id.js';
import type { DriverContext } from './types.js';

/** The numbers a device-type driver negotiates with. */
export interface DeviceDriverInfo {
  /** For messages (e.g. 'virtio-blk'). */
  readonly name: string;
  /** The device id it drives (5: Device Types). */
  readonly deviceId: number;
  /** Device-type feature bits it can use; VirtioDriver accepts no other device-type bit. */
  readonly wantedFeatures: bigint;
  /** Feature bits it cannot work without (driver/content/8): missing ones fail initialization. */
  readonly requiredFeatures: bigint;
  /**
   * Called once the driver features are written and before FEATURES_OK, with the configuration
   * space readable as those features make it (e.g. blk reads its zoned model to drop DISCARD for
   * a host-managed device, driver/blk/6). Returns the features to accept instead (a subset);
   * absent: the features stand.
   */
  readonly refineFeatures?: (accepted: bigint, readConfig: (offset: number, dst: Uint8Array) => void, littleEndian: boolean) => bigint;
  /**
   * Bytes of device configuration space the driver needs under the negotiated `features` (the
   * fields it operates with). Checked against the size the transport reports, when it reports
   * one: a larger space is fine, only a smaller one fails (driver/content/13). Absent: no check.
   */
  readonly configBytesNeeded?: (features: bigint) => number;
}

/** The device's configuration space is smaller than the fields the driver needs (driver/content/13). */
export class ConfigSpaceTooSmallError extends VirtioError {
  constructor(
    /** The driver's name (its contract's `name`). */
    readonly driverName: string,
    /** The size the transport reports. */
    readonly size: number,
    /** The bytes the driver needs under the negotiated features. */
    readonly needed: number,
  ) {
    super(ErrorCode.CONFIG_OUT_OF_RANGE, `${driverName}: device configuration space of ${size} bytes, the driver needs ${needed}`);
  }
}

/** What every running device-type driver offers besides its typed requests. */
export interface DeviceDriver {
  /** Stops using the device: pending requests fail with RequestAbortedError('detached'). */
  detach(): void;
}

/** A device-type driver: its contract and how to attach it to an initialised device. */
export interface DeviceDriverType<D extends DeviceDriver = DeviceDriver, O = undefined> extends DeviceDriverInfo {
  /** Builds the driver over a context that is DRIVER_OK; use attachDeviceDriver to check the contract first. */
  attach(ctx: DriverContext, options?: O): D;
}

/** The negotiated features lack some the driver requires (driver/content/8). */
export class DriverFeaturesError extends VirtioError {
  constructor(
    /** The driver's name (its contract's `name`). */
    readonly driverName: string,
    /** The required bits that were not negotiated. */
    readonly missing: bigint,
  ) {
    super(ErrorCode.FEATURES_REJECTED, `${driverName}: required features 0x${missing.toString(16)} were not negotiated`);
  }
}

/** The device is not of the type the driver drives. */
export class DeviceDriverMismatchError extends VirtioError {
  constructor(
    /** The driver's name (its contract's `name`). */
    readonly driverName: string,
    /** The device id the driver drives. */
    readonly expectedDeviceId: number,
    /** The device id found. */
    readonly deviceId: number,
  ) {
    super(ErrorCode.INVALID_ARGUMENT, `${driverName} drives ${deviceIdName(expectedDeviceId)} devices, not ${deviceIdName(deviceId)} (id ${deviceId})`);
  }
}

/** Throws DeviceDriverMismatchError unless `deviceId` is the one the driver drives. */
export function checkDeviceDriverMatch(info: DeviceDriverInfo, deviceId: number): void {
  if (deviceId !== info.deviceId) throw new DeviceDriverMismatchError(info.name, info.deviceId, deviceId);
}

/**
 * Throws when `ctx` is not a device this driver can attach to: another device id (when the
 * context knows it) or a required feature not negotiated. Device-type drivers call it from their
 * constructor, so attaching through any path checks the contract.
 */
export function checkDriverContext(info: DeviceDriverInfo, ctx: DriverContext): void {
  if (ctx.deviceId !== undefined) checkDeviceDriverMatch(info, ctx.deviceId);
  const missing = info.requiredFeatures & ~ctx.features;
  if (missing !== 0n) throw new DriverFeaturesError(info.name, missing);
  // driver/content/13: large enough for the fields in use; never an exact size (the device may
  // have more fields than this driver knows, 2.5).
  const size = ctx.configSize ?? null;
  const needed = info.configBytesNeeded?.(ctx.features) ?? 0;
  if (size !== null && size < needed) throw new ConfigSpaceTooSmallError(info.name, size, needed);
}

/** Checks the contract against `ctx`, then attaches the driver. */
export function attachDeviceDriver<D extends DeviceDriver, O>(type: DeviceDriverType<D, O>, ctx: DriverContext, options?: O): D {
  checkDriverContext(type, ctx);
  return type.attach(ctx, options);
}
