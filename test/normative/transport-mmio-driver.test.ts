/**
 * Driver rules of 4.2 proven on the library's MMIO driver (MmioDriverTransport under
 * VirtioDriver): whole driver sessions (probe, initialization, buffers on every queue, queue
 * reset, configuration access and change, interrupts, device reset) through a register window
 * that records every access; each rule is checked on what the driver actually did. Nothing here
 * writes to the device itself: a device refusing a bad access proves nothing about the driver.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { ECHO_CONFIG_SIZE, EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';
import { type Access, RecordingWindow, roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;
const QUEUE_MAX = [64, 16, 8];

const R = 'r';
const W = 'w';
const RW = 'rw';
/** 4.2.2 (version 2) and 4.2.4 (legacy, version 1): register -> direction, per version. */
const COMMON_REGS: Record<number, string> = {
  [MmioReg.MAGIC_VALUE]: R, [MmioReg.VERSION]: R, [MmioReg.DEVICE_ID]: R, [MmioReg.VENDOR_ID]: R,
  [MmioReg.DEVICE_FEATURES]: R, [MmioReg.DEVICE_FEATURES_SEL]: W, [MmioReg.DRIVER_FEATURES]: W, [MmioReg.DRIVER_FEATURES_SEL]: W,
  [MmioReg.QUEUE_SEL]: W, [MmioReg.QUEUE_SIZE_MAX]: R, [MmioReg.QUEUE_SIZE]: W, [MmioReg.QUEUE_NOTIFY]: W,
  [MmioReg.INTERRUPT_STATUS]: R, [MmioReg.INTERRUPT_ACK]: W, [MmioReg.STATUS]: RW,
};
const REGS: Record<1 | 2, Record<number, string>> = {
  2: {
    ...COMMON_REGS,
    [MmioReg.QUEUE_READY]: RW, [MmioReg.QUEUE_DESC_LOW]: W, [MmioReg.QUEUE_DESC_HIGH]: W, [MmioReg.QUEUE_DRIVER_LOW]: W,
    [MmioReg.QUEUE_DRIVER_HIGH]: W, [MmioReg.QUEUE_DEVICE_LOW]: W, [MmioReg.QUEUE_DEVICE_HIGH]: W, [MmioReg.SHM_SEL]: W,
    [MmioReg.SHM_LEN_LOW]: R, [MmioReg.SHM_LEN_HIGH]: R, [MmioReg.SHM_BASE_LOW]: R, [MmioReg.SHM_BASE_HIGH]: R,
    [MmioReg.QUEUE_RESET]: RW, [MmioReg.CONFIG_GENERATION]: R,
  },
  1: { ...COMMON_REGS, [MmioReg.GUEST_PAGE_SIZE]: W, [MmioReg.QUEUE_ALIGN]: W, [MmioReg.QUEUE_PFN]: RW },
};

interface Session {
  readonly name: string;
  readonly version: 1 | 2;
  readonly log: readonly Access[];
  readonly features: bigint;
}

function session(name: string, version: 1 | 2, wanted: bigint): Session {
  const dev = new EchoDevice({ queues: QUEUE_MAX });
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores), { version });
  const w = new RecordingWindow(t);
  const probed = MmioDriverTransport.probe(w, mem);
  assert.ok(probed, `${name}: the device is found`);
  const d = probed;
  bus.onIrq = () => d.handleInterrupt();
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  // Ask for more than every queue's maximum: the driver must cap what it writes.
  const drv = VirtioDriver.initSync(d, { wantedFeatures: wanted, dma, queueSizes: [128] });
  let configChanges = 0;
  drv.onConfigChange(() => configChanges++);
  const exercise = (q: number): void => {
    for (let i = 0; i < 4; i++) {
      const p = new Uint8Array(20 + i).fill(q + i);
      assert.deepEqual(roundTrip(mem, dma, drv.queue(q), () => drv.kick(q), p).data, p);
    }
  };
  for (let q = 0; q < QUEUE_MAX.length; q++) exercise(q);
  if ((drv.features & F.RING_RESET) !== 0n) {
    drv.resetQueue(1);
    exercise(1);
  }
  drv.context.writeConfig(4, new Uint8Array([9, 8, 7, 6]));
  drv.context.readConfig(0, ECHO_CONFIG_SIZE);
  dev.bumpConfig();
  assert.ok(configChanges >= 1, `${name}: the configuration change arrived`);
  const features = drv.features;
  drv.reset();
  return { name, version, log: w.log, features };
}

describe('4.2 MMIO: the driver\'s own accesses', () => {
  let runs: Session[] = [];
  before(() => {
    runs = [
      session('version 2, split', 2, ALL & ~F.RING_PACKED),
      session('version 2, packed', 2, ALL),
      session('version 2, no RING_RESET', 2, ALL & ~F.RING_PACKED & ~F.RING_RESET),
      session('legacy (version 1)', 1, ALL),
    ];
  });

  it('driver/transport-mmio/1: only registers of the layout (and the device configuration) are accessed; no write to a read-only one, no read of a write-only one', () => {
    for (const s of runs) {
      const regs = REGS[s.version];
      let config = 0;
      for (const a of s.log) {
        if (a.off >= MmioReg.CONFIG) {
          assert.ok(a.off + a.width <= MmioReg.CONFIG + ECHO_CONFIG_SIZE, `${s.name}: config access at 0x${a.off.toString(16)} beyond the device's configuration`);
          config++;
          continue;
        }
        const dir = regs[a.off];
        assert.ok(dir !== undefined, `${s.name}: access to 0x${a.off.toString(16)}, not a register of version ${s.version}`);
        assert.ok(dir.includes(a.op), `${s.name}: ${a.op === 'r' ? 'read of write-only' : 'write to read-only'} register 0x${a.off.toString(16)}`);
      }
      assert.ok(config > 0, `${s.name}: the session did access the configuration`);
    }
  });

  it('driver/transport-mmio/2: every control register access is 32 bits wide and aligned', () => {
    for (const s of runs) {
      const control = s.log.filter((a) => a.off < MmioReg.CONFIG);
      assert.ok(control.length > 50, s.name);
      const bad = control.filter((a) => a.width !== 4 || a.off % 4 !== 0);
      assert.deepEqual(bad, [], s.name);
    }
  });

  it('driver/transport-mmio/9: every QueueSize written is at most the QueueSizeMax the device presents for that queue', () => {
    let writes = 0;
    for (const s of runs) {
      let selected = -1;
      for (const a of s.log) {
        if (a.op === 'w' && a.off === MmioReg.QUEUE_SEL) selected = a.value;
        if (a.op === 'w' && a.off === MmioReg.QUEUE_SIZE) {
          const max = QUEUE_MAX[selected];
          assert.ok(max !== undefined && a.value >= 1 && a.value <= max, `${s.name}: QueueSize ${a.value} for queue ${selected} (max ${max})`);
          writes++;
        }
      }
    }
    assert.ok(writes >= 12);
  });

  it('driver/transport-mmio/10: while QueueReady is set the driver does not touch that queue\'s size or ring addresses', () => {
    const frozen = new Set<number>([
      MmioReg.QUEUE_SIZE, MmioReg.QUEUE_DESC_LOW, MmioReg.QUEUE_DESC_HIGH, MmioReg.QUEUE_DRIVER_LOW,
      MmioReg.QUEUE_DRIVER_HIGH, MmioReg.QUEUE_DEVICE_LOW, MmioReg.QUEUE_DEVICE_HIGH,
    ]);
    let readies = 0;
    for (const s of runs.filter((r) => r.version === 2)) {
      const ready = new Set<number>();
      let selected = -1;
      for (const a of s.log) {
        if (a.op === 'w' && a.off === MmioReg.QUEUE_SEL) selected = a.value;
        else if (a.op === 'w' && a.off === MmioReg.STATUS && a.value === 0) ready.clear();
        else if (a.op === 'w' && a.off === MmioReg.QUEUE_RESET && a.value === 1) ready.delete(selected);
        else if (a.op === 'w' && a.off === MmioReg.QUEUE_READY) {
          if (a.value === 1) {
            ready.add(selected);
            readies++;
          } else ready.delete(selected);
        } else if (frozen.has(a.off)) {
          assert.ok(!ready.has(selected), `${s.name}: 0x${a.off.toString(16)} accessed while queue ${selected} is ready`);
        }
      }
    }
    assert.ok(readies >= 9, `queues were made ready (${readies})`);
  });
});
