/**
 * Names for the bits an inspector shows: device status (2.1), feature bits (the reserved ones of
 * 6, each device type's of 5.x, vhost-user's bits 26 and 30) and vhost-user protocol features.
 * Read from the spec tables both sides use, so a name here is the name in the code.
 */
import { BalloonFeatureBit } from '../spec/balloon.js';
import { BlkFeatureBit } from '../spec/blk.js';
import { CanFeatureBit } from '../spec/can.js';
import { ConsoleFeatureBit } from '../spec/console.js';
import { CryptoFeatureBit } from '../spec/crypto.js';
import { DeviceId } from '../spec/device-id.js';
import { FeatureBit } from '../spec/features.js';
import { FsFeatureBit } from '../spec/fs.js';
import { GpioF } from '../spec/gpio.js';
import { GpuFeatureBit } from '../spec/gpu.js';
import { I2cF } from '../spec/i2c.js';
import { IommuFeatureBit } from '../spec/iommu.js';
import { MemFeatureBit } from '../spec/mem.js';
import { NetFeatureBit } from '../spec/net.js';
import { P9FeatureBit } from '../spec/9p.js';
import { PmemFeatureBit } from '../spec/pmem.js';
import { RtcFeatureBit } from '../spec/rtc.js';
import { ScmiFeatureBit } from '../spec/scmi.js';
import { ScsiFeatureBit } from '../spec/scsi.js';
import { SoundFeatureBit } from '../spec/sound.js';
import { Status } from '../spec/status.js';
import { VsockF } from '../spec/vsock.js';
import { ProtocolFeature, VHOST_F_LOG_ALL, VHOST_USER_F_PROTOCOL_FEATURES } from '../vhost-user/messages.js';

type BitTable = Readonly<Record<string, number>>;

/** `{ NAME: 1n << n }` tables as bit numbers. */
function fromMasks(masks: Readonly<Record<string, bigint>>): BitTable {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(masks)) {
    let n = 0;
    while (n < 128 && v >> BigInt(n) !== 1n) n++;
    out[k] = n;
  }
  return out;
}

/** Device-type feature bits per device ID (5.x "Feature bits"). */
const DEVICE_BITS: ReadonlyMap<number, BitTable> = new Map<number, BitTable>([
  [DeviceId.NET, NetFeatureBit],
  [DeviceId.BLOCK, BlkFeatureBit],
  [DeviceId.CONSOLE, ConsoleFeatureBit],
  [DeviceId.SCSI, ScsiFeatureBit],
  [DeviceId.NINEP, P9FeatureBit],
  [DeviceId.BALLOON_TRADITIONAL, BalloonFeatureBit],
  [DeviceId.GPU, GpuFeatureBit],
  [DeviceId.RTC, RtcFeatureBit],
  [DeviceId.VSOCK, fromMasks(VsockF)],
  [DeviceId.CRYPTO, CryptoFeatureBit],
  [DeviceId.IOMMU, IommuFeatureBit],
  [DeviceId.MEM, MemFeatureBit],
  [DeviceId.SOUND, SoundFeatureBit],
  [DeviceId.FS, FsFeatureBit],
  [DeviceId.PMEM, PmemFeatureBit],
  [DeviceId.SCMI, ScmiFeatureBit],
  [DeviceId.I2C_ADAPTER, fromMasks(I2cF)],
  [DeviceId.CAN, CanFeatureBit],
  [DeviceId.GPIO, fromMasks(GpioF)],
]);

/** One bit of a bitmap, named, with whether each set it belongs to has it. */
export interface NamedBit {
  readonly bit: number;
  readonly name: string;
}

/** The name of feature bit `n` of a device of type `deviceId` (`bit 45` when it has none). */
export function featureBitName(deviceId: number, n: number): string {
  if (n === VHOST_F_LOG_ALL) return 'VHOST_F_LOG_ALL';
  if (n === VHOST_USER_F_PROTOCOL_FEATURES) return 'VHOST_USER_F_PROTOCOL_FEATURES';
  for (const [k, v] of Object.entries(FeatureBit)) if (v === n) return k;
  const table = DEVICE_BITS.get(deviceId);
  if (table) for (const [k, v] of Object.entries(table)) if (v === n) return k;
  return `bit ${n}`;
}

/** The bits set in `bitmap`, ascending, named by `name`. */
export function namedBits(bitmap: bigint, name: (n: number) => string): NamedBit[] {
  const out: NamedBit[] = [];
  for (let n = 0; n < 128 && bitmap >> BigInt(n) !== 0n; n++) {
    if (((bitmap >> BigInt(n)) & 1n) === 1n) out.push({ bit: n, name: name(n) });
  }
  return out;
}

/** vhost-user protocol feature `n`'s name ("Protocol features"). */
export function protocolFeatureName(n: number): string {
  for (const [k, v] of Object.entries(ProtocolFeature)) if (v === n) return k;
  return `bit ${n}`;
}

/** Every status bit (2.1) with whether `status` has it, in bit order. */
export function statusBits(status: number): {
  /** The bit's name in the Status table: ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, DEVICE_NEEDS_RESET, FAILED. */
  name: string;
  /** The bit's value in the device status field (a single-bit mask, e.g. 4 for DRIVER_OK). */
  value: number;
  /** Whether `status` has the bit. */
  set: boolean;
}[] {
  return Object.entries(Status)
    .map(([name, value]) => ({ name, value, set: (status & value) !== 0 }))
    .sort((a, b) => a.value - b.value);
}
