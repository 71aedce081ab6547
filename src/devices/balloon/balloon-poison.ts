/**
 * driver/balloon/35: poison_val must be in config before DRIVER_OK, but a device-type driver
 * (BalloonDriver) attaches after VirtioDriver has set DRIVER_OK. `withBalloonPoison` wraps the
 * transport so the value is written in the initialization sequence, right before the DRIVER_OK
 * status write, when PAGE_POISON was negotiated; afterwards it is never written again
 * (driver/balloon/36). Use: `VirtioDriver.init(withBalloonPoison(transport, 0xaa), ...)`.
 */
import type { DriverTransport } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { BALLOON_CONFIG_LAYOUT, BalloonF } from '../../spec/balloon.js';
import { writeConfigField } from '../../spec/config-layout.js';
import { Status } from '../../spec/status.js';

/** `transport`, wrapped so that `poisonVal` (u32) is written to poison_val right before DRIVER_OK when PAGE_POISON was accepted. */
export function withBalloonPoison(transport: DriverTransport, poisonVal: number): DriverTransport {
  if (!Number.isInteger(poisonVal) || poisonVal < 0 || poisonVal > 0xffff_ffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `poison_val ${poisonVal} is not a 32-bit value`);
  let accepted = 0n;
  const setDriverFeatures = (features: bigint): void => {
    accepted = features;
    transport.setDriverFeatures(features);
  };
  const setStatus = (value: number): void => {
    const before = transport.getStatus();
    const turningOn = (value & Status.DRIVER_OK) !== 0 && (before & Status.DRIVER_OK) === 0;
    if (turningOn && (accepted & BalloonF.PAGE_POISON) !== 0n) {
      // 5.5.4: the balloon config is little-endian, legacy included.
      writeConfigField(BALLOON_CONFIG_LAYOUT, 'poisonVal', poisonVal, (o, b) => transport.writeConfig(o, b), true);
    }
    transport.setStatus(value);
  };
  return new Proxy(transport, {
    get(target, prop) {
      if (prop === 'setDriverFeatures') return setDriverFeatures;
      if (prop === 'setStatus') return setStatus;
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
