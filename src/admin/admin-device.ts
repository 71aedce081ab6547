/**
 * A device with administration virtqueues (2.13): wraps any VirtioDevice, adds `count`
 * administration queues after the device's own (their indices start at the device's queue
 * count, as PCI's admin_queue_index >= num_queues asks, device/transport-pci/27), offers
 * VIRTIO_F_ADMIN_VQ (and VIRTIO_F_SR_IOV when it owns an SR-IOV group) and serves the queues
 * with an AdminQueueServer once ADMIN_VQ was negotiated. The device itself never sees the
 * administration queues.
 *
 * Only PCI defines where the administration queues are (4.1.4.3 admin_queue_index and
 * admin_queue_num); MMIO (4.2.4) and Channel I/O (4.3.4) reserve VIRTIO_F_ADMIN_VQ, and the
 * DeviceCore offers the bit only on a transport that passes it (PCI's modern interface).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AdminQueueRange, DeviceContext, DeviceCoreApi, SharedMemoryRegion, VirtioDevice } from '../device/types.js';
import { F } from '../spec/features.js';
import { ADMIN_GROUP_SRIOV, type AdminCommandHandler } from './admin-command-handler.js';
import { AdminDispatcher } from './admin-dispatcher.js';
import { type AdminGroup, selfGroup } from './admin-group.js';
import { AdminQueueServer } from './admin-queue-server.js';

/** Options of AdminDevice (what a device opts in with). */
export interface AdminDeviceOptions {
  /** Command modules (capabilities, resource objects, legacy interface, device parts...). */
  readonly handlers?: readonly AdminCommandHandler[];
  /**
   * Groups besides the self group (always present, 2.12), e.g. the SR-IOV group of a PCI
   * function with the SR-IOV capability (`SriovCapability.group`).
   */
  readonly groups?: readonly AdminGroup[];
  /** Number of administration queues (default 1). */
  readonly queues?: number;
  /** Maximum size of each administration queue (default 64). */
  readonly queueSize?: number;
  /** Bytes of command_specific_data kept per command at most (default 1 MiB). */
  readonly maxCommandData?: number;
  /** Bytes of command_specific_result offered to a handler at most (default 1 MiB). */
  readonly maxCommandResult?: number;
  /** Where the administration queues log. */
  readonly logger?: Logger;
}

/**
 * An owner device: `inner` with administration virtqueues. Give it to a transport as any
 * VirtioDevice, then `bindOwner(core)` with the core the transport built so the self group has
 * its member.
 */
export class AdminDevice implements VirtioDevice {
  /** The device the administration queues were added to. */
  readonly inner: VirtioDevice;
  /** The command logic: groups, used lists, handlers. */
  readonly dispatcher: AdminDispatcher;
  /** Where the administration queues are (after the device's own). */
  readonly adminQueues: AdminQueueRange;
  readonly deviceId: number;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize: number;
  readonly modernOnlyFeatures?: bigint;
  readonly sharedMemoryRegions?: readonly SharedMemoryRegion[];
  /** Device Suspend, when the wrapped device supports it (both queues stop). */
  readonly suspend?: () => Promise<void>;
  /** Resume after suspend, when the wrapped device supports it. */
  readonly resume?: () => void;
  private readonly server: AdminQueueServer;
  private owner: DeviceCoreApi | null = null;
  private serving = false;

  constructor(inner: VirtioDevice, opts: AdminDeviceOptions = {}) {
    const count = opts.queues ?? 1;
    const size = opts.queueSize ?? 64;
    const first = inner.queueMaxSizes.length;
    // device/transport-pci/27: indices of all administration queues fit in 16 bits.
    if (!Number.isInteger(count) || count < 1 || first + count > 0x10000) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `admin queues ${count} not in 1..${0x10000 - first}`);
    if (!Number.isInteger(size) || size < 1 || size > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `admin queue size ${size} not in 1..32768`);
    this.inner = inner;
    this.deviceId = inner.deviceId;
    this.configSize = inner.configSize;
    if (inner.modernOnlyFeatures !== undefined) this.modernOnlyFeatures = inner.modernOnlyFeatures;
    if (inner.sharedMemoryRegions !== undefined) this.sharedMemoryRegions = inner.sharedMemoryRegions;
    const groups = [selfGroup(() => this.owner), ...(opts.groups ?? [])];
    this.dispatcher = new AdminDispatcher({ groups, ...(opts.handlers ? { handlers: opts.handlers } : {}), ...(opts.logger ? { logger: opts.logger } : {}) });
    const sriov = groups.some((g) => g.groupType === ADMIN_GROUP_SRIOV);
    this.offeredFeatures = inner.offeredFeatures | F.ADMIN_VQ | (sriov ? F.SR_IOV : 0n);
    this.adminQueues = { first, count };
    this.queueMaxSizes = [...inner.queueMaxSizes, ...new Array<number>(count).fill(size)];
    this.server = new AdminQueueServer({
      first,
      count,
      dispatcher: this.dispatcher,
      logger: opts.logger,
      ...(opts.maxCommandData !== undefined ? { maxCommandData: opts.maxCommandData } : {}),
      ...(opts.maxCommandResult !== undefined ? { maxCommandResult: opts.maxCommandResult } : {}),
    });
    const innerSuspend = inner.suspend?.bind(inner);
    const innerResume = inner.resume?.bind(inner);
    if (innerSuspend && innerResume) {
      this.suspend = async () => {
        await Promise.all([innerSuspend(), this.server.suspend()]);
      };
      this.resume = () => {
        innerResume();
        this.server.resume();
      };
    }
  }

  /** The owner's core (the self group's member 0); call once the transport built it. */
  bindOwner(core: DeviceCoreApi): void {
    this.owner = core;
  }

  /** Registers one more command module (supported lists only grow, device/admin/11). */
  addHandler(h: AdminCommandHandler): void {
    this.dispatcher.addHandler(h);
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    this.inner.readConfig(offset, dst, features, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array, features: bigint, littleEndian: boolean): void {
    this.inner.writeConfig(offset, src, features, littleEndian);
  }

  configWritable(offset: number, size: number, features: bigint): boolean {
    return this.inner.configWritable ? this.inner.configWritable(offset, size, features) : true;
  }

  /** The wrapped device judges its own bits; ADMIN_VQ and SR_IOV are this wrapper's. */
  validateFeatures(accepted: bigint): string | null {
    return this.inner.validateFeatures?.(accepted & ~(F.ADMIN_VQ | F.SR_IOV)) ?? null;
  }

  activate(ctx: DeviceContext): void {
    this.serving = (ctx.features & F.ADMIN_VQ) !== 0n;
    this.inner.activate(ctx);
    if (this.serving) this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    if (index >= this.adminQueues.first) {
      if (this.serving) this.server.onQueueNotify(index);
      return;
    }
    this.inner.onQueueNotify(index);
  }

  /** Device reset: the wrapped device, the administration queues and every handler (device/admin/8). */
  reset(): void {
    this.serving = false;
    this.server.reset();
    this.dispatcher.reset();
    this.inner.reset();
  }

  resetQueue(index: number): void {
    if (index >= this.adminQueues.first) this.server.resetQueue(index);
    else this.inner.resetQueue?.(index);
  }
}
