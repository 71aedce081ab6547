import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import { DirectBatch } from '../queue/direct-batch.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import { packedRingLayout } from '../queue/packed-layout.js';
import { splitRingLayout } from '../queue/split-layout.js';
import { SplitQueue } from '../queue/split-queue.js';
import type { DeviceQueue, DriverQueue, QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { PackedInflight, SplitInflight, inflightQueueRegionSize } from './inflight.js';
import { GUEST_BASE, MEM_SIZE, RING, TinyDriver } from './test-helpers.js';
import { DirtyLog, VhostQueue } from './vhost-queue.js';

const enc = new TextEncoder();

function make(features: bigint = F.VERSION_1 | F.EVENT_IDX): { q: VhostQueue; drv: TinyDriver; mem: GuestMemory } {
  const mem = GuestMemory.allocate(MEM_SIZE, { base: GUEST_BASE });
  const drv = new TinyDriver(mem.bytesOf(0), 8);
  const inner = new SplitQueue(mem, {
    size: 8,
    descAddr: GUEST_BASE + RING.desc,
    driverAddr: GUEST_BASE + RING.avail,
    deviceAddr: GUEST_BASE + RING.used,
    features,
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

  it('popDirect: plain chains while nothing per buffer is on; none with inflight tracking, dirty logging or once detached (pop takes them)', () => {
    /** A one-descriptor readable chain: add() makes [readable, writable], the head loses NEXT. */
    const plain = (drv: TinyDriver, at: number): number => {
      const head = drv.add(enc.encode('frame'), 0, at);
      drv.writeDesc(drv.descOff + 16 * head, GUEST_BASE + at, 5, 0, 0);
      return head;
    };
    const b = new DirectBatch();
    {
      const { q, drv } = make();
      const h0 = plain(drv, RING.data);
      const h1 = plain(drv, RING.data + 0x400);
      assert.equal(q.popDirect(b, 8), 2);
      assert.deepEqual([b.heads[0], b.heads[1]], [h0, h1]);
      assert.equal(q.served, 2);
      q.pushDirect(b, 2);
      assert.equal(drv.usedIdx(), 0, 'published at publish()');
      q.publish();
      assert.equal(drv.usedIdx(), 2);
      assert.equal(q.state().nextUsed, 2);
      assert.equal(q.pinnedBuffers, 0);
    }
    const cases: [string, (q: VhostQueue) => void][] = [
      ['inflight tracking', (q) => q.attachSplitInflight(new SplitInflight(new DataView(new Uint8Array(inflightQueueRegionSize(8)).buffer), 0, 8), 0)],
      ['dirty logging', (q) => (q.log = new DirtyLog(new Uint8Array(64)))],
      ['detached', (q) => q.detach()],
    ];
    for (const [what, set] of cases) {
      const { q, drv, mem } = make();
      plain(drv, RING.data);
      set(q);
      assert.equal(q.popDirect(b, 8), 0, what);
      if (what !== 'detached') assert.equal(q.pop(new DescriptorChain(mem, 4)), true, `${what}: pop takes it`);
    }
  });

  it('inOrderBatching: with IN_ORDER, until inflight tracking is attached (the region records buffer by buffer; a batch names only its last)', () => {
    assert.equal(make().q.inOrderBatching, false, 'no IN_ORDER');
    const { q } = make(F.VERSION_1 | F.EVENT_IDX | F.IN_ORDER);
    assert.equal(q.inOrderBatching, true);
    q.attachSplitInflight(new SplitInflight(new DataView(new Uint8Array(inflightQueueRegionSize(8)).buffer), 0, 8), 0);
    assert.equal(q.inOrderBatching, false);
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

  for (const packed of [false, true]) {
    const kind = packed ? 'packed' : 'split';
    /** A ring on plain memory with the generic driver; `track` attaches inflight tracking to `region`. */
    const ring = (mem: GuestMemory, region: Uint8Array): { cfg: QueueConfig; wrap: (inner: DeviceQueue) => VhostQueue } => {
      const l = packed ? packedRingLayout(8, 0x1000) : splitRingLayout(8, 0x1000);
      const cfg: QueueConfig = { size: 8, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1 | (packed ? F.RING_PACKED : 0n), index: 0 };
      const wrap = (inner: DeviceQueue): VhostQueue => {
        const q = new VhostQueue(inner, { index: 0, memory: mem, packed, indirect: false, littleEndian: true, descGuest: cfg.descAddr, onError: () => undefined });
        const dv = new DataView(region.buffer);
        if (packed) q.attachPackedInflight(new PackedInflight(dv, 0, 8));
        else q.attachSplitInflight(new SplitInflight(dv, 0, 8), mem.readU16(cfg.deviceAddr + 2, true));
        return q;
      };
      return { cfg, wrap };
    };
    const offer = (drv: DriverQueue<number>, n: number): void => {
      for (let i = 0; i < n; i++) assert.ok(drv.add([{ addr: 0x8000 + i * 0x100, len: 8 }], [{ addr: 0x8080 + i * 0x100, len: 8 }], i));
      drv.kick();
    };

    it(`${kind}: undoPop with inflight tracking: the region forgets the buffer, a restart resubmits only the others; a resubmitted buffer can be undone too`, () => {
      const mem = GuestMemory.allocate(1 << 20);
      const region = new Uint8Array(inflightQueueRegionSize(8));
      const { cfg, wrap } = ring(mem, region);
      const drv = createDriverQueue<number>(mem, cfg);
      const q = wrap(createDeviceQueue(mem, cfg));
      offer(drv, 2);
      const c = q.createChain();
      assert.ok(q.pop(c));
      const a = c.id;
      assert.ok(q.pop(c));
      const b = c.id;
      q.undoPop(1);
      assert.equal(q.served, 1);
      assert.ok(q.pop(c));
      assert.equal(c.id, b, 'the same buffer again');
      q.undoPop(1);
      // The back-end restarts now: only `a` is in flight in the region; `b` is in the ring.
      q.detach();
      const q2 = wrap(createDeviceQueue(mem, cfg));
      assert.equal(q2.resubmitPending, 1);
      const c2 = q2.createChain();
      assert.ok(q2.pop(c2));
      assert.equal(c2.id, a, 'resubmitted');
      q2.undoPop(1);
      assert.equal(q2.resubmitPending, 1, 'back on the resubmission list');
      assert.ok(q2.pop(c2));
      assert.equal(c2.id, a);
      const aRing = c2.ringDescs;
      assert.ok(q2.pop(c2));
      assert.equal(c2.id, b, 'then the ring');
      assert.equal(q2.pop(c2), false);
      q2.push(c2, 8);
      q2.pushId(a, aRing, 8);
      assert.deepEqual([drv.takeUsed(), drv.takeUsed(), drv.takeUsed()], [1, 0, undefined]);
      assert.throws(() => q2.undoPop(3), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    });
  }
});
