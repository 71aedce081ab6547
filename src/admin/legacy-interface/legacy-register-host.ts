/**
 * 2.12.1.1 Legacy Interfaces: the owner device serves a member's legacy interface through
 * administration commands. The legacy registers themselves are the ones of the legacy I/O BAR
 * (4.1.4.8, `PciLegacyRegisters`), reused as they are; this is the function around them that a
 * PCI function would be: the member's core, its config vector and the accesses refused. The
 * header is laid out as with MSI-X on (config vector and queue vector at 20 and 22): the
 * administration commands separate common and device configuration themselves, so the vector
 * registers are always part of the common configuration (what a hypervisor with MSI-X forwards).
 */
import type { DeviceCoreApi } from '../../device/types.js';
import { BadAccess, TransportFeatureFlags } from '../../transport/bus.js';
import { NO_VECTOR } from '../../transport/pci/constants.js';
import type { PciRegisterHost } from '../../transport/pci/pci-common-config.js';
import { PciLegacyRegisters } from '../../transport/pci/pci-legacy-io.js';

/** A core that can switch to the legacy interface (DeviceCore). */
interface LegacySwitchableCore extends DeviceCoreApi {
  readonly legacy: boolean;
  setLegacy(legacy: boolean, littleEndian?: boolean): void;
}

function isSwitchable(core: DeviceCoreApi): core is LegacySwitchableCore {
  return typeof (core as Partial<LegacySwitchableCore>).setLegacy === 'function' && typeof (core as Partial<LegacySwitchableCore>).legacy === 'boolean';
}

/** Options of one member's legacy registers. */
export interface MemberLegacyOptions {
  /** MSI-X vectors of the member function (vectors at or above are refused). Default: queues + 1. */
  readonly msixVectors?: number;
  /** Reads and clears the member's ISR (4.1.4.5.1); without it ISR reads 0 (MSI-X in use). */
  readonly readIsr?: () => number;
}

/** The refusal of the last access, reported by the legacy registers through `bad`. */
export interface LegacyAccessRefusal {
  /** Why (BadAccess). */
  readonly reason: BadAccess;
  /** Offset of the access in the legacy I/O layout. */
  readonly offset: number;
  /** Width of the access. */
  readonly width: number;
  /** More, where the register said more. */
  readonly detail: string | undefined;
}

/** One member's legacy interface: the legacy I/O registers over its core. */
export class MemberLegacyRegisters {
  private readonly registers: PciLegacyRegisters;
  private refusal: LegacyAccessRefusal | null = null;
  private configVector = NO_VECTOR;
  private readonly flags = new TransportFeatureFlags();

  /** MSI-X vectors of the member function. */
  readonly msixVectors: number;

  constructor(
    private readonly core: DeviceCoreApi,
    private readonly options: MemberLegacyOptions = {},
  ) {
    this.msixVectors = options.msixVectors ?? core.numQueues + 1;
    this.registers = new PciLegacyRegisters(this.host());
  }

  /** The register host the legacy I/O block drives (what a PCI function gives it). */
  private host(): PciRegisterHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const vectors = this.msixVectors;
    return {
      core: this.core,
      flags: this.flags,
      legacy: true,
      get configVector() {
        return self.configVector;
      },
      set configVector(v: number) {
        self.configVector = v;
      },
      msixEnabled: true,
      bad: (reason, _region, offset, width, _write, detail) => {
        this.refusal ??= { reason, offset, width, detail };
      },
      setStatus: (v) => {
        this.core.setStatus(v);
        if (v === 0) this.afterReset();
        this.flags.refresh(this.core);
      },
      readIsr: () => this.options.readIsr?.() ?? 0,
      // 4.1.5.1.2.1: a vector outside the member's MSI-X table cannot be mapped.
      mapVector: (v, _region, offset, width) => {
        if (v === NO_VECTOR || v < vectors) return v;
        this.refusal ??= { reason: BadAccess.VALUE, offset, width, detail: `vector ${v}` };
        return NO_VECTOR;
      },
      useInterface: (_legacy, _region, offset, width, _write, resetWrite) => this.useLegacy(offset, width, resetWrite ?? false),
    };
  }

  /**
   * The member is driven through its legacy interface: a core in reset switches to it (with
   * little-endian fields: 2.12.1.1 "little-endian format is assumed unconditionally"); a member a
   * modern driver is driving refuses legacy accesses, as a transitional PCI function does.
   */
  private useLegacy(offset: number, width: number, resetWrite: boolean): boolean {
    const core = this.core;
    if (!isSwitchable(core) || core.legacy) return true;
    if (resetWrite && core.status !== 0) {
      core.setStatus(0);
      this.afterReset();
    }
    if (core.status !== 0) {
      this.refusal ??= { reason: BadAccess.MODE, offset, width, detail: 'legacy access to a modern-driven member' };
      return false;
    }
    core.setLegacy(true, true);
    this.afterReset();
    return true;
  }

  private afterReset(): void {
    this.configVector = NO_VECTOR;
    this.registers.reset();
  }

  /**
   * A read of `width` (1, 2 or 4) bytes at `offset` of the legacy header and device configuration
   * (device configuration from 24): the value, or null when the access was refused.
   */
  read(offset: number, width: number): number | null {
    this.refusal = null;
    const v = this.registers.read(offset, width);
    return this.refusal === null ? v : null;
  }

  /** A write; false when the access was refused (nothing changed). */
  write(offset: number, width: number, value: number): boolean {
    this.refusal = null;
    this.registers.write(offset, width, value);
    return this.refusal === null;
  }

  /** Why the last access was refused (null when it was not). */
  get lastRefusal(): LegacyAccessRefusal | null {
    return this.refusal;
  }
}
