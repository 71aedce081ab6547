/**
 * The driver side of SR-IOV on a virtio PF (content.tex 6, VIRTIO_F_SR_IOV; [PCIe] 9.3.3): enables
 * and disables the VFs through the PF's SR-IOV Extended Capability, only after VIRTIO_F_SR_IOV
 * was negotiated with FEATURES_OK accepted (driver/content/40), and, once it was, also after a
 * reset without negotiating again (driver/content/41). It is also the SR-IOV state AdminDriver
 * checks SR-IOV group commands against (driver/admin/10).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { VirtioDriver } from '../driver/virtio-driver.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import type { PciDriverTransport } from '../transport/pci/pci-driver.js';
import { SriovCapabilities, SriovControl, SriovReg } from '../transport/pci/sriov-capability.js';
import { ADMIN_GROUP_SRIOV } from './admin-command-handler.js';
import type { AdminDriver, AdminSriovState } from './admin-driver.js';

/** Enables and disables the VFs of a PF (its PciDriverTransport) driven by a VirtioDriver. */
export class SriovDriverControl implements AdminSriovState {
  private negotiatedOnce = false;
  private readonly cap: number;

  constructor(
    /** The PF's PCI driver transport (its configuration space). */
    readonly transport: PciDriverTransport,
    private readonly admin: AdminDriver | null = null,
  ) {
    if (transport.sriovCapOffset < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'the function has no SR-IOV capability');
    this.cap = transport.sriovCapOffset;
  }

  /**
   * Notes a driver session of the PF: once VIRTIO_F_SR_IOV was negotiated and FEATURES_OK read
   * back set (driver/content/40), VFs may be enabled, also after later resets (driver/content/41).
   */
  observe(virtio: VirtioDriver): void {
    if ((virtio.features & F.SR_IOV) !== 0n && (this.transport.getStatus() & Status.FEATURES_OK) !== 0) this.negotiatedOnce = true;
  }

  /** Whether VFs may be enabled (VIRTIO_F_SR_IOV negotiated at least once). */
  get mayEnable(): boolean {
    return this.negotiatedOnce;
  }

  /** TotalVFs of the capability. */
  get totalVfs(): number {
    return this.transport.configRead(this.cap + SriovReg.TOTAL_VFS, 2);
  }

  numVfs(): number {
    return this.transport.configRead(this.cap + SriovReg.NUM_VFS, 2);
  }

  vfEnabled(): boolean {
    return (this.transport.configRead(this.cap + SriovReg.CONTROL, 2) & SriovControl.VF_ENABLE) !== 0;
  }

  vfMigrationCapable(): boolean {
    return (this.transport.configRead(this.cap + SriovReg.CAPABILITIES, 4) & SriovCapabilities.VF_MIGRATION_CAPABLE) !== 0;
  }

  /**
   * Brings up `count` VFs: NumVFs then VF Enable. Throws FEATURES_REJECTED before VIRTIO_F_SR_IOV
   * was ever negotiated (driver/content/40), INVALID_ARGUMENT when `count` is not in 1..TotalVFs
   * or VFs are already enabled.
   */
  enableVfs(count: number): void {
    if (!this.negotiatedOnce) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_F_SR_IOV was never negotiated: VFs must not be enabled');
    if (!Number.isInteger(count) || count < 1 || count > this.totalVfs) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `NumVFs ${count} not in 1..${this.totalVfs}`);
    if (this.vfEnabled()) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VFs are already enabled');
    this.transport.configWrite(this.cap + SriovReg.NUM_VFS, 2, count);
    const ctrl = this.transport.configRead(this.cap + SriovReg.CONTROL, 2);
    this.transport.configWrite(this.cap + SriovReg.CONTROL, 2, ctrl | SriovControl.VF_ENABLE | SriovControl.VF_MSE);
  }

  /**
   * Clears VF Enable once no SR-IOV group command is outstanding on the AdminDriver
   * (driver/admin/10: VF Enable stays set while one is).
   */
  async disableVfs(): Promise<void> {
    if (this.admin) while (this.admin.inFlightFor(ADMIN_GROUP_SRIOV) > 0) await this.admin.drained();
    const ctrl = this.transport.configRead(this.cap + SriovReg.CONTROL, 2);
    this.transport.configWrite(this.cap + SriovReg.CONTROL, 2, ctrl & ~(SriovControl.VF_ENABLE | SriovControl.VF_MSE));
  }
}
