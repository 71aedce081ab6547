/**
 * DeviceQueue.createChain: a chain sized by the queue holds every legal chain (at most the queue
 * size of descriptors, driver/split-ring/7, driver/packed-ring/7), also when a buffer crosses
 * from one guest memory region into the next: splitting it never makes a legal chain
 * CHAIN_TOO_LONG (which would set DEVICE_NEEDS_RESET).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDriverQueue } from '../driver/create-queue.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescriptorChain, REGION_SPLIT_SLACK, chainCapacityForQueue } from './chain.js';
import { createDeviceQueue } from './create-queue.js';
import { packedRingLayout } from './packed-layout.js';
import { splitRingLayout } from './split-layout.js';
import type { QueueConfig, Segment } from './types.js';

const SIZE = 8;
/** Two guest-contiguous regions: a buffer at 0xff00 of 0x200 bytes crosses into the second. */
const BOUNDARY = 0x10000;

function setup(packed: boolean, indirect = false) {
  const mem = new GuestMemory([
    { guestBase: 0, bytes: new Uint8Array(BOUNDARY) },
    { guestBase: BOUNDARY, bytes: new Uint8Array(0x10000) },
  ]);
  const l = packed ? packedRingLayout(SIZE, 0x1000) : splitRingLayout(SIZE, 0x1000);
  const cfg: QueueConfig = {
    size: SIZE,
    descAddr: l.descAddr,
    driverAddr: l.driverAddr,
    deviceAddr: l.deviceAddr,
    features: F.VERSION_1 | (indirect ? F.INDIRECT_DESC : 0n) | (packed ? F.RING_PACKED : 0n),
    index: 0,
  };
  const dev = createDeviceQueue(mem, cfg);
  const drv = createDriverQueue<number>(mem, cfg, indirect ? { indirectTableAddr: 0x8000, indirectMaxSegments: SIZE } : {});
  return { mem, dev, drv };
}

/** A legal chain of the queue size: `n - 1` readable segments then a writable one that crosses regions (`cross`). */
function fullChain(cross: number): { out: Segment[]; inn: Segment[] } {
  const out: Segment[] = [];
  for (let i = 0; i < SIZE - 1; i++) out.push(i === cross ? { addr: BOUNDARY - 0x100, len: 0x200 } : { addr: 0x3000 + i * 0x40, len: 0x40 });
  return { out, inn: [{ addr: 0x5000, len: 16 }] };
}

describe('DeviceQueue.createChain', () => {
  for (const packed of [false, true]) {
    for (const indirect of [false, true]) {
      const kind = `${packed ? 'packed' : 'split'}${indirect ? ', indirect' : ''}`;

      it(`${kind}: a legal chain as long as the queue, one buffer crossing regions, is served (regression: no CHAIN_TOO_LONG)`, () => {
        for (const cross of [0, 3, SIZE - 2]) {
          const { dev, drv } = setup(packed, indirect);
          const { out, inn } = fullChain(cross);
          assert.ok(drv.add(out, inn, 1, indirect));
          drv.kick();
          const chain = dev.createChain();
          assert.equal(chain.capacity, SIZE + REGION_SPLIT_SLACK);
          assert.ok(dev.pop(chain));
          assert.equal(dev.broken, null);
          assert.equal(chain.fault, null, 'split at the region boundary');
          assert.equal(chain.count, SIZE + 1);
          assert.equal(chain.readableBytes, (SIZE - 2) * 0x40 + 0x200);
          dev.push(chain, 16);
          assert.equal(drv.takeUsed(), 1);
        }
      });

      it(`${kind}: with a chain of exactly the queue size the crossing buffer fails its own request, never the ring`, () => {
        // What devices that sized chains themselves had: the split used to take the room of a
        // later descriptor and the ring broke (DEVICE_NEEDS_RESET).
        const { mem, dev, drv } = setup(packed, indirect);
        const { out, inn } = fullChain(0);
        assert.ok(drv.add(out, inn, 1, indirect));
        drv.kick();
        const chain = new DescriptorChain(mem, SIZE);
        assert.ok(dev.pop(chain));
        assert.equal(dev.broken, null);
        assert.equal(chain.count, SIZE);
        assert.notEqual(chain.fault, null);
        dev.push(chain, 0);
        assert.equal(drv.takeUsed(), 1);
      });
    }
  }

  it('minSegments: a device bound above the queue size (virtio-blk seg_max + 2); validated', () => {
    const { dev } = setup(false);
    assert.equal(dev.createChain(64).capacity, 64);
    assert.equal(dev.createChain(2).capacity, chainCapacityForQueue(SIZE));
    for (const bad of [-1, 1.5, Number.NaN, 1 << 20]) {
      assert.throws(() => dev.createChain(bad), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    }
  });
});
