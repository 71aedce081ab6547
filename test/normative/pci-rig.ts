/**
 * The PCI rig of the 4.1 normative tests (transport-pci*.test.ts): the real DeviceCore behind
 * the PCI device transport and the library's PCI driver transport, with a PCI function in
 * between that records (and, for some tests, alters) configuration cycles and BAR accesses.
 */
import type { DeviceCore } from '../../src/device/device-core.js';
import type { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { PciBar } from '../../src/transport/pci/constants.js';
import { type PciDeviceOptions, PciDeviceTransport, type PciFunction } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';

/** Guest memory of a rig, and where the driver's DMA allocations start in it. */
export const MEM = 4 << 20;
export const DMA_BASE = 0x10_0000;
/** Every feature bit a driver can want. */
export const ALL = (1n << 128n) - 1n;

/** One configuration cycle or BAR access, as the PCI function saw it. */
export interface PciAccess {
  readonly kind: 'cfg' | 'bar';
  readonly op: 'r' | 'w';
  readonly bar: number;
  readonly off: number;
  readonly width: number;
  readonly value: number;
  /** The queue the test was kicking when the access happened (-1 outside a kick). */
  readonly kicking: number;
}

/** A PCI function in front of the device: records every access, may replace values read. */
export class RecordingFunction implements PciFunction {
  readonly log: PciAccess[] = [];
  /** Set by a test around a kick: tags the accesses made inside it. */
  kicking = -1;
  onConfigRead: ((off: number, width: number, v: number) => number) | null = null;
  onBarRead: ((bar: number, off: number, width: number, v: number) => number) | null = null;
  /** Returns false to swallow the write. */
  onBarWrite: ((bar: number, off: number, width: number, v: number) => boolean) | null = null;

  constructor(readonly inner: PciDeviceTransport) {}

  configRead(off: number, width: number): number {
    let v = this.inner.configRead(off, width);
    if (this.onConfigRead) v = this.onConfigRead(off, width, v);
    this.log.push({ kind: 'cfg', op: 'r', bar: -1, off, width, value: v, kicking: this.kicking });
    return v;
  }
  configWrite(off: number, width: number, value: number): void {
    this.log.push({ kind: 'cfg', op: 'w', bar: -1, off, width, value, kicking: this.kicking });
    this.inner.configWrite(off, width, value);
  }
  barRead(bar: number, off: number, width: number): number {
    let v = this.inner.barRead(bar, off, width);
    if (this.onBarRead) v = this.onBarRead(bar, off, width, v);
    this.log.push({ kind: 'bar', op: 'r', bar, off, width, value: v, kicking: this.kicking });
    return v;
  }
  barWrite(bar: number, off: number, width: number, value: number): void {
    this.log.push({ kind: 'bar', op: 'w', bar, off, width, value, kicking: this.kicking });
    if (this.onBarWrite && !this.onBarWrite(bar, off, width, value)) return;
    this.inner.barWrite(bar, off, width, value);
  }
  clear(): void {
    this.log.length = 0;
  }
}

/** A device transport over `given` (default: an EchoDevice with two queues) behind a RecordingFunction. */
export function device<D extends EchoDevice | BlkDevice = EchoDevice>(opts: PciDeviceOptions = {}, given?: D) {
  const dev = (given ?? new EchoDevice({ queues: [64, 64] })) as D;
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new PciDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores), opts);
  const fn = new RecordingFunction(t);
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  return { mem, bus, t, fn, dev, core: () => cores.at(-1)!, dma };
}

/** `device` with the library's PCI driver transport on the recording function. */
export function rig<D extends EchoDevice | BlkDevice = EchoDevice>(opts: PciDeviceOptions = {}, dev?: D, useMsix = true) {
  const r = device<D>(opts, dev);
  const d = new PciDriverTransport(r.fn, r.mem, { useMsix });
  r.bus.onMsi = (a, v) => d.handleMsi(a, v);
  r.bus.onIrq = () => d.handleIntx();
  return { ...r, d };
}

/** The driver initialized with `wanted` (default: everything but packed rings). */
export function start(r: ReturnType<typeof rig>, wanted = ALL & ~F.RING_PACKED, numQueues?: number): VirtioDriver {
  return VirtioDriver.initSync(r.d, { wantedFeatures: wanted, dma: r.dma, queueSizes: [32], ...(numQueues === undefined ? {} : { numQueues }) });
}

/** n bytes of a pattern of `seed`. */
export function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 29 + seed) & 0xff;
  return b;
}

/** Offsets in the modern BAR of the common configuration and the ISR. */
export function commonOff(r: { t: PciDeviceTransport }, field: number): number {
  return r.t.layout.common + field;
}

/** Whether `a` touches common configuration field `field`. */
export function isCommon(r: { t: PciDeviceTransport }, a: PciAccess, field: number): boolean {
  return a.kind === 'bar' && a.bar === PciBar.MODERN && a.off === commonOff(r, field);
}
