import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackedDriverQueue } from '../driver/packed-driver-queue.js';
import { SplitDriverQueue } from '../driver/split-driver-queue.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescriptorChain } from './chain.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { createDeviceQueue, isPackedConfig } from './create-queue.js';
import { PackedQueue } from './packed-queue.js';
import { SplitQueue } from './split-queue.js';
import { packedRingLayout } from './packed-layout.js';
import { splitRingLayout } from './split-layout.js';
import type { QueueConfig } from './types.js';

function config(packed: boolean): QueueConfig {
  const l = packed ? packedRingLayout(8, 0x1000) : splitRingLayout(8, 0x1000);
  return { size: 8, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1 | (packed ? F.RING_PACKED : 0n) };
}

describe('createDeviceQueue / createDriverQueue', () => {
  it('choose the packed ring with RING_PACKED and the split ring without', () => {
    const mem = GuestMemory.allocate(0x10000);
    for (const packed of [false, true]) {
      const cfg = config(packed);
      assert.equal(isPackedConfig(cfg), packed);
      const dev = createDeviceQueue(mem, cfg);
      const drv = createDriverQueue<string>(mem, cfg);
      assert.equal(dev.packed, packed);
      assert.equal(drv.packed, packed);
      assert.ok(packed ? dev instanceof PackedQueue : dev instanceof SplitQueue);
      assert.ok(packed ? drv instanceof PackedDriverQueue : drv instanceof SplitDriverQueue);
      // The pair works end to end whatever the format.
      assert.ok(drv.add([{ addr: 0x8000, len: 4 }], [{ addr: 0x9000, len: 8 }], 'req'));
      drv.kick();
      const chain = new DescriptorChain(mem, 8);
      assert.ok(dev.pop(chain));
      assert.equal(chain.readableBytes, 4);
      assert.equal(chain.writableBytes, 8);
      dev.push(chain, 5);
      assert.equal(drv.takeUsed(), 'req');
      assert.equal(drv.lastUsedLen, 5);
    }
  });

  it('a split layout config with RING_PACKED is checked as packed (and the reverse as split)', () => {
    const mem = GuestMemory.allocate(0x10000);
    // Split needs a power of two; packed accepts 6.
    const l = packedRingLayout(6, 0x1000);
    const cfg: QueueConfig = { size: 6, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.RING_PACKED };
    assert.equal(createDeviceQueue(mem, cfg).size, 6);
    assert.throws(() => createDeviceQueue(mem, { ...cfg, features: 0n }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_CONFIG);
  });
});
