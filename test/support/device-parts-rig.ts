/**
 * Test support for the device parts commands before (and besides) the administration virtqueue:
 * `adminLoopbackSender` turns an AdminCommandSender call into an AdminCommandHandler.handle() call
 * on the members of one SR-IOV group, checking group type, opcode and member as the dispatcher
 * does; `createMigrationRig` builds two blk members over one guest memory and one disk, with a
 * blk driver whose transport can be switched from the first member to the second.
 */
import {
  type AdminCommandHandler,
  type AdminCommandReply,
  type AdminCommandSender,
  AdminStatus,
  AdminStatusQualifier,
} from '../../src/admin/admin-command-handler.js';
import { DevicePartsHandler } from '../../src/admin/device-parts/device-parts-handler.js';
import { DevicePartsObjectTable } from '../../src/admin/device-parts/device-parts-objects.js';
import { DevicePartsDriver } from '../../src/admin/device-parts/device-parts-driver.js';
import { DevicePartsObjectType } from '../../src/admin/device-parts/device-part-format.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import type { DeviceCoreApi } from '../../src/device/types.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from '../../src/driver/types.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import type { VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { type InProcessTransport, connectInProcess } from '../../src/transport/in-process/in-process-transport.js';

/** One command as the loopback saw it. */
export interface SentCommand {
  readonly opcode: number;
  readonly groupType: number;
  readonly memberId: bigint;
  readonly data: Uint8Array;
  readonly resultCapacity: number;
  readonly reply: AdminCommandReply;
}

/**
 * An AdminCommandSender that calls `handler` directly for `members` (member id -> core), with the
 * dispatcher's checks (2.12.1: group type, opcode, member) before it. `log` records every command.
 */
export function adminLoopbackSender(handler: AdminCommandHandler, members: ReadonlyMap<bigint, DeviceCoreApi>, groupType: number, log: SentCommand[] = []): AdminCommandSender {
  return async (opcode, gt, memberId, data, resultCapacity) => {
    const result = new Uint8Array(resultCapacity);
    let reply: AdminCommandReply;
    const core = members.get(memberId);
    if (gt !== groupType || !handler.groupTypes.includes(gt)) reply = { status: AdminStatus.EINVAL, qualifier: AdminStatusQualifier.INVALID_GROUP, result: new Uint8Array(0) };
    else if (!handler.opcodes.includes(opcode)) reply = { status: AdminStatus.EINVAL, qualifier: AdminStatusQualifier.INVALID_OPCODE, result: new Uint8Array(0) };
    else if (core === undefined) reply = { status: AdminStatus.EINVAL, qualifier: AdminStatusQualifier.INVALID_MEMBER, result: new Uint8Array(0) };
    else {
      const out = await handler.handle(opcode, { groupType: gt, memberId, core }, data.slice(), result);
      reply = { status: out.status, qualifier: out.qualifier, result: result.subarray(0, out.written) };
    }
    log.push({ opcode, groupType: gt, memberId, data: data.slice(), resultCapacity, reply });
    return reply;
  };
}

/** A memory disk whose reads wait for `release()` while `holding`, counting every operation. */
export class HoldingCountingBackend extends MemoryBackend {
  holding = false;
  reads = 0;
  writes = 0;
  private held: (() => void)[] = [];
  get heldCount(): number {
    return this.held.length;
  }
  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> | void {
    this.reads++;
    if (!this.holding) return super.read(offset, dst, dstOff, len);
    return new Promise((resolve) => this.held.push(() => resolve(super.read(offset, dst, dstOff, len))));
  }
  override write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> | void {
    this.writes++;
    return super.write(offset, src, srcOff, len);
  }
  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }
}

/** A DriverTransport that forwards to one of several in-process transports, switchable. */
export class SwitchTransport implements DriverTransport {
  current: InProcessTransport;
  constructor(private readonly all: readonly InProcessTransport[]) {
    this.current = all[0]!;
  }
  get memory(): GuestMemory {
    return this.current.memory;
  }
  get deviceId(): number {
    return this.current.deviceId;
  }
  get legacy(): boolean {
    return this.current.legacy;
  }
  get littleEndian(): boolean {
    return this.current.littleEndian;
  }
  getStatus(): number {
    return this.current.getStatus();
  }
  setStatus(v: number): void {
    this.current.setStatus(v);
  }
  getDeviceFeatures(): bigint {
    return this.current.getDeviceFeatures();
  }
  setDriverFeatures(f: bigint): void {
    this.current.setDriverFeatures(f);
  }
  configGeneration(): number {
    return this.current.configGeneration();
  }
  readConfig(offset: number, dst: Uint8Array): void {
    this.current.readConfig(offset, dst);
  }
  writeConfig(offset: number, src: Uint8Array): void {
    this.current.writeConfig(offset, src);
  }
  numQueues(): number {
    return this.current.numQueues();
  }
  queueMaxSize(index: number): number {
    return this.current.queueMaxSize(index);
  }
  setupQueue(index: number, addrs: DriverQueueAddresses): void {
    this.current.setupQueue(index, addrs);
  }
  resetQueue(index: number): void {
    this.current.resetQueue(index);
  }
  notify(index: number, data?: number): void {
    this.current.notify(index, data);
  }
  setInterruptHandler(h: DriverInterruptHandler): void {
    for (const t of this.all) t.setInterruptHandler(h);
  }
  deviceError(): VirtioError | null {
    return this.current.deviceError();
  }
}

/** Two blk members (VF 1 and VF 2) of one owner, a blk driver on member 1, the device parts commands. */
export interface MigrationRig {
  readonly memory: GuestMemory;
  readonly backend: HoldingCountingBackend;
  readonly source: DeviceCore;
  readonly destination: DeviceCore;
  readonly transport: SwitchTransport;
  readonly destinationTransport: InProcessTransport;
  readonly driver: VirtioDriver;
  readonly blk: BlkDriver;
  readonly handler: DevicePartsHandler;
  readonly objects: DevicePartsObjectTable;
  readonly parts: DevicePartsDriver;
  readonly sender: AdminCommandSender;
  readonly sent: SentCommand[];
  /** Reasons the handler gave for refused commands. */
  readonly refusals: string[];
  close(): Promise<void>;
}

/** Device parts object ids the rig creates: a get object on member 1, a set object on member 2. */
export const RIG_GET_OBJECT = 3;
export const RIG_SET_OBJECT = 4;

/** Builds the MigrationRig (split rings unless `packed`). */
export async function createMigrationRig(opts: { packed?: boolean; queueSize?: number; diskBytes?: number } = {}): Promise<MigrationRig> {
  const memory = GuestMemory.allocate(16 << 20);
  const backend = new HoldingCountingBackend(opts.diskBytes ?? 1 << 20);
  const a = connectInProcess(new BlkDevice(backend), { memory });
  const b = connectInProcess(new BlkDevice(backend), { memory });
  const transport = new SwitchTransport([a.transport, b.transport]);
  let wanted = (1n << 128n) - 1n;
  if (!opts.packed) wanted &= ~F.RING_PACKED;
  wanted &= ~F.IN_ORDER;
  const driver = await VirtioDriver.init(transport, { wantedFeatures: wanted, dma: a.dma, queueSizes: [opts.queueSize ?? 16], indirect: true });
  const blk = new BlkDriver(driver.context);
  const refusals: string[] = [];
  const objects = new DevicePartsObjectTable();
  objects.create(1, 1n, RIG_GET_OBJECT, DevicePartsObjectType.GET);
  objects.create(1, 2n, RIG_SET_OBJECT, DevicePartsObjectType.SET);
  const handler = new DevicePartsHandler({ objects: objects.lookup, onRefusal: (_op, reason) => refusals.push(reason) });
  const sent: SentCommand[] = [];
  const members = new Map<bigint, DeviceCoreApi>([
    [1n, a.core],
    [2n, b.core],
  ]);
  const sender = adminLoopbackSender(handler, members, 1, sent);
  return {
    memory,
    backend,
    source: a.core,
    destination: b.core,
    transport,
    destinationTransport: b.transport,
    driver,
    blk,
    handler,
    objects,
    parts: new DevicePartsDriver(sender),
    sender,
    sent,
    refusals,
    async close() {
      backend.release();
      a.core.reset();
      b.core.reset();
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
  };
}
