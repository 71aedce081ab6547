/**
 * 2.12.1.2 Device and driver capabilities, driver side: query the supported ids, get device
 * capabilities, set driver capabilities. The driver's rules are kept here, before anything is
 * sent: a driver capability never exceeds the device's (driver/admin-cmds-capabilities/2, checked
 * against what DEVICE_CAP_GET returned), and a capability that resource objects depend on is not
 * set again while they exist (driver/admin-cmds-capabilities/3, driver/admin-cmds-resource-objects/5).
 */
import { ADMIN_GROUP_SELF, type AdminCommandSender } from '../admin-command-handler.js';
import { expectAdminOk } from '../admin-command-status-error.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { CAPABILITY_ID_HEADER_SIZE, CapabilityOpcode } from './capability-handler.js';
import { CAPABILITY_ID_LIMIT, capabilityLimit, driverCapabilityViolation, normalizeCapability, type CapabilityLayout } from './capability-layout.js';

/** Result space offered for CAP_ID_LIST_QUERY: every id of 0x0000-0x0fff. */
const ID_BITMAP_BYTES = CAPABILITY_ID_LIMIT / 8;
/** Result space offered for DEVICE_CAP_GET (capabilities are small structures). */
const DEFAULT_CAP_CAPACITY = 4096;

/** Decodes struct virtio_admin_cmd_query_cap_id_result: the ids whose bit is set, ascending. */
export function decodeCapabilityIds(result: Uint8Array): number[] {
  const ids: number[] = [];
  for (let i = 0; i < result.length; i++) {
    const b = result[i]!;
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) ids.push(i * 8 + bit);
  }
  return ids;
}

/** VIRTIO_ADMIN_CMD_CAP_ID_LIST_QUERY: the capability ids the device supports. */
export async function queryCapabilityIds(send: AdminCommandSender): Promise<number[]> {
  const reply = await send(CapabilityOpcode.CAP_ID_LIST_QUERY, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), ID_BITMAP_BYTES);
  return decodeCapabilityIds(expectAdminOk('CAP_ID_LIST_QUERY', reply));
}

function idHeader(id: number, extra = 0): Uint8Array {
  const data = new Uint8Array(CAPABILITY_ID_HEADER_SIZE + extra);
  data[0] = id & 0xff;
  data[1] = (id >> 8) & 0xff;
  return data;
}

/** VIRTIO_ADMIN_CMD_DEVICE_CAP_GET: the device capability `id` (cap_specific_data). */
export async function getDeviceCapability(send: AdminCommandSender, id: number, capacity = DEFAULT_CAP_CAPACITY): Promise<Uint8Array> {
  const reply = await send(CapabilityOpcode.DEVICE_CAP_GET, ADMIN_GROUP_SELF, 0n, idHeader(id), capacity);
  return expectAdminOk('DEVICE_CAP_GET', reply).slice();
}

/** VIRTIO_ADMIN_CMD_DRIVER_CAP_SET as sent, without the driver's checks (see AdminCapabilityDriver). */
export async function sendDriverCapability(send: AdminCommandSender, id: number, value: Uint8Array): Promise<void> {
  const data = idHeader(id, value.length);
  data.set(value, CAPABILITY_ID_HEADER_SIZE);
  expectAdminOk('DRIVER_CAP_SET', await send(CapabilityOpcode.DRIVER_CAP_SET, ADMIN_GROUP_SELF, 0n, data, 0));
}

/** Whether resource objects depending on capability `id` exist (the object driver answers). */
export type DriverCapabilityInUse = (id: number) => boolean;

/**
 * A driver's view of the capabilities: the ids and device capabilities it read and the driver
 * capabilities it set, with the driver's MUSTs enforced before each DRIVER_CAP_SET.
 */
export class AdminCapabilityDriver {
  private ids: Set<number> | null = null;
  private readonly device = new Map<number, Uint8Array>();
  private readonly driver = new Map<number, Uint8Array>();
  private readonly inUse: DriverCapabilityInUse[] = [];

  constructor(private readonly send: AdminCommandSender) {}

  /** Registers who knows which resource objects exist (the resource object driver). */
  addInUseCheck(check: DriverCapabilityInUse): void {
    this.inUse.push(check);
  }

  /** CAP_ID_LIST_QUERY (cached after the first call). */
  async supportedIds(): Promise<ReadonlySet<number>> {
    this.ids ??= new Set(await queryCapabilityIds(this.send));
    return this.ids;
  }

  /**
   * DEVICE_CAP_GET for an id the device listed (cached; INVALID_ARGUMENT for an unlisted id). The
   * result buffer is returned as received (a transport may pad it); with `layout` it is cut to the
   * capability's structure.
   */
  async deviceCapability(id: number, layout?: CapabilityLayout): Promise<Uint8Array> {
    const cached = this.device.get(id);
    if (cached) return this.shaped(cached, layout);
    if (!(await this.supportedIds()).has(id)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `capability ${id} is not listed by CAP_ID_LIST_QUERY`);
    const value = await getDeviceCapability(this.send, id);
    this.device.set(id, value);
    return this.shaped(value, layout);
  }

  private shaped(value: Uint8Array, layout: CapabilityLayout | undefined): Uint8Array {
    return (layout ? normalizeCapability(layout, value) : null)?.slice() ?? value.slice();
  }

  /** The driver capability last set successfully, or null. */
  driverCapability(id: number): Uint8Array | null {
    return this.driver.get(id)?.slice() ?? null;
  }

  /** Limit field `field` of the driver capability of `layout` (0 while not set). */
  driverLimit(layout: CapabilityLayout, field: string): number {
    const set = this.driver.get(layout.id);
    return set ? capabilityLimit(layout, set, field) : 0;
  }

  /**
   * DRIVER_CAP_SET of `value` for `layout`. Refused (INVALID_ARGUMENT, nothing sent) when the
   * value exceeds the device capability (driver/admin-cmds-capabilities/2) or when resource
   * objects depending on the capability exist (driver/admin-cmds-capabilities/3,
   * driver/admin-cmds-resource-objects/5).
   */
  async setDriverCapability(layout: CapabilityLayout, value: Uint8Array): Promise<void> {
    // The result buffer is longer than the capability (padding): cut it to its structure.
    const device = normalizeCapability(layout, await this.deviceCapability(layout.id));
    if (device === null) throw new VirtioError(ErrorCode.REQUEST_FAILED, `device capability ${layout.name} is malformed`);
    const violation = driverCapabilityViolation(layout, device, value);
    if (violation !== null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `driver capability ${layout.name}: ${violation}`);
    if (this.inUse.some((check) => check(layout.id))) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `driver capability ${layout.name}: resource objects depending on it exist; destroy them first`);
    }
    await sendDriverCapability(this.send, layout.id, value);
    this.driver.set(layout.id, value.slice());
  }

  /** After a device reset the device forgot every driver capability (2.12.1.2); so does the driver. */
  reset(): void {
    this.driver.clear();
  }
}
