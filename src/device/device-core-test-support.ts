/**
 * Test support for the DeviceCore tests (device-core.test.ts, device-core-queues.test.ts): a core
 * over an EchoDevice driven directly through the core's API as a transport would, the 3.1.1 steps,
 * split rings set up through the queue registers.
 */
import assert from 'node:assert/strict';
import { GuestMemory } from '../memory/guest-memory.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { splitRingLayout } from '../queue/split-layout.js';
import type { DriverQueue } from '../queue/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice, type EchoDeviceOptions } from '../testing/echo-device.js';
import { DeviceCore } from './device-core.js';
import type { DeviceCoreOptions } from './device-core-options.js';
import { setUpQueue } from './queue-register-file.js';
import type { InterruptSink } from './types.js';

export const S = Status;
export const ACK_DRIVER = S.ACKNOWLEDGE | S.DRIVER;
export const ALL_UP = S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK;
export const RING_BASE = 0x1000;
export const BUF_BASE = 0x40000;

/** Records used-buffer and configuration change notifications. */
export class RecordingSink implements InterruptSink {
  used: number[] = [];
  config = 0;
  usedBuffer(q: number): void {
    this.used.push(q);
  }
  configChange(): void {
    this.config++;
  }
}

/** A DeviceCore over an EchoDevice, its memory and its notifications. */
export interface Rig {
  memory: GuestMemory;
  irq: RecordingSink;
  dev: EchoDevice;
  core: DeviceCore;
}

/** A fresh rig: 1 MiB of guest memory, an echo device, options `core`. */
export function rig(echo: EchoDeviceOptions = {}, core: Partial<DeviceCoreOptions> = {}): Rig {
  const memory = GuestMemory.allocate(1 << 20);
  const irq = new RecordingSink();
  const dev = new EchoDevice(echo);
  return { memory, irq, dev, core: new DeviceCore(dev, { memory, interrupts: irq, ...core }) };
}

/** Steps 1 to 6 of 3.1.1 with `features` (default: everything offered except RING_PACKED). */
export function negotiate(core: DeviceCore, features?: bigint): boolean {
  core.setStatus(0);
  core.setStatus(S.ACKNOWLEDGE);
  core.setStatus(ACK_DRIVER);
  core.setDriverFeatures(features ?? core.deviceFeatures() & ~F.RING_PACKED);
  core.setStatus(ACK_DRIVER | S.FEATURES_OK);
  return (core.status & S.FEATURES_OK) !== 0;
}

/** Step 7 for queue `index`: a split ring at `base`; returns the driver side of it. */
export function setupQueue(r: Rig, index: number, size = 8, base = RING_BASE + index * 0x4000): DriverQueue<number> {
  const l = splitRingLayout(size, base);
  setUpQueue(r.core, index, { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr });
  return createDriverQueue<number>(r.memory, r.core.queueConfig(index)!);
}

/** One echo buffer: 4 readable bytes `tag`, 16 writable bytes. Returns whether the device must be notified. */
export function addEcho(r: Rig, q: DriverQueue<number>, tag: number, slot: number): boolean {
  const out = BUF_BASE + slot * 64;
  r.memory.writeU32(out, tag);
  assert.ok(q.add([{ addr: out, len: 4 }], [{ addr: out + 32, len: 16 }], tag));
  return q.kick();
}

/** A rig with queue 0 set up and DRIVER_OK accepted. */
export function running(features?: bigint): { r: Rig; q: DriverQueue<number> } {
  const r = rig();
  assert.ok(negotiate(r.core, features));
  const q = setupQueue(r, 0);
  r.core.setStatus(ALL_UP);
  assert.equal(r.core.status, ALL_UP);
  return { r, q };
}
