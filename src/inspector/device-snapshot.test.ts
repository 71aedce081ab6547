/**
 * The inspector's device snapshot over a block device in process, on split and packed rings:
 * the ring indices and the device's positions it reports are the driver's own counts, the
 * chain held in flight is listed and its descriptors read back as the driver wrote them, the
 * counters are QueueStats', and taking all of it writes not one byte of guest memory. Ring
 * fields outside guest memory read as unmapped; a looping chain stops the walk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { holdWritesFrom } from '../cli/held-write-blk.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { BlkDriver } from '../devices/blk/blk-driver.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { silentLogger } from '../log.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag } from '../spec/ring.js';
import { createLoopback } from '../testing/loopback.js';
import { chainDetail, snapshotDevice, type InspectedDevice } from './device-snapshot.js';
import { featureBitName, protocolFeatureName } from './feature-names.js';
import { readRing, readSplitChain, suppression } from './ring-peek.js';

const SECTOR = 512;
const HOLD_FROM = 32 * 1024;

for (const packed of [false, true]) {
  describe(`inspector snapshot, ${packed ? 'packed' : 'split'} ring`, () => {
    it('reports the driver\'s indices, the held chain and its descriptors, the counters, and writes nothing', async () => {
      const backend = holdWritesFrom(new MemoryBackend(64 * 1024), HOLD_FROM, () => undefined);
      const lb = await createLoopback(new BlkDevice(backend), { packed, queueSize: 16, logger: silentLogger });
      try {
        const blk = new BlkDriver(lb.context);
        for (let i = 0; i < 4; i++) await blk.write(i, new Uint8Array(SECTOR).fill(i + 1));
        const held = blk.write(HOLD_FROM / SECTOR, new Uint8Array(SECTOR).fill(9));
        void held.catch(() => undefined);
        // The held write is popped in the notification's pass (microtask delivery).
        await new Promise((r) => setImmediate(r));
        const inspected: InspectedDevice = { name: 'blk', core: () => lb.core, stats: lb.core.stats };
        const region = lb.memory.bytesOf(0);
        const before = Uint8Array.from(region);
        const s = snapshotDevice(inspected);
        const q = s.queues[0]!;
        const chain = q.chains?.[0];
        assert.ok(chain, 'the held chain is listed');
        const detail = chainDetail(inspected, 0, chain.id);
        assert.deepEqual(region, before, 'a snapshot and a chain detail write nothing to guest memory');

        assert.equal(s.connected, true);
        assert.equal(s.deviceType, 'BLOCK');
        assert.ok(s.status!.bits.find((b) => b.name === 'DRIVER_OK')!.set);
        assert.equal(s.needsReset, null);
        const version1 = s.features!.bits.find((b) => b.name === 'VERSION_1')!;
        assert.deepEqual([version1.offered, version1.negotiated], [true, true]);
        assert.equal(s.features!.bits.find((b) => b.name === 'RING_PACKED')?.negotiated ?? false, packed);
        assert.equal(q.layout, packed ? 'packed' : 'split');
        assert.equal(q.size, 16);
        assert.equal(q.started, true);
        // Five buffers made available, four used: split indices count buffers; packed positions
        // count ring descriptors (3 per buffer, 1 when the driver used an indirect table).
        const perBuffer = packed ? q.device!.nextAvail / 5 : 1;
        assert.ok(perBuffer === 1 || perBuffer === 3, `${perBuffer} ring descriptors per buffer`);
        assert.equal(q.device!.nextAvail, 5 * perBuffer);
        assert.equal(q.device!.nextUsed, 4 * perBuffer);
        assert.equal(q.device!.inFlight, 1);
        if (q.ring!.layout === 'split') {
          assert.equal(q.ring!.availIdx, 5, 'the avail idx the driver published');
          assert.equal(q.ring!.usedIdx, 4, 'the used idx the device published');
        } else {
          assert.equal(q.ring!.availableAhead, 0, 'nothing available beyond what the device took');
          assert.notEqual(q.ring!.driverEvent, null);
        }
        assert.ok(q.suppression!.driverNotifications.length > 0 && q.suppression!.deviceNotifications.length > 0);
        assert.deepEqual(
          { requests: q.counters!.requests, completed: q.counters!.completed, inFlight: q.counters!.inFlight, bytesRead: q.counters!.bytesRead },
          { requests: 5, completed: 4, inFlight: 1, bytesRead: 5 * (16 + SECTOR) },
        );
        assert.deepEqual([chain.segments, chain.readableBytes, chain.writableBytes], [3, 16 + SECTOR, 1], 'header, data, status');

        assert.ok(detail);
        assert.equal(detail.source, packed ? 'popped chain' : 'descriptor table');
        const flat = detail.descriptors.flatMap((d) => (d.indirect ? d.indirect : [d]));
        assert.deepEqual(
          flat.map((d) => [d.len, (d.flags! & DescFlag.WRITE) !== 0]),
          [
            [16, false],
            [SECTOR, false],
            [1, true],
          ],
        );
        assert.equal(detail.problem, null);
        assert.equal(chainDetail(inspected, 0, chain.id + 1), null, 'no such chain in flight');
      } finally {
        await lb.close();
      }
    });
  });
}

describe('inspector ring reads', () => {
  const memory = new GuestMemory([{ guestBase: 0x1000, bytes: new Uint8Array(0x1000) }]);
  const peek = { config: { size: 8, descAddr: 0x1000, driverAddr: 0x1080, deviceAddr: 0x10c0, features: F.VERSION_1 }, position: { nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true }, inFlight: 0, notifyEnabled: true };

  it('fields outside guest memory read as unmapped; nothing throws', () => {
    const outside = { ...peek.config, driverAddr: 0x9000, deviceAddr: 0x1ffe };
    const ring = readRing(memory, outside, peek);
    assert.equal(ring.layout, 'split');
    if (ring.layout === 'split') {
      assert.deepEqual([ring.availIdx, ring.availFlags, ring.usedEvent, ring.usedIdx], [null, null, null, null]);
    }
    assert.deepEqual(suppression(ring, outside), { eventIdx: false, driverNotifications: 'enabled', deviceNotifications: 'unmapped' });
    const packedRing = readRing(memory, { ...peek.config, descAddr: 0x8000, driverAddr: 0x8100, deviceAddr: 0x8104, features: F.VERSION_1 | F.RING_PACKED }, peek);
    assert.deepEqual(packedRing, { layout: 'packed', driverEvent: null, deviceEvent: null, availableAhead: null });
    const chain = readSplitChain(memory, { ...peek.config, descAddr: 0x1ff0 }, 3);
    assert.equal(chain.descriptors[0]!.flags, null);
    assert.match(chain.problem!, /unmapped/);
  });

  it('a looping chain stops after the queue size; an indirect table pointing outside memory shows unmapped entries', () => {
    // Descriptor 0: NEXT -> 1; 1: NEXT -> 0 (a loop); 2: INDIRECT at an unmapped address.
    memory.writeU64(0x1000, 0x1800n);
    memory.writeU32(0x1008, 100);
    memory.writeU16(0x100c, DescFlag.NEXT);
    memory.writeU16(0x100e, 1);
    memory.writeU16(0x101c, DescFlag.NEXT | DescFlag.WRITE);
    memory.writeU16(0x101e, 0);
    memory.writeU64(0x1020, 0x7000_0000n);
    memory.writeU32(0x1028, 32);
    memory.writeU16(0x102c, DescFlag.INDIRECT);
    const loop = readSplitChain(memory, peek.config, 0);
    assert.equal(loop.descriptors.length, 8);
    assert.match(loop.problem!, /loop/);
    assert.deepEqual(loop.descriptors[1]!.flagNames, ['NEXT', 'WRITE']);
    const ind = readSplitChain(memory, peek.config, 2);
    assert.equal(ind.descriptors[0]!.indirect!.length, 2);
    assert.deepEqual(ind.descriptors[0]!.indirect!.map((d) => d.addr), [null, null]);
  });

  it('names: transport, device-type and vhost-user bits; protocol features', () => {
    assert.equal(featureBitName(2, 34), 'RING_PACKED');
    assert.equal(featureBitName(2, 9), 'FLUSH');
    assert.equal(featureBitName(1, 5), 'MAC');
    assert.equal(featureBitName(2, 30), 'VHOST_USER_F_PROTOCOL_FEATURES');
    assert.equal(featureBitName(4, 3), 'bit 3');
    assert.equal(featureBitName(34, 0), 'ZERO_LENGTH_REQUEST');
    assert.equal(protocolFeatureName(12), 'INFLIGHT_SHMFD');
  });
});
