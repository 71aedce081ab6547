/** A blk device on the memory backend, the device most targets put behind a ring. */
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { createHash } from 'node:crypto';
import { CoreRig, GUEST_BASE, GUEST_SIZE } from './core-rig.js';
import { GuardedMemory } from './guarded-memory.js';
import { Reusable } from './reuse.js';

export const BLK_SECTORS = 64;

export function memoryBlk(queueSize: number): { device: BlkDevice; backend: MemoryBackend } {
  const backend = new MemoryBackend(BLK_SECTORS * 512);
  const device = new BlkDevice(backend, { queueSize, serial: 'fuzz', numQueues: 1 });
  return { device, backend };
}

/** A reusable CoreRig with a blk device whose RAM disk is zeroed at each start. */
export function reusableBlkRig(queueSize: number): Reusable<CoreRig> {
  return new Reusable(() => {
    const { device, backend } = memoryBlk(queueSize);
    return new CoreRig({ device, queueSize, resetHost: () => backend.data.fill(0), hostState: () => [backend.data] });
  });
}

/** Guest memory and a RAM disk, kept between inputs of a register target (a fresh transport, core and device each time). */
export interface TransportParts {
  readonly mem: GuardedMemory;
  readonly backend: MemoryBackend;
}

/** Reused guest memory and RAM disk for the register targets; `takeParts` zeroes both. */
export function reusableTransportParts(): Reusable<TransportParts> {
  return new Reusable(() => ({ mem: new GuardedMemory(GUEST_BASE, GUEST_SIZE), backend: new MemoryBackend(BLK_SECTORS * 512) }));
}

/** The parts for the next input, zeroed, and a new blk device on the disk. */
export function takeParts(parts: Reusable<TransportParts>): TransportParts & { device: BlkDevice } {
  const p = parts.get();
  p.mem.clear();
  p.backend.data.fill(0);
  return { ...p, device: new BlkDevice(p.backend, { queueSize: 8, serial: 'fuzz', numQueues: 1 }) };
}

/** What the last input left in guest memory and on the disk (digest), for the reuse test. */
export function partsOutcome(parts: Reusable<TransportParts>): string {
  const p = parts.last!;
  return createHash('sha1').update(p.mem.bytes).update(p.backend.data).digest('hex');
}
