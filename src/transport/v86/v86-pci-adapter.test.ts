/**
 * The v86 adapter against a stand-in of v86's internals (port table, PCI bus, a guest RAM whose
 * ArrayBuffer is replaced as a wasm memory growth does): registration, configuration cycles,
 * I/O BAR ports, and the rebinding of guest RAM after the buffer was detached, with a request
 * served after it. The real emulator is exercised by test/v86-pci.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceCore } from '../../device/device-core.js';
import { BlkDevice } from '../../devices/blk/blk-device.js';
import { MemoryBackend } from '../../devices/blk/memory-backend.js';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import type { BadAccessReport } from '../bus.js';
import { PciBar, PciCfg, PCI_VENDOR_VIRTIO } from '../pci/constants.js';
import type { PciFunction } from '../pci/pci-device.js';
import { PciDriverTransport } from '../pci/pci-driver.js';
import { EntropyDevice } from '../../devices/entropy/entropy-device.js';
import { attachV86Devices } from './v86-attach.js';
import { type V86Cpu, type V86PciBus, type V86PortEntry, V86PciAdapter, v86GuestMemory } from './v86-pci-adapter.js';

const RAM = 1 << 20;

/** Guest RAM at offset 0x1000 of a buffer that `grow()` replaces (the old one is detached). */
class FakeRam {
  buf = new ArrayBuffer(RAM + 0x2000);
  get view(): Uint8Array {
    return new Uint8Array(this.buf, 0x1000, RAM);
  }
  grow(): void {
    this.buf = structuredClone(this.buf, { transfer: [this.buf] });
  }
}

function fakeCpu(ram: FakeRam): V86Cpu & { irqs: number[]; irqCalls: [number, number][] } {
  const irqs: number[] = [];
  /** [pci_id, 1 raise | 0 lower] per call. */
  const irqCalls: [number, number][] = [];
  const pci: V86PciBus = {
    devices: [],
    device_spaces: [],
    pci_addr: new Uint8Array(4),
    pci_response32: new Int32Array(1),
    register_device(dev) {
      this.devices[dev.pci_id] = dev;
      const space = new Int32Array(64);
      this.device_spaces[dev.pci_id] = space;
      return space;
    },
    raise_irq: (id) => {
      irqs.push(1);
      irqCalls.push([id, 1]);
    },
    lower_irq: (id) => {
      irqs.push(0);
      irqCalls.push([id, 0]);
    },
    pci_query() {},
    pci_write8() {},
    pci_write16() {},
    pci_write32() {},
  };
  const ports: V86PortEntry[] = [];
  return {
    io: { ports },
    devices: { pci },
    get mem8(): Uint8Array {
      return ram.view;
    },
    irqs,
    irqCalls,
  };
}

function blkAdapter(cpu: V86Cpu, opts: { pciId?: number; transitional?: boolean; ioBase?: number } = {}): V86PciAdapter {
  const memory = v86GuestMemory(cpu);
  const blk = new BlkDevice(new MemoryBackend(64 * 512));
  return new V86PciAdapter(cpu, (sink, mode) => new DeviceCore(blk, { memory, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian }), { memory, ...opts });
}

/** A PciFunction for the driver: I/O BAR accesses go through v86's port entries, as the guest's would. */
function viaPorts(cpu: V86Cpu, a: V86PciAdapter): PciFunction {
  const port = (bar: number, off: number): V86PortEntry => {
    const base = a.initialPorts[bar] ?? -1;
    const e = cpu.io.ports[base + off];
    assert.ok(base >= 0 && e, `no port for BAR${bar}+${off}`);
    return e;
  };
  return {
    configRead: (o, w) => a.transport.configRead(o, w),
    configWrite: (o, w, v) => a.transport.configWrite(o, w, v),
    barRead(bar, off, w) {
      const e = port(bar, off);
      const p = (a.initialPorts[bar] ?? 0) + off;
      return w === 1 ? e.read8(p) : w === 2 ? e.read16(p) : e.read32(p) >>> 0;
    },
    barWrite(bar, off, w, v) {
      const e = port(bar, off);
      if (w === 1) e.write8(v);
      else if (w === 2) e.write16(v);
      else e.write32(v);
    },
  };
}

describe('V86PciAdapter (v86 internals stood in)', () => {
  it('registers the function with I/O BARs only, answers config cycles for its slot, INTx through the bus', () => {
    const ram = new FakeRam();
    const cpu = fakeCpu(ram);
    const memory = v86GuestMemory(cpu);
    const blk = new BlkDevice(new MemoryBackend(64 * 512));
    const a = new V86PciAdapter(cpu, (sink, mode) => new DeviceCore(blk, { memory, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian }), { memory, transitional: true });
    assert.equal(a.pciId, 0x0d << 3);
    assert.ok(cpu.devices.pci.devices[a.pciId]);
    assert.ok(a.initialPorts[PciBar.LEGACY_IO]! >= 0x7000);
    assert.ok(a.initialPorts[PciBar.MODERN]! >= 0x7000);
    for (const i of [1, 2, 3, 5]) assert.equal(a.initialPorts[i], -1);
    // A configuration cycle for our slot is answered from the transport's space.
    const pci = cpu.devices.pci;
    pci.pci_addr.set([PciCfg.VENDOR_ID, a.pciId, 0, 0x80]);
    pci.pci_query();
    assert.equal(pci.pci_response32[0]! & 0xffff, PCI_VENDOR_VIRTIO);
    a.raiseIrq();
    a.lowerIrq();
    assert.deepEqual(cpu.irqs, [1, 0]);
    // Detaching resets a live device, so nothing it runs on its own outlives the emulator.
    a.transport.core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    let resets = 0;
    const reset = blk.reset.bind(blk);
    blk.reset = () => {
      resets++;
      reset();
    };
    a.detach();
    assert.equal(a.transport.core.status, 0);
    assert.equal(resets, 1, 'the device saw one reset');
    a.detach();
    assert.equal(resets, 1, 'detach is idempotent');
    const legacyPort = a.initialPorts[PciBar.LEGACY_IO]!;
    assert.equal(cpu.io.ports[legacyPort]!.read32(legacyPort), -1, 'a detached device reads as an empty port');
  });

  it('places several devices on their own slots and their own free I/O ports', () => {
    const cpu = fakeCpu(new FakeRam());
    const a = blkAdapter(cpu, { transitional: true });
    const b = blkAdapter(cpu, { transitional: true });
    const c = blkAdapter(cpu);
    assert.deepEqual([a.pciId, b.pciId, c.pciId], [0x0d << 3, 0x0e << 3, 0x0f << 3]);
    const owner = new Map<number, V86PciAdapter>();
    for (const x of [a, b, c]) {
      x.initialPorts.forEach((base, bar) => {
        for (let p = base; base >= 0 && p < base + x.transport.barSize(bar); p++) {
          assert.equal(owner.get(p), undefined, `port 0x${p.toString(16)} given twice`);
          owner.set(p, x);
          assert.equal(cpu.io.ports[p]!.device, x);
        }
      });
    }
    // An explicit base that overlaps a device is refused rather than moved.
    assert.throws(() => blkAdapter(cpu, { pciId: 0x10 << 3, ioBase: a.initialPorts[PciBar.MODERN]! }), /is taken/);
  });

  it('INTx is a wired OR among devices routed to the same IRQ: the line drops only when none asserts it', () => {
    const cpu = fakeCpu(new FakeRam());
    // SeaBIOS's routing: PIRQA..D to IRQ 10, 10, 11, 11. INTA# of slot s lands on PIRQ (s mod 4).
    cpu.devices.pci.isa_bridge_space8 = new Uint8Array(256);
    cpu.devices.pci.isa_bridge_space8.set([10, 10, 11, 11], 0x60);
    const a = blkAdapter(cpu, { pciId: 0x0c << 3 });
    const b = blkAdapter(cpu, { pciId: 0x0d << 3 });
    const c = blkAdapter(cpu, { pciId: 0x0e << 3 });
    assert.deepEqual([a.irqLine, b.irqLine, c.irqLine], [10, 10, 11]);
    a.raiseIrq();
    b.raiseIrq();
    c.raiseIrq();
    a.lowerIrq(); // b still asserts IRQ 10
    c.lowerIrq(); // alone on IRQ 11
    assert.deepEqual(cpu.irqCalls, [[a.pciId, 1], [b.pciId, 1], [c.pciId, 1], [c.pciId, 0]]);
    b.lowerIrq();
    assert.deepEqual(cpu.irqCalls.at(-1), [b.pciId, 0]);
    // Detaching an asserting device releases its share of the line.
    a.raiseIrq();
    a.detach();
    assert.deepEqual(cpu.irqCalls.slice(-2), [[a.pciId, 1], [a.pciId, 0]]);
    a.raiseIrq(); // detached: no effect on the bus
    assert.deepEqual(cpu.irqCalls.at(-1), [a.pciId, 0]);
  });

  it('rebinds guest RAM after the buffer was replaced (wasm memory growth) and keeps serving the live queue', async () => {
    const ram = new FakeRam();
    const cpu = fakeCpu(ram);
    const memory = v86GuestMemory(cpu);
    const backend = new MemoryBackend(64 * 512);
    const blk = new BlkDevice(backend, { queueSize: 16 });
    const cores: DeviceCore[] = [];
    const bad: BadAccessReport[] = [];
    const a = new V86PciAdapter(
      cpu,
      (sink, mode) => {
        const c = new DeviceCore(blk, { memory, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian });
        cores.push(c);
        return c;
      },
      { memory, onBadAccess: (r) => bad.push(r) },
    );
    // Bring the device up through the ports, as the guest would (no event index, no indirect).
    const t = new PciDriverTransport(viaPorts(cpu, a), memory, { useMsix: false });
    const drv = await VirtioDriver.init(t, { wantedFeatures: F.VERSION_1, dma: new DmaAllocator(0x10000, RAM - 0x10000), queueSizes: [16] });
    const core = cores.at(-1)!;
    assert.ok(core.status & Status.DRIVER_OK);
    const q = core.queueRegisters(0)!;
    assert.ok(q.enabled);

    ram.grow();
    assert.equal(a.memoryDetached, true);
    // A write request built by hand in the new buffer (the driver's own views died with the old one).
    const v = new DataView(ram.buf, 0x1000, RAM);
    const hdr = 0x80000;
    const data = 0x81000;
    const status = 0x82000;
    v.setUint32(hdr, BlkReqType.OUT, true);
    v.setUint32(hdr + 8, 3, true); // sector 3
    for (let i = 0; i < 512; i++) v.setUint8(data + i, (i * 3 + 1) & 0xff);
    v.setUint8(status, 0xff);
    const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
      const d = q.descAddr + 16 * i;
      v.setUint32(d, addr, true);
      v.setUint32(d + 4, 0, true);
      v.setUint32(d + 8, len, true);
      v.setUint16(d + 12, flags, true);
      v.setUint16(d + 14, next, true);
    };
    desc(0, hdr, 16, 1, 1);
    desc(1, data, 512, 1, 2);
    desc(2, status, 1, 2, 0);
    v.setUint16(q.driverAddr + 4, 0, true); // ring[0] = head 0
    v.setUint16(q.driverAddr + 2, 1, true); // idx = 1
    t.notify(0); // through the port: the adapter rebinds first
    assert.equal(a.memoryRebinds, 1);
    assert.equal(a.memoryDetached, false);
    assert.equal(v.getUint16(q.deviceAddr + 2, true), 1, 'used idx advanced in the new buffer');
    assert.equal(v.getUint8(status), BlkStatus.OK);
    for (let i = 0; i < 512; i++) assert.equal(backend.data[3 * 512 + i], (i * 3 + 1) & 0xff);
    assert.equal(core.needsResetReason, null);
    assert.deepEqual(bad, []);
    // A second growth between two accesses: the ISR read (INTx) rebinds again, harmlessly.
    ram.grow();
    assert.equal(t.getStatus() & Status.DRIVER_OK, Status.DRIVER_OK);
    assert.equal(a.memoryRebinds, 2);
    void drv;
    a.detach();
  });
});

describe('attachV86Devices', () => {
  it('the core rebinds guest RAM before it reads the ring on its own (a deferred notification after v86 grew its memory)', () => {
    const ram = new FakeRam();
    const cpu = fakeCpu(ram);
    const att = attachV86Devices(cpu, [{ device: new EntropyDevice() }]);
    const a = att.adapters[0]!;
    const t = new PciDriverTransport(viaPorts(cpu, a), v86GuestMemory(cpu), { useMsix: false });
    return VirtioDriver.init(t, { wantedFeatures: F.VERSION_1, dma: new DmaAllocator(0x10000, RAM - 0x10000), queueSizes: [16] }).then(() => {
      const core = a.transport.core as DeviceCore;
      assert.ok(core instanceof DeviceCore);
      // A device completing a request outside the port access that started it (sound's release
      // ending the tx messages, a timer) has the queue server notify in a microtask; v86 runs
      // guest code before that, and its JIT may grow the wasm memory (the old buffer dies).
      ram.grow();
      assert.equal(a.memoryDetached, true);
      // Without the core's beforeHostAccess hook this reads the dead buffer and throws.
      core.signalUsed(0);
      assert.equal(a.memoryRebinds, 1, 'guest RAM rebound before the ring was read');
      assert.equal(a.memoryDetached, false);
      assert.equal(core.status & Status.DEVICE_NEEDS_RESET, 0);
      att.detach();
    });
  });

  it('puts each device on its own slot and ports, reports refused accesses with the device index, detaches all', () => {
    const cpu = fakeCpu(new FakeRam());
    const bad: [number, string][] = [];
    const att = attachV86Devices(cpu, [{ device: new BlkDevice(new MemoryBackend(64 * 512)), transitional: true }, { device: new EntropyDevice() }], {
      onBadAccess: (i, r) => bad.push([i, r.region]),
    });
    const [blk, rng] = att.adapters;
    assert.ok(blk && rng);
    assert.deepEqual([blk.pciId, rng.pciId], [0x0d << 3, 0x0e << 3]);
    assert.equal(blk.transport.configRead(PciCfg.DEVICE_ID, 2), 0x1001, 'transitional block device id');
    assert.equal(rng.transport.configRead(PciCfg.DEVICE_ID, 2), 0x1044, 'modern entropy device id');
    // A write the modern common configuration does not define, through the entropy device's ports.
    const port = rng.initialPorts[PciBar.MODERN]! + 0x3f;
    cpu.io.ports[port]!.write8(1);
    assert.ok(bad.length > 0 && bad.every(([i]) => i === 1), JSON.stringify(bad));
    att.refreshMemory();
    att.detach();
    assert.equal(cpu.io.ports[port]!.read8(port), 0xff);
  });

  it('detaches what it attached when a later device cannot be placed', () => {
    const cpu = fakeCpu(new FakeRam());
    const blk = new BlkDevice(new MemoryBackend(64 * 512));
    assert.throws(() => attachV86Devices(cpu, [{ device: blk }, { device: new EntropyDevice(), pciId: 3 }]), /not free/);
    const first = cpu.io.ports.findIndex((e) => e !== undefined);
    assert.equal(cpu.io.ports[first]!.read32(first), -1, 'the first device was detached');
  });
});
