/**
 * The PCI Express SR-IOV Extended Capability ([PCIe] 9.3.3) of a physical function, at 0x100 in
 * its extended configuration space: TotalVFs, NumVFs, VF Enable, and the virtual functions it
 * brings up while VF Enable is set. With it the PF offers VIRTIO_F_SR_IOV (device/content/27)
 * and owns the SR-IOV device group (2.12: type 0x1, members 1..NumVFs, existing only while VF
 * Enable is set), the group the administration commands address VFs through.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DeviceCoreApi } from '../../device/types.js';
import type { AdminGroup } from '../../admin/admin-group.js';
import { ADMIN_GROUP_SRIOV } from '../../admin/admin-command-handler.js';

/** PCIe Extended Capability ID of SR-IOV. */
export const PCI_EXT_CAP_ID_SRIOV = 0x0010;
/** Where the capability sits in extended configuration space (the first extended capability). */
export const SRIOV_CAP_OFFSET = 0x100;
/** End of PCIe extended configuration space. */
export const PCI_EXT_CONFIG_SIZE = 0x1000;

/** [PCIe] 9.3.3 SR-IOV Extended Capability register offsets (from the capability start). */
export const SriovReg = {
  /** Extended capability header: ID, version, next. */
  HEADER: 0x00,
  /** SR-IOV Capabilities (bit 0: VF Migration Capable). */
  CAPABILITIES: 0x04,
  /** SR-IOV Control (bit 0: VF Enable, bit 1: VF Migration Enable, bit 3: VF MSE, bit 4: ARI). */
  CONTROL: 0x08,
  /** SR-IOV Status. */
  STATUS: 0x0a,
  /** InitialVFs. */
  INITIAL_VFS: 0x0c,
  /** TotalVFs. */
  TOTAL_VFS: 0x0e,
  /** NumVFs (writable while VF Enable is clear). */
  NUM_VFS: 0x10,
  /** Function Dependency Link. */
  FUNCTION_DEPENDENCY_LINK: 0x12,
  /** First VF Offset. */
  FIRST_VF_OFFSET: 0x14,
  /** VF Stride. */
  VF_STRIDE: 0x16,
  /** VF Device ID. */
  VF_DEVICE_ID: 0x1a,
  /** Supported Page Sizes. */
  SUPPORTED_PAGE_SIZES: 0x1c,
  /** System Page Size. */
  SYSTEM_PAGE_SIZE: 0x20,
  /** VF BAR0..5. */
  VF_BAR0: 0x24,
  /** VF Migration State Array Offset. */
  VF_MIGRATION_STATE: 0x3c,
  /** Bytes of the capability. */
  SIZE: 0x40,
} as const;

/** SR-IOV Control bits. */
export const SriovControl = {
  VF_ENABLE: 0x1,
  VF_MIGRATION_ENABLE: 0x2,
  VF_MIGRATION_INTERRUPT_ENABLE: 0x4,
  VF_MSE: 0x8,
  ARI_CAPABLE_HIERARCHY: 0x10,
} as const;

/** SR-IOV Capabilities bits. */
export const SriovCapabilities = {
  VF_MIGRATION_CAPABLE: 0x1,
} as const;

/** One virtual function brought up by VF Enable: its device core (its own function on the bus). */
export interface SriovVirtualFunction {
  /** The VF's core, driven by its own transport (member device of the SR-IOV group). */
  readonly core: DeviceCoreApi;
  /** Called when VF Enable is cleared (the VF goes away; default: its core is reset). */
  remove?(): void;
}

/** Options of SriovCapability. */
export interface SriovCapabilityOptions {
  /** TotalVFs (1..0xffff): the most VFs the PF can bring up. */
  readonly totalVfs: number;
  /** PCI device id the VFs report (VF Device ID); default the PF's modern id. */
  readonly vfDeviceId?: number;
  /** Routing ID offset of VF 1 from the PF (First VF Offset); default 1. */
  readonly firstVfOffset?: number;
  /** Routing ID distance between VFs (VF Stride); default 1. */
  readonly vfStride?: number;
  /** Brings up VF `n` (1-based) when VF Enable is set: a device of the PF's type with its own core. */
  createVf(n: number): SriovVirtualFunction;
}

/**
 * The SR-IOV Extended Capability registers and the VFs they control. The PF's transport routes
 * extended configuration accesses at SRIOV_CAP_OFFSET here (PciDeviceOptions.sriov).
 */
export class SriovCapability {
  private readonly regs = new Uint8Array(SriovReg.SIZE);
  private readonly wmask = new Uint8Array(SriovReg.SIZE);
  private vfList: SriovVirtualFunction[] = [];
  /** The SR-IOV device group (2.12, type 0x1) this capability makes the PF own. */
  readonly group: AdminGroup;

  constructor(private readonly o: SriovCapabilityOptions) {
    if (!Number.isInteger(o.totalVfs) || o.totalVfs < 1 || o.totalVfs > 0xffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `TotalVFs ${o.totalVfs} not in 1..65535`);
    this.put(SriovReg.HEADER, 4, PCI_EXT_CAP_ID_SRIOV | (1 << 16)); // version 1, no next capability
    this.put(SriovReg.CAPABILITIES, 4, 0); // VF Migration Capable clear (driver/admin/10)
    this.put(SriovReg.CONTROL, 2, 0, SriovControl.VF_ENABLE | SriovControl.VF_MSE | SriovControl.ARI_CAPABLE_HIERARCHY);
    this.put(SriovReg.INITIAL_VFS, 2, o.totalVfs);
    this.put(SriovReg.TOTAL_VFS, 2, o.totalVfs);
    this.put(SriovReg.NUM_VFS, 2, 0, 0xffff);
    this.put(SriovReg.FIRST_VF_OFFSET, 2, o.firstVfOffset ?? 1);
    this.put(SriovReg.VF_STRIDE, 2, o.vfStride ?? 1);
    this.put(SriovReg.VF_DEVICE_ID, 2, o.vfDeviceId ?? 0);
    this.put(SriovReg.SUPPORTED_PAGE_SIZES, 4, 0x553); // 4K, 8K, 64K, 256K, 1M, 4M
    this.put(SriovReg.SYSTEM_PAGE_SIZE, 4, 0x1, 0xffff_ffff);
    this.group = {
      groupType: ADMIN_GROUP_SRIOV,
      // device/admin/14: the group exists only while VF Enable is set.
      exists: () => this.vfEnabled,
      // device/admin/14: members are 1..NumVFs.
      member: (id) => (this.vfEnabled && id >= 1n && id <= BigInt(this.vfList.length) ? this.vfList[Number(id) - 1]!.core : null),
    };
  }

  /** TotalVFs. */
  get totalVfs(): number {
    return this.u16(SriovReg.TOTAL_VFS);
  }
  /** NumVFs as the driver wrote it. */
  get numVfs(): number {
    return this.u16(SriovReg.NUM_VFS);
  }
  /** VF Enable. */
  get vfEnabled(): boolean {
    return (this.u16(SriovReg.CONTROL) & SriovControl.VF_ENABLE) !== 0;
  }
  /** The VFs brought up (VF n at index n - 1); empty while VF Enable is clear. */
  get vfs(): readonly SriovVirtualFunction[] {
    return this.vfList;
  }

  /** A read of `width` bytes at `offset` from the capability start (0 outside it). */
  read(offset: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + (this.regs[offset + i] ?? 0);
    return v;
  }

  /**
   * A write at `offset` from the capability start; returns false when no written byte is
   * writable. NumVFs changes only while VF Enable is clear and never above TotalVFs ([PCIe]
   * 9.3.3.7); setting VF Enable brings up VFs 1..NumVFs, clearing it removes them.
   */
  write(offset: number, width: number, value: number): boolean {
    const wasEnabled = this.vfEnabled;
    const oldNum = this.numVfs;
    let writable = false;
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const wm = this.wmask[at] ?? 0;
      if (wm === 0) continue;
      writable = true;
      const b = Math.floor(value / 256 ** i) & 0xff;
      this.regs[at] = (this.regs[at]! & ~wm) | (b & wm);
    }
    if (wasEnabled || this.numVfs > this.totalVfs) this.put(SriovReg.NUM_VFS, 2, oldNum);
    const enabled = this.vfEnabled;
    if (enabled && !wasEnabled) this.bringUp();
    else if (!enabled && wasEnabled) this.tearDown();
    return writable;
  }

  private bringUp(): void {
    const list: SriovVirtualFunction[] = [];
    for (let n = 1; n <= this.numVfs; n++) list.push(this.o.createVf(n));
    this.vfList = list;
  }

  private tearDown(): void {
    for (const vf of this.vfList) {
      if (vf.remove) vf.remove();
      else vf.core.setStatus(0);
    }
    this.vfList = [];
  }

  private u16(off: number): number {
    return this.regs[off]! | (this.regs[off + 1]! << 8);
  }

  private put(off: number, width: number, v: number, wm?: number): void {
    for (let i = 0; i < width; i++) {
      this.regs[off + i] = Math.floor(v / 256 ** i) & 0xff;
      if (wm !== undefined) this.wmask[off + i] = Math.floor(wm / 256 ** i) & 0xff;
    }
  }
}
