/**
 * Puts a virtio-ts PCI device (PciDeviceTransport) on the PCI bus of a v86 emulator (npm `v86`,
 * pinned at 0.5.462), so that a real guest kernel drives it at register level.
 *
 * v86 has no public API for third-party PCI devices; this adapter uses a few of its internals,
 * all reached from `emulator.v86.cpu` through property names that survive v86's minified build:
 *
 * - `cpu.io.ports[port]`: one entry `{read8, read16, read32, write8, write16, write32, device}`
 *   per I/O port. The adapter installs its own entries for every port of each I/O BAR at the
 *   BAR's initial address *before* registering the device: `register_device` snapshots them, and
 *   `set_io_bars` moves them when the firmware (SeaBIOS) reprograms the BAR.
 * - `cpu.devices.pci.register_device({pci_id, pci_space, pci_bars, name})`, with
 *   `pci_bars[i] = {size}` for each I/O BAR. v86 relocates I/O BARs only (a memory BAR keeps its
 *   initial address), so the transport is built with `modernIoBar` (4.1.4: a capability may
 *   point into an I/O BAR, as v86's own virtio devices do) and without MSI-X (no memory BAR for
 *   its table; v86 delivers no MSI either).
 * - `pci.pci_query`, `pci.pci_write8/16/32`, `pci.pci_addr`, `pci.pci_response32`: wrapped on the
 *   instance so that configuration cycles for this device's slot reach the transport's own
 *   configuration space (v86 would otherwise answer from the copy it keeps). The copy is still
 *   updated, since v86 reads the interrupt pin and the BAR type bits from it.
 * - `pci.raise_irq(pci_id)` / `pci.lower_irq(pci_id)`: INTx through the PIIX3 PIRQ routing, and
 *   `pci.isa_bridge_space8` (the PIIX3 configuration space, PIRQ route registers at 0x60) to
 *   know which ISA IRQ a slot's pin ends on. v86 keeps one level per IRQ, not one per device:
 *   the adapters make the line a wired OR among themselves (a line is lowered only when no other
 *   adapter on the same IRQ still asserts it), so two devices sharing an IRQ lose no interrupt.
 * - `cpu.mem8`: guest RAM (a Proxy over the wasm memory), viewed once as one Uint8Array region
 *   at guest physical address 0.
 *
 * v86's wasm memory grows while the guest runs (its JIT allocates), and each growth detaches
 * the ArrayBuffer under every view of guest RAM. The guest RAM stays at the same offset in the
 * new buffer, so before each port access and configuration cycle the adapter checks its view
 * and, when it went dead, rebinds the GuestMemory region in place (`rebindRegion`) and asks a
 * core that can (`setMemory`, DeviceCore) to rebuild its ring views at their positions. Device
 * work happens inside those accesses (a synchronous backend), so it always sees live memory; a
 * device completing asynchronously should call `refreshMemory()` before touching guest RAM.
 * The core's own deferred work is a host access too: a request completed outside the access
 * that started it (a timer, another queue's request) is notified from a microtask, and v86 runs
 * guest code (and may grow its memory) before microtasks run. Give the core `refreshMemory` as
 * its `beforeHostAccess` option (`attachV86Devices` does).
 *
 * Limits: the device writes guest memory directly, without telling v86's JIT (its
 * `jit_dirty_cache`): the guest must not execute code it received from the device (a disk
 * holding programs would need that hook).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { DeviceCoreApi } from '../../device/types.js';
import type { CoreFactory, TransportBus } from '../bus.js';
import { PciCfg } from '../pci/constants.js';
import { PciDeviceTransport, type PciDeviceOptions } from '../pci/pci-device.js';

/** One I/O port entry of v86's `cpu.io.ports`. */
export interface V86PortEntry {
  /** Reads a byte from the port. */
  read8: (port: number) => number;
  /** Reads 16 bits from the port. */
  read16: (port: number) => number;
  /** Reads 32 bits from the port. */
  read32: (port: number) => number;
  /** Writes a byte to the port. */
  write8: (value: number) => void;
  /** Writes 16 bits to the port. */
  write16: (value: number) => void;
  /** Writes 32 bits to the port. */
  write32: (value: number) => void;
  /** The device object owning the port (v86 debugging). */
  device: unknown;
}

/** The parts of v86's PCI bus object the adapter uses. */
export interface V86PciBus {
  /** The devices by pci_id. */
  devices: unknown[];
  /** Each device's configuration space as 32-bit words, by pci_id. */
  device_spaces: (Int32Array | undefined)[];
  /** The CONFIG_ADDRESS register (0xcf8) as bytes. */
  pci_addr: Uint8Array;
  /** The CONFIG_DATA response (0xcfc). */
  pci_response32: Int32Array;
  /** Adds a device to the bus; returns its configuration space. */
  register_device(dev: { pci_id: number; pci_space: number[]; pci_bars: ({ size: number } | undefined)[]; name: string }): Int32Array;
  /** Asserts the device's INTx line. */
  raise_irq(pciId: number): void;
  /** Deasserts the device's INTx line. */
  lower_irq(pciId: number): void;
  /** Answers a CONFIG_DATA read for the address in pci_addr. */
  pci_query(): void;
  /** A configuration space write of one byte. */
  pci_write8(addr: number, value: number): void;
  /** A configuration space write of 16 bits. */
  pci_write16(addr: number, value: number): void;
  /** A configuration space write of 32 bits. */
  pci_write32(addr: number, value: number): void;
  /** PIIX3 configuration space (PIRQ route registers at 0x60..0x63); absent in stand-ins. */
  isa_bridge_space8?: Uint8Array;
}

/** The parts of v86's CPU object (`emulator.v86.cpu`) the adapter uses. */
export interface V86Cpu {
  /** The I/O port table (`io.ports`, one entry per port). */
  io: {
    /** One entry per I/O port (0 to 0xffff). */
    ports: V86PortEntry[];
  };
  /** The PCI bus (`devices.pci`). */
  devices: {
    /** The PCI bus. */
    pci: V86PciBus;
  };
  /** Guest RAM as bytes (replaced when v86 grows its WebAssembly memory). */
  mem8: Uint8Array;
}

/**
 * Options of V86PciAdapter: the PCI transport's options, and where the device goes on v86's bus.
 */
export interface V86PciAdapterOptions extends Omit<PciDeviceOptions, 'modernIoBar' | 'msixVectors'> {
  /** PCI slot as v86's `pci_id` (device << 3 | function); the first free device from 0x0d by default. */
  readonly pciId?: number;
  /**
   * First port for the I/O BARs before the firmware moves them. When absent, each BAR goes to
   * the first free range at or above 0x7000 (so several adapters can share one emulator); when
   * given, the ports from there must be free.
   */
  readonly ioBase?: number;
  /** Name shown in v86's debug log. */
  readonly name?: string;
  /** Guest RAM as built by `v86GuestMemory(cpu)` (so a core factory can use it); built here when absent. */
  readonly memory?: GuestMemory;
}

/** v86's guest RAM as one GuestMemory region at guest physical address 0. */
export function v86GuestMemory(cpu: V86Cpu): GuestMemory {
  const m = cpu.mem8;
  return new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(m.buffer, m.byteOffset, m.length) }]);
}

const MAX_PORT = 0x10000;
const DEFAULT_IO_BASE = 0x7000;
/** PCI configuration offset of the interrupt pin (1 = INTA#). */
const INTERRUPT_PIN = 0x3d;
/** PIIX3 PIRQA..D route control registers (one ISA IRQ each). */
const PIIX3_PIRQ_ROUTE = 0x60;

/** The adapters asserting INTx on each v86 PCI bus: the wired OR of a shared line. */
const assertedOnBus = new WeakMap<V86PciBus, Set<V86PciAdapter>>();

function assertedSet(pci: V86PciBus): Set<V86PciAdapter> {
  let set = assertedOnBus.get(pci);
  if (set === undefined) {
    set = new Set();
    assertedOnBus.set(pci, set);
  }
  return set;
}

/** A TransportBus over a v86 emulator, holding the PciDeviceTransport it attached. */
export class V86PciAdapter implements TransportBus {
  /** v86's guest RAM as seen by the device. */
  readonly memory: GuestMemory;
  /** The PCI transport the accesses go to. */
  readonly transport: PciDeviceTransport;
  /** The device's slot on v86's bus (device << 3 | function). */
  readonly pciId: number;
  /** Initial port of each I/O BAR (-1 when absent), before the firmware moved them. */
  readonly initialPorts: readonly number[];
  /** Counts, for tests and diagnostics. */
  irqRaises = 0;
  /** Whether the INTx line is asserted now. */
  irqLevel = false;
  /** MSI-X is never offered here; any message is counted and dropped. */
  msiDropped = 0;
  /** How many times v86 replaced its memory buffer and the view was rebound. */
  memoryRebinds = 0;

  private readonly cpu: V86Cpu;
  private readonly pci: V86PciBus;
  private ram: Uint8Array;
  private detached = false;
  private readonly saved: Pick<V86PciBus, 'pci_query' | 'pci_write8' | 'pci_write16' | 'pci_write32'>;

  constructor(cpu: V86Cpu, factory: CoreFactory, opts: V86PciAdapterOptions = {}) {
    this.cpu = cpu;
    this.pci = cpu.devices.pci;
    this.memory = opts.memory ?? v86GuestMemory(cpu);
    const region = this.memory.regionSpecs()[0];
    if (this.memory.regionCount !== 1 || region === undefined || region.guestBase !== 0 || region.bytes.length !== cpu.mem8.length) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'v86 guest memory is one region at address 0');
    }
    this.ram = region.bytes;
    this.pciId = opts.pciId ?? this.freeSlot();
    if (!Number.isInteger(this.pciId) || this.pciId < 8 || this.pciId > 0xff || this.pci.devices[this.pciId] !== undefined) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `v86 PCI slot ${String(opts.pciId)} is not free`);
    }
    const t = new PciDeviceTransport(this, factory, { ...opts, modernIoBar: true, msixVectors: 0 });
    this.transport = t;

    // Place each I/O BAR at an initial port, aligned to its size, and install its port entries.
    const ports: number[] = [];
    const bars: ({ size: number } | undefined)[] = [];
    const explicitBase = opts.ioBase !== undefined;
    let next = opts.ioBase ?? DEFAULT_IO_BASE;
    for (let i = 0; i < 6; i++) {
      const size = t.barSize(i);
      if (size === 0) {
        ports.push(-1);
        bars.push(undefined);
        continue;
      }
      if (!t.barIsIo(i)) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `BAR${i} is a memory BAR: v86 maps only I/O BARs`);
      }
      let base = Math.ceil(next / size) * size;
      let taken = this.firstTakenPort(base, size);
      while (!explicitBase && taken >= 0 && base + size <= MAX_PORT) {
        base = Math.ceil((taken + 1) / size) * size;
        taken = this.firstTakenPort(base, size);
      }
      if (base + size > MAX_PORT) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no room for BAR${i} (${size} ports) below 0x10000`);
      if (taken >= 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `port 0x${taken.toString(16)} is taken: choose another ioBase`);
      for (let off = 0; off < size; off++) cpu.io.ports[base + off] = this.portEntry(i, off);
      t.configWrite(PciCfg.BAR0 + 4 * i, 4, base);
      ports.push(base);
      bars.push({ size });
      next = base + size;
    }
    this.initialPorts = ports;

    // v86 keeps its own copy of the header: the BAR type bits and the interrupt pin are read from it.
    const space: number[] = [];
    for (let off = 0; off < 0x40; off += 4) {
      const v = t.configRead(off, 4);
      space.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
    }
    while (space.length < PciCfg.SIZE) space.push(0);

    const pci = this.pci;
    this.saved = { pci_query: pci.pci_query, pci_write8: pci.pci_write8, pci_write16: pci.pci_write16, pci_write32: pci.pci_write32 };
    pci.register_device({ pci_id: this.pciId, pci_space: space, pci_bars: bars, name: opts.name ?? 'virtio-ts' });
    this.hookConfigCycles();
  }

  /** The first port of [base, base + size) some device already serves, or -1. */
  private firstTakenPort(base: number, size: number): number {
    const end = Math.min(base + size, MAX_PORT);
    for (let p = base; p < end; p++) {
      if (this.cpu.io.ports[p]?.device !== undefined) return p;
    }
    return -1;
  }

  private freeSlot(): number {
    for (let dev = 0x0d; dev < 0x20; dev++) {
      if (this.pci.devices[dev << 3] === undefined) return dev << 3;
    }
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no free v86 PCI slot');
  }

  private portEntry(bar: number, off: number): V86PortEntry {
    const t = this.transport;
    // A detached view has length 0: the one comparison per access that keeps RAM live.
    return {
      // Reads return what v86 expects: 8 and 16 bits unsigned, 32 bits as a signed int32.
      read8: () => {
        if (this.detached) return 0xff;
        if (this.ram.length === 0) this.refreshMemory();
        return t.barRead(bar, off, 1) & 0xff;
      },
      read16: () => {
        if (this.detached) return 0xffff;
        if (this.ram.length === 0) this.refreshMemory();
        return t.barRead(bar, off, 2) & 0xffff;
      },
      read32: () => {
        if (this.detached) return -1;
        if (this.ram.length === 0) this.refreshMemory();
        return t.barRead(bar, off, 4) | 0;
      },
      write8: (v: number) => {
        if (this.detached) return;
        if (this.ram.length === 0) this.refreshMemory();
        t.barWrite(bar, off, 1, v & 0xff);
      },
      write16: (v: number) => {
        if (this.detached) return;
        if (this.ram.length === 0) this.refreshMemory();
        t.barWrite(bar, off, 2, v & 0xffff);
      },
      write32: (v: number) => {
        if (this.detached) return;
        if (this.ram.length === 0) this.refreshMemory();
        t.barWrite(bar, off, 4, v >>> 0);
      },
      device: this,
    };
  }

  /**
   * Rebinds the guest RAM view when v86 replaced its memory buffer (a wasm memory growth), and
   * has the core rebuild its ring views. Cheap when nothing changed; never throws.
   */
  refreshMemory(): void {
    if (this.ram.length !== 0 || this.detached) return;
    try {
      const m = this.cpu.mem8;
      const bytes = new Uint8Array(m.buffer, m.byteOffset, m.length);
      this.memory.rebindRegion(0, bytes);
      this.ram = bytes;
      this.memoryRebinds++;
      const core = this.transport.core as DeviceCoreApi & { setMemory?: (mem: GuestMemory) => void };
      core.setMemory?.(this.memory);
    } catch {
      // v86 is being torn down; the next access tries again.
    }
  }

  /** Routes configuration cycles for our slot to the transport (after v86's own handling). */
  private hookConfigCycles(): void {
    const pci = this.pci;
    const id = this.pciId;
    const t = this.transport;
    const saved = this.saved;
    const ours = (addr: number): boolean => ((addr >> 8) & 0xffff) === id;
    const refresh = (): void => {
      if (this.ram.length === 0) this.refreshMemory();
    };
    pci.pci_query = function (this: V86PciBus): void {
      saved.pci_query.call(this);
      refresh();
      // The address register: [0] register (dword aligned), [1] device/function, [2] bus.
      if (((this.pci_addr[2]! << 8) | this.pci_addr[1]!) === id) this.pci_response32[0] = t.configRead(this.pci_addr[0]! & 0xfc, 4) | 0;
    };
    pci.pci_write8 = function (this: V86PciBus, addr: number, value: number): void {
      saved.pci_write8.call(this, addr, value);
      refresh();
      if (ours(addr)) t.configWrite(addr & 0xff, 1, value & 0xff);
    };
    pci.pci_write16 = function (this: V86PciBus, addr: number, value: number): void {
      saved.pci_write16.call(this, addr, value);
      refresh();
      if (ours(addr)) t.configWrite(addr & 0xff, 2, value & 0xffff);
    };
    pci.pci_write32 = function (this: V86PciBus, addr: number, value: number): void {
      saved.pci_write32.call(this, addr, value);
      refresh();
      if (ours(addr)) t.configWrite(addr & 0xff, 4, value >>> 0);
    };
  }

  /** True when v86 replaced its wasm memory since the last rebind (the next access rebinds). */
  get memoryDetached(): boolean {
    return this.ram.buffer.byteLength === 0;
  }

  /**
   * The ISA IRQ this slot's INTx pin is routed to, as v86 computes it (PCI-to-PCI bridge swizzle
   * `(pin - 1 + slot) mod 4` onto PIRQA..D, then the PIIX3 route register the firmware wrote).
   * Stand-ins without the bridge space give the PIRQ index.
   */
  get irqLine(): number {
    const pin = this.transport.configRead(INTERRUPT_PIN, 1) & 0xff;
    const pirq = (pin - 1 + (this.pciId >> 3)) & 3;
    return this.pci.isa_bridge_space8?.[PIIX3_PIRQ_ROUTE + pirq] ?? pirq;
  }

  raiseIrq(): void {
    this.irqLevel = true;
    this.irqRaises++;
    if (this.detached) return;
    assertedSet(this.pci).add(this);
    this.pci.raise_irq(this.pciId);
  }

  lowerIrq(): void {
    this.irqLevel = false;
    if (this.detached) return;
    this.releaseLine();
  }

  /** Drops this adapter's assertion; lowers the line unless another adapter on it still asserts. */
  private releaseLine(): void {
    const set = assertedSet(this.pci);
    set.delete(this);
    const line = this.irqLine;
    for (const other of set) {
      if (other.irqLine === line) return;
    }
    this.pci.lower_irq(this.pciId);
  }

  msiSend(): void {
    this.msiDropped++;
  }

  /**
   * Stops serving the guest: the device is reset, the port entries answer as empty ports,
   * configuration cycles go back to v86's own handling, interrupts are no longer raised.
   * Idempotent. Call it before destroying the emulator.
   */
  detach(): void {
    if (this.detached) return;
    // A device taken off the bus is reset (status 0, 2.4): whatever it runs on its own (stream
    // timers, host events, pending completions) stops now, while guest RAM is still live, and
    // never touches the emulator's memory after the emulator is destroyed.
    if (this.transport.core.status !== 0) this.transport.core.setStatus(0);
    // A detached device must not hold a shared line high.
    if (this.irqLevel) this.releaseLine();
    this.detached = true;
    const pci = this.pci;
    pci.pci_query = this.saved.pci_query;
    pci.pci_write8 = this.saved.pci_write8;
    pci.pci_write16 = this.saved.pci_write16;
    pci.pci_write32 = this.saved.pci_write32;
  }
}
