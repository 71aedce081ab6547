/**
 * 4.1.4.8 the legacy I/O BAR of a transitional PCI function, device side: the pre-1.0 header
 * (32 feature bits, QueuePFN, a read-only queue size, status, ISR, the MSI-X vectors while
 * MSI-X is on) followed by the device configuration. Queue registers go to the device core's
 * setters, as on every other transport.
 */
import type { QueueRefusal } from '../../device/types.js';
import { BadAccess, badAccessForRefusal, readConfigValue, writeConfigValue } from '../bus.js';
import { LEGACY_PFN_SHIFT, LegacyReg, NO_VECTOR } from './constants.js';
import type { PciRegisterHost } from './pci-common-config.js';

/** 4.1.5.4: QueuePFN counts 4096-byte pages; the used ring is aligned to 4096 too. */
const LEGACY_PAGE = 2 ** LEGACY_PFN_SHIFT;

export class PciLegacyRegisters {
  private queueSel = 0;
  /** Scratch for device configuration reads (no allocation per access). */
  private readonly scratch = new Uint8Array(8);

  constructor(private readonly host: PciRegisterHost) {}

  /** Device reset: the queue selector returns to 0. */
  reset(): void {
    this.queueSel = 0;
  }

  /** 4.1.4.8: the device configuration follows the header; the header is longer with MSI-X. */
  private configBase(): number {
    return this.host.msixEnabled ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX;
  }

  read(offset: number, width: number): number {
    const host = this.host;
    if (!host.useInterface(true, 'legacy', offset, width, false)) return 0;
    const core = host.core;
    const cfgBase = this.configBase();
    if (offset >= cfgBase) {
      const off = offset - cfgBase;
      // 4.1.4.8: any width; results as with natural accesses.
      if (width > 4 || off + width > core.device.configSize) {
        host.bad(BadAccess.OFFSET, 'legacy', offset, width, false);
        return 0;
      }
      return readConfigValue(core, this.scratch, off, width);
    }
    const q = core.queueRegisters(this.queueSel);
    switch (offset) {
      case LegacyReg.HOST_FEATURES:
        if (width === 4) return core.deviceFeatureWord(0) >>> 0;
        break;
      case LegacyReg.GUEST_FEATURES:
        if (width === 4) return Number(core.driverFeatures & 0xffff_ffffn);
        break;
      case LegacyReg.QUEUE_PFN:
        // The page of a live queue; the core resets the registers, so 0 once stopped.
        if (width === 4) return q?.enabled ? Math.floor(q.descAddr / LEGACY_PAGE) : 0;
        break;
      case LegacyReg.QUEUE_SIZE:
        // Legacy PCI: the size is the device's maximum, read-only.
        if (width === 2) return q ? (core.device.queueMaxSizes[this.queueSel] ?? 0) : 0;
        break;
      case LegacyReg.QUEUE_SELECT:
        if (width === 2) return this.queueSel;
        break;
      case LegacyReg.QUEUE_NOTIFY:
        if (width === 2) return 0;
        break;
      case LegacyReg.STATUS:
        if (width === 1) return core.status & 0xff;
        break;
      case LegacyReg.ISR:
        if (width === 1) return host.readIsr();
        break;
      case LegacyReg.CONFIG_MSIX_VECTOR:
        if (width === 2) return host.configVector;
        break;
      case LegacyReg.QUEUE_MSIX_VECTOR:
        if (width === 2) return q ? q.msixVector : NO_VECTOR;
        break;
      default:
        host.bad(BadAccess.OFFSET, 'legacy', offset, width, false);
        return 0;
    }
    host.bad(BadAccess.WIDTH, 'legacy', offset, width, false);
    return 0;
  }

  /** Reports a queue register write the core refused. */
  private refused(refusal: QueueRefusal | null, offset: number, width: number): void {
    if (refusal !== null) this.host.bad(badAccessForRefusal(refusal), 'legacy', offset, width, true, refusal.message);
  }

  write(offset: number, width: number, value: number): void {
    const host = this.host;
    const resetWrite = offset === LegacyReg.STATUS && width === 1 && (value & 0xff) === 0;
    if (!host.useInterface(true, 'legacy', offset, width, true, resetWrite)) return;
    const core = host.core;
    const cfgBase = this.configBase();
    if (offset >= cfgBase) {
      const off = offset - cfgBase;
      if (width > 4 || off + width > core.device.configSize) return host.bad(BadAccess.OFFSET, 'legacy', offset, width, true);
      writeConfigValue(core, off, width, value);
      return;
    }
    const v = value >>> 0;
    switch (offset) {
      case LegacyReg.GUEST_FEATURES:
        if (width !== 4) break;
        core.setDriverFeatureWord(0, v);
        return;
      case LegacyReg.QUEUE_PFN:
        if (width !== 4) break;
        // 4.1.5.4: a contiguous ring at PFN << 12, used ring 4096-aligned; PFN 0 stops the queue.
        return this.refused(core.setQueueLegacyAddress(this.queueSel, v * LEGACY_PAGE, LEGACY_PAGE), offset, width);
      case LegacyReg.QUEUE_SELECT:
        if (width !== 2) break;
        this.queueSel = v & 0xffff;
        return;
      case LegacyReg.QUEUE_NOTIFY: {
        if (width !== 2) break;
        const index = v & 0xffff;
        const q = core.queueRegisters(index);
        if (!q) return host.bad(BadAccess.NO_QUEUE, 'legacy', offset, width, true);
        if (!q.enabled) return host.bad(BadAccess.QUEUE_DISABLED, 'legacy', offset, width, true);
        core.notifyQueue(index);
        return;
      }
      case LegacyReg.STATUS:
        if (width !== 1) break;
        host.setStatus(v & 0xff);
        return;
      case LegacyReg.CONFIG_MSIX_VECTOR:
        if (width !== 2) break;
        host.configVector = host.mapVector(v & 0xffff, 'legacy', offset, width);
        return;
      case LegacyReg.QUEUE_MSIX_VECTOR:
        if (width !== 2) break;
        if (!core.queueRegisters(this.queueSel)) return host.bad(BadAccess.NO_QUEUE, 'legacy', offset, width, true);
        return this.refused(core.setQueueMsixVector(this.queueSel, host.mapVector(v & 0xffff, 'legacy', offset, width)), offset, width);
      case LegacyReg.HOST_FEATURES:
      case LegacyReg.QUEUE_SIZE:
      case LegacyReg.ISR:
        return host.bad(BadAccess.READ_ONLY, 'legacy', offset, width, true);
      default:
        return host.bad(BadAccess.OFFSET, 'legacy', offset, width, true);
    }
    host.bad(BadAccess.WIDTH, 'legacy', offset, width, true);
  }
}
