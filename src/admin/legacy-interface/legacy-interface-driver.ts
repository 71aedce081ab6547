/**
 * 2.12.1.1 Legacy Interfaces, driver side: the owner's driver accessing a member's legacy
 * interface on behalf of a legacy driver (a hypervisor forwarding I/O BAR accesses). Values are
 * encoded and decoded little-endian (driver/admin-cmds-legacy-interface/1); each access is one
 * field of the legacy header or of the device configuration (/2, /3: refused with
 * INVALID_ARGUMENT before sending otherwise); notifications go to the NOTIFY_INFO address when the
 * device gives one (/4), whose entries are validated as /5 and /6 ask.
 */
import { ADMIN_GROUP_SRIOV, type AdminCommandSender } from '../admin-command-handler.js';
import { expectAdminOk } from '../admin-command-status-error.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { ConfigLayout } from '../../spec/config-layout.js';
import { LegacyReg } from '../../transport/pci/constants.js';
import { LEGACY_COMMON_FIELDS } from './legacy-common-fields.js';
import { LEGACY_WRITE_HEADER_SIZE, LegacyOpcode } from './legacy-interface-handler.js';
import { decodeLegacyNotifyInfo, LEGACY_NOTIFY_RESULT_SIZE, type LegacyNotifyBars, type LegacyNotifyEntry } from './legacy-notify-info.js';


function refuse(message: string): never {
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkCommonField(offset: number, width: number): void {
  // driver/admin-cmds-legacy-interface/2: exactly one field of the common configuration.
  if (!LEGACY_COMMON_FIELDS.some((f) => f.offset === offset && f.width === width)) refuse(`legacy common configuration: no field of ${width} bytes at ${offset}`);
}

function checkDeviceField(layout: ConfigLayout | undefined, offset: number, width: number): void {
  if (width < 1 || width > 8 || offset < 0 || offset > 0xff) refuse(`legacy device configuration: ${width} bytes at ${offset}`);
  // driver/admin-cmds-legacy-interface/3: inside one field of the device configuration.
  if (layout && !layout.fields.some((f) => offset >= f.offset && offset + width <= f.offset + f.width)) {
    refuse(`legacy device configuration: ${width} bytes at ${offset} are not inside one field`);
  }
}

/** Little-endian bytes of `value` (driver/admin-cmds-legacy-interface/1). */
function le(value: number, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let v = value;
  for (let i = 0; i < width; i++) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

function fromLe(bytes: Uint8Array): number {
  let v = 0;
  for (let i = bytes.length - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
  return v;
}

function writeData(offset: number, bytes: Uint8Array): Uint8Array {
  const data = new Uint8Array(LEGACY_WRITE_HEADER_SIZE + bytes.length);
  data[0] = offset;
  data.set(bytes, LEGACY_WRITE_HEADER_SIZE);
  return data;
}

/** A member's legacy interface as its owner's driver reaches it. */
export class LegacyMemberDriver {
  private notifyTarget: LegacyNotifyEntry | null = null;

  /**
   * @param send the owner's administration command sender
   * @param memberId the VF number (1..NumVFs)
   * @param configLayout the member device type's configuration layout (checks device accesses)
   */
  constructor(
    private readonly send: AdminCommandSender,
    readonly memberId: bigint,
    private readonly configLayout?: ConfigLayout,
  ) {}

  /** LEGACY_COMMON_CFG_WRITE of one header field. */
  async writeCommon(offset: number, width: number, value: number): Promise<void> {
    checkCommonField(offset, width);
    const reply = await this.send(LegacyOpcode.COMMON_CFG_WRITE, ADMIN_GROUP_SRIOV, this.memberId, writeData(offset, le(value, width)), 0);
    expectAdminOk('LEGACY_COMMON_CFG_WRITE', reply);
  }

  /** LEGACY_COMMON_CFG_READ of one header field. */
  async readCommon(offset: number, width: number): Promise<number> {
    checkCommonField(offset, width);
    const reply = await this.send(LegacyOpcode.COMMON_CFG_READ, ADMIN_GROUP_SRIOV, this.memberId, Uint8Array.of(offset), width);
    const result = expectAdminOk('LEGACY_COMMON_CFG_READ', reply);
    if (result.length !== width) throw new VirtioError(ErrorCode.REQUEST_FAILED, `LEGACY_COMMON_CFG_READ returned ${result.length} bytes, asked ${width}`);
    return fromLe(result);
  }

  /** LEGACY_DEV_CFG_WRITE of bytes inside one device configuration field. */
  async writeDevice(offset: number, bytes: Uint8Array): Promise<void> {
    checkDeviceField(this.configLayout, offset, bytes.length);
    expectAdminOk('LEGACY_DEV_CFG_WRITE', await this.send(LegacyOpcode.DEV_CFG_WRITE, ADMIN_GROUP_SRIOV, this.memberId, writeData(offset, bytes), 0));
  }

  /** LEGACY_DEV_CFG_READ of `length` bytes inside one device configuration field. */
  async readDevice(offset: number, length: number): Promise<Uint8Array> {
    checkDeviceField(this.configLayout, offset, length);
    const reply = await this.send(LegacyOpcode.DEV_CFG_READ, ADMIN_GROUP_SRIOV, this.memberId, Uint8Array.of(offset), length);
    const result = expectAdminOk('LEGACY_DEV_CFG_READ', reply);
    if (result.length !== length) throw new VirtioError(ErrorCode.REQUEST_FAILED, `LEGACY_DEV_CFG_READ returned ${result.length} bytes, asked ${length}`);
    return result.slice();
  }

  /** A device configuration field as a little-endian number (1, 2, 4 bytes; 8 exact up to 2^53). */
  async readDeviceValue(offset: number, width: number): Promise<number> {
    return fromLe(await this.readDevice(offset, width));
  }

  /** A device configuration field written as a little-endian number. */
  async writeDeviceValue(offset: number, width: number, value: number): Promise<void> {
    await this.writeDevice(offset, le(value, width));
  }

  /**
   * LEGACY_NOTIFY_INFO: the valid notification addresses, in preference order, validated against
   * the BARs of the owner and the member (driver/admin-cmds-legacy-interface/5, /6). The first one
   * becomes where notify() writes.
   */
  async notifyInfo(bars: LegacyNotifyBars): Promise<LegacyNotifyEntry[]> {
    const reply = await this.send(LegacyOpcode.NOTIFY_INFO, ADMIN_GROUP_SRIOV, this.memberId, new Uint8Array(0), LEGACY_NOTIFY_RESULT_SIZE);
    const entries = decodeLegacyNotifyInfo(expectAdminOk('LEGACY_NOTIFY_INFO', reply), bars);
    this.notifyTarget = entries[0] ?? null;
    return entries;
  }

  /**
   * A driver notification for queue `queueIndex`: to the notification address when NOTIFY_INFO gave
   * one (driver/admin-cmds-legacy-interface/4: `writeBar` writes the 16-bit little-endian index
   * there), else COMMON_CFG_WRITE at Queue Notify. Returns which path was taken.
   */
  async notify(queueIndex: number, writeBar?: (entry: LegacyNotifyEntry, value: Uint8Array) => void | Promise<void>): Promise<'address' | 'command'> {
    const target = this.notifyTarget;
    if (target && writeBar) {
      await writeBar(target, le(queueIndex & 0xffff, 2));
      return 'address';
    }
    await this.writeCommon(LegacyReg.QUEUE_NOTIFY, 2, queueIndex);
    return 'command';
  }
}
