/**
 * MMIO register sequences (4.2.2): any order of reads and writes of the defined registers and
 * of undefined offsets, with wrong widths, over a modern or a legacy (version 1) MmioDeviceTransport
 * on the real DeviceCore with a blk device, interleaved with ring contents the registers point at
 * and notifications. No access may throw; guest memory guards must stay intact.
 */
import { ByteReader } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { partsOutcome, reusableTransportParts, takeParts } from '../harness/blk-rig.js';
import { drain } from '../harness/reuse.js';
import { AVAIL, DESC, USED } from '../harness/core-rig.js';
import { type RegisterSpace, StepWriter, runRegisterSteps } from '../harness/register-ops.js';
import { splitBlkReadImage } from '../harness/ring-image.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';

const OFFSETS = [...Object.values(MmioReg), MmioReg.CONFIG + 8, MmioReg.CONFIG + 0x14, 0x200];

const parts = reusableTransportParts();
/** The device behind the transport completes synchronously: a microtask drain is its event-loop turn. */
const settle = (): Promise<void> => drain(() => false);

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const legacy = (r.u8() & 1) === 1;
  const { mem, device } = takeParts(parts);
  const bus = new LoopbackBus(mem.memory, r.bool());
  const cores: DeviceCore[] = [];
  const mmio = new MmioDeviceTransport(bus, deviceCoreFactory(device, mem.memory, {}, cores), {
    version: legacy ? 1 : 2,
    onBadAccess: () => {},
  });
  const space: RegisterSpace = { name: 'mmio', offsets: OFFSETS, read: (o, w) => mmio.read(o, w), write: (o, w, v) => mmio.write(o, w, v) };
  await runRegisterSteps([space], mem, r, settle);
  mem.checkGuards();
}

function seeds(): Uint8Array[] {
  const s = [{ offsets: OFFSETS }];
  const bringUp = (legacyHeader: number): StepWriter => {
    const w = new StepWriter(s);
    const img = splitBlkReadImage();
    for (const wr of img.writes) w.memory(wr.offset, wr.bytes);
    w.write(0, MmioReg.STATUS, 1).write(0, MmioReg.STATUS, 3);
    w.write(0, MmioReg.DRIVER_FEATURES_SEL, 1).write(0, MmioReg.DRIVER_FEATURES, 1).write(0, MmioReg.DRIVER_FEATURES_SEL, 0).write(0, MmioReg.DRIVER_FEATURES, 0);
    w.write(0, MmioReg.STATUS, 0xb).read(0, MmioReg.STATUS);
    w.write(0, MmioReg.QUEUE_SEL, 0).read(0, MmioReg.QUEUE_SIZE_MAX).write(0, MmioReg.QUEUE_SIZE, 8);
    w.write(0, MmioReg.QUEUE_DESC_LOW, DESC).write(0, MmioReg.QUEUE_DRIVER_LOW, AVAIL).write(0, MmioReg.QUEUE_DEVICE_LOW, USED);
    w.write(0, MmioReg.QUEUE_READY, 1).write(0, MmioReg.STATUS, 0xf).write(0, MmioReg.QUEUE_NOTIFY, 0).settle();
    w.read(0, MmioReg.INTERRUPT_STATUS).write(0, MmioReg.INTERRUPT_ACK, 1);
    void legacyHeader;
    return w;
  };
  const modern = new Uint8Array([0, 0, ...bringUp(0).finish()]);
  const legacy = new StepWriter(s);
  legacy.write(0, MmioReg.STATUS, 3).write(0, MmioReg.GUEST_PAGE_SIZE, 4096).write(0, MmioReg.QUEUE_SEL, 0).write(0, MmioReg.QUEUE_SIZE, 8);
  legacy.write(0, MmioReg.QUEUE_ALIGN, 4096).write(0, MmioReg.QUEUE_PFN, DESC / 4096).write(0, MmioReg.STATUS, 7).write(0, MmioReg.QUEUE_NOTIFY, 0).settle();
  return [modern, new Uint8Array([1, 0, ...legacy.finish()]), new Uint8Array([0, 1, ...bringUp(0).finish()])];
}

export const target: FuzzTarget = { name: 'mmio-registers', maxLen: 2048, seeds, run, outcome: () => partsOutcome(parts) };
