/**
 * PCI register sequences (4.1): configuration space (header, virtio capabilities, MSI-X
 * control, the PCI configuration access capability), the modern BAR (common configuration,
 * notify, ISR, device configuration), the MSI-X table BAR and, the device being transitional,
 * the legacy I/O BAR; defined offsets mostly, any offset and width sometimes, interleaved with
 * ring contents and event-loop turns, on the real DeviceCore with a blk device.
 */
import { ByteReader } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { memoryBlk, partsOutcome, reusableTransportParts, takeParts } from '../harness/blk-rig.js';
import { drain } from '../harness/reuse.js';
import type { VirtioDevice } from '../../src/device/types.js';
import { AVAIL, DESC, GUEST_BASE, GUEST_SIZE, USED } from '../harness/core-rig.js';
import { GuardedMemory } from '../harness/guarded-memory.js';
import { type RegisterSpace, StepWriter, runRegisterSteps } from '../harness/register-ops.js';
import { splitBlkReadImage } from '../harness/ring-image.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { CommonCfg, LegacyReg, Msix, PciBar, PciCfg } from '../../src/transport/pci/constants.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';

function spaces(p: PciDeviceTransport): RegisterSpace[] {
  const L = p.layout;
  const c = p.caps;
  const capOffsets = [c.msix, c.common, c.notify, c.isr, c.device, c.pciCfg].flatMap((o) => [o, o + 2, o + 4, o + 8, o + 12, o + 16]);
  return [
    {
      name: 'config',
      offsets: [...Object.values(PciCfg), c.msix + Msix.CTRL, ...capOffsets],
      read: (o, w) => p.configRead(o, w),
      write: (o, w, v) => p.configWrite(o, w, v),
    },
    {
      name: 'modern',
      offsets: [...Object.values(CommonCfg).map((o) => L.common + o), L.common + CommonCfg.QUEUE_DESC + 4, L.isr, L.notify, L.device, L.device + 8, L.device + 0x14],
      read: (o, w) => p.barRead(PciBar.MODERN, o, w),
      write: (o, w, v) => p.barWrite(PciBar.MODERN, o, w, v),
    },
    {
      name: 'msix',
      offsets: [0, 4, 8, 12, 16, 20, 24, 28, 0x800],
      read: (o, w) => p.barRead(PciBar.MSIX, o, w),
      write: (o, w, v) => p.barWrite(PciBar.MSIX, o, w, v),
    },
    {
      name: 'legacy',
      offsets: [...Object.values(LegacyReg), 16, 18, 19],
      read: (o, w) => p.barRead(PciBar.LEGACY_IO, o, w),
      write: (o, w, v) => p.barWrite(PciBar.LEGACY_IO, o, w, v),
    },
  ];
}

function makeDevice(bus: LoopbackBus, mem: GuardedMemory, device: VirtioDevice = memoryBlk(8).device): PciDeviceTransport {
  return new PciDeviceTransport(bus, deviceCoreFactory(device, mem.memory), { transitional: true, onBadAccess: () => {} });
}

const parts = reusableTransportParts();
/** The device behind the transport completes synchronously: a microtask drain is its event-loop turn. */
const settle = (): Promise<void> => drain(() => false);

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const { mem, device } = takeParts(parts);
  const bus = new LoopbackBus(mem.memory, r.bool());
  const p = makeDevice(bus, mem, device);
  await runRegisterSteps(spaces(p), mem, r, settle);
  mem.checkGuards();
}

function seeds(): Uint8Array[] {
  const mem = new GuardedMemory(GUEST_BASE, GUEST_SIZE);
  const p = makeDevice(new LoopbackBus(mem.memory, false), mem);
  const s = spaces(p);
  const L = p.layout;
  const M = 1;
  const C = (o: number): number => L.common + o;
  const img = splitBlkReadImage();
  const modern = new StepWriter(s);
  for (const wr of img.writes) modern.memory(wr.offset, wr.bytes);
  modern.write(M, C(CommonCfg.DEVICE_STATUS), 1, 1).write(M, C(CommonCfg.DEVICE_STATUS), 3, 1);
  modern.write(M, C(CommonCfg.DRIVER_FEATURE_SELECT), 1).write(M, C(CommonCfg.DRIVER_FEATURE), 1);
  modern.write(M, C(CommonCfg.DEVICE_STATUS), 0xb, 1).read(M, C(CommonCfg.DEVICE_STATUS));
  modern.write(M, C(CommonCfg.QUEUE_SELECT), 0, 2).write(M, C(CommonCfg.QUEUE_SIZE), 8, 2);
  modern.write(M, C(CommonCfg.QUEUE_DESC), DESC).write(M, C(CommonCfg.QUEUE_DRIVER), AVAIL).write(M, C(CommonCfg.QUEUE_DEVICE), USED);
  modern.write(M, C(CommonCfg.QUEUE_ENABLE), 1, 2).write(M, C(CommonCfg.DEVICE_STATUS), 0xf, 1).write(M, L.notify, 0, 2).settle().read(M, L.isr);
  const legacy = new StepWriter(s);
  const G = 3;
  for (const wr of img.writes) legacy.memory(wr.offset, wr.bytes);
  legacy.write(G, LegacyReg.STATUS, 3, 1).write(G, LegacyReg.QUEUE_SELECT, 0, 2).read(G, LegacyReg.QUEUE_SIZE);
  legacy.write(G, LegacyReg.QUEUE_PFN, DESC / 4096).write(G, LegacyReg.STATUS, 7, 1).write(G, LegacyReg.QUEUE_NOTIFY, 0, 2).settle();
  const msix = new StepWriter(s);
  msix.write(0, p.caps.msix + Msix.CTRL, Msix.CTRL_ENABLE, 2).write(2, 0, 0xfee00000).write(2, 8, 0x20).write(2, 12, 0);
  return [new Uint8Array([0, ...modern.finish()]), new Uint8Array([0, ...legacy.finish()]), new Uint8Array([1, ...msix.finish(), ...modern.finish()])];
}

export const target: FuzzTarget = { name: 'pci-registers', maxLen: 2048, seeds, run, outcome: () => partsOutcome(parts) };
