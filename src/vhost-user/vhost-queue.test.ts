import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import { SplitQueue } from '../queue/split-queue.js';
import { F } from '../spec/features.js';
import { SplitInflight, inflightQueueRegionSize } from './inflight.js';
import { GUEST_BASE, MEM_SIZE, RING, TinyDriver } from './test-helpers.js';
import { VhostQueue } from './vhost-queue.js';

const enc = new TextEncoder();

function make(): { q: VhostQueue; drv: TinyDriver; mem: GuestMemory } {
  const mem = GuestMemory.allocate(MEM_SIZE, { base: GUEST_BASE });
  const drv = new TinyDriver(mem.bytesOf(0), 8);
  const inner = new SplitQueue(mem, {
    size: 8,
    descAddr: GUEST_BASE + RING.desc,
    driverAddr: GUEST_BASE + RING.avail,
    deviceAddr: GUEST_BASE + RING.used,
    features: F.VERSION_1 | F.EVENT_IDX,
  });
  const q = new VhostQueue(inner, {
    index: 0,
    memory: mem,
    packed: false,
    indirect: false,
    littleEndian: true,
    descGuest: GUEST_BASE + RING.desc,
    onError: () => undefined,
  });
  return { q, drv, mem };
}

describe('VhostQueue', () => {
  it('device/split-ring/13: pushDeferred writes the used entry, used idx moves only at publish (one store for the round)', () => {
    const { q, drv, mem } = make();
    const chains = [new DescriptorChain(mem, 4), new DescriptorChain(mem, 4)];
    drv.add(enc.encode('a'), 8, RING.data);
    drv.add(enc.encode('b'), 8, RING.data + 0x400);
    for (const c of chains) assert.equal(q.pop(c), true);
    q.pushDeferred(chains[0]!, 3);
    q.pushDeferred(chains[1]!, 5);
    assert.equal(drv.usedIdx(), 0, 'not yet visible');
    assert.deepEqual(drv.used(1), { id: chains[1]!.id, len: 5 }, 'entries written before idx');
    q.publish();
    assert.equal(drv.usedIdx(), 2);
    assert.deepEqual(q.state().nextUsed, 2);
  });

  it('pushDeferred publishes at once while inflight tracking is on (the inflight region records published completions)', () => {
    const { q, drv, mem } = make();
    const region = new Uint8Array(inflightQueueRegionSize(8));
    q.attachSplitInflight(new SplitInflight(new DataView(region.buffer), 0, 8), 0);
    const c = new DescriptorChain(mem, 4);
    drv.add(enc.encode('a'), 8, RING.data);
    assert.equal(q.pop(c), true);
    q.pushDeferred(c, 1);
    assert.equal(drv.usedIdx(), 1);
  });

  it('hold: enableNotification leaves avail_event behind and answers "nothing more"; enableNotificationNow sets it and re-checks (2.7.10)', () => {
    const { q, drv, mem } = make();
    const c = new DescriptorChain(mem, 4);
    q.hold = true;
    q.disableNotification();
    drv.add(enc.encode('a'), 8, RING.data);
    assert.equal(q.pop(c), true);
    drv.add(enc.encode('b'), 8, RING.data + 0x400);
    assert.equal(q.enableNotification(), false);
    assert.equal(drv.availEvent(), 0);
    assert.equal(q.enableNotificationNow(), true, 'the buffer added meanwhile is seen');
    assert.equal(drv.availEvent(), 1);
  });
});
