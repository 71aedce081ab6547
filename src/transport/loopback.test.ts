/**
 * End to end through each transport pair with real rings on both sides (split everywhere,
 * packed where the interface is not legacy): the driver
 * transport negotiates and programs a queue through registers / channel commands, the device
 * adapter hands the queue registers to a minimal core whose device echoes data back, and the
 * interrupt comes back through the loopback bus. Legacy kinds use the legacy ring layout, and
 * CCW revision 0 big-endian rings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory } from '../memory/guest-memory.js';
import { ChainCursor, DescriptorChain } from '../queue/chain.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import { packedRingLayout } from '../queue/packed-layout.js';
import { legacySplitRingLayout, splitRingLayout } from '../queue/split-layout.js';
import type { DeviceQueue } from '../queue/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import type { BadAccessReport, CoreFactory } from './bus.js';
import { TransportKind, createTransportPair, isLegacyKind } from './loopback.js';
import { TestCore, stubDevice } from './test-core.js';

/** A TestCore whose device reverses each readable buffer into the writable part. */
class EchoCore extends TestCore {
  private queues: (DeviceQueue | null)[] = [];
  private readonly chain = new DescriptorChain(this.memory, 8);
  private readonly cursor = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly tmp = new Uint8Array(4096);

  override notifyQueue(index: number, data?: number): void {
    super.notifyQueue(index, data);
    let q = this.queues[index] ?? null;
    const r = this.queueRegisters(index)!;
    if (!q) {
      q = createDeviceQueue(this.memory, {
        size: r.size,
        descAddr: r.descAddr,
        driverAddr: r.driverAddr,
        deviceAddr: r.deviceAddr,
        features: this.negotiatedFeatures,
        littleEndian: this.mode.littleEndian,
        index,
      });
      this.queues[index] = q;
    }
    while (q.pop(this.chain)) {
      const n = this.cursor.reset(this.chain).read(this.tmp, 0, this.chain.readableBytes);
      this.tmp.subarray(0, n).reverse();
      const w = this.writer.reset(this.chain).write(this.tmp, 0, Math.min(n, this.chain.writableBytes));
      q.push(this.chain, w);
    }
    if (q.needsNotification()) this.sink.usedBuffer(index);
  }

  override setStatus(value: number): void {
    super.setStatus(value);
    if (value === 0) this.queues = [];
  }
}

const kinds = Object.values(TransportKind);

describe('transport loopback with real rings', () => {
  for (const kind of kinds)
    for (const packed of [false, true]) {
    if (packed && isLegacyKind(kind)) continue;
    it(`${kind} ${packed ? 'packed' : 'split'}: negotiate, set up a queue, echo data, interrupt back`, () => {
      const mem = GuestMemory.allocate(1 << 20);
      const ring = packed ? F.RING_PACKED : 0n;
      const dev = stubDevice({ features: F.VERSION_1 | F.EVENT_IDX | ring, queues: [64, 16] });
      const cores: EchoCore[] = [];
      const factory: CoreFactory = (sink, mode) => {
        const c = new EchoCore(dev, mem, sink, mode);
        cores.push(c);
        return c;
      };
      const bad: BadAccessReport[] = [];
      const p = createTransportPair(kind, mem, factory, { ccwScratch: { addr: 0xf0000, size: 4096 }, onBadAccess: (b) => bad.push(b) });
      const d = p.driver;
      const legacy = isLegacyKind(kind);
      assert.equal(d.legacy, legacy);
      assert.equal(d.deviceId, 4);
      let used = 0;
      let configChanges = 0;
      d.setInterruptHandler({ used: () => used++, configChange: () => configChanges++ });

      d.setStatus(0);
      d.setStatus(Status.ACKNOWLEDGE);
      d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      const offered = d.getDeviceFeatures();
      assert.equal(offered, legacy ? F.EVENT_IDX : F.VERSION_1 | F.EVENT_IDX | ring);
      d.setDriverFeatures(offered);
      let st = Status.ACKNOWLEDGE | Status.DRIVER;
      if (!legacy) {
        d.setStatus(st | Status.FEATURES_OK);
        assert.ok(d.getStatus() & Status.FEATURES_OK);
        st |= Status.FEATURES_OK;
      }
      assert.equal(d.numQueues(), 2);
      const size = d.queueMaxSize(0);
      assert.equal(size, 64);
      const addrs = legacy ? legacySplitRingLayout(size, 0x10000) : packed ? packedRingLayout(size, 0x10000) : splitRingLayout(size, 0x10000);
      d.setupQueue(0, addrs);
      d.setStatus(st | Status.DRIVER_OK);
      const core = cores.at(-1)!;
      assert.equal(core.mode.legacy, legacy);
      assert.equal(core.mode.littleEndian, kind !== TransportKind.CCW_REV0);

      const dq = createDriverQueue<number>(mem, { ...addrs, features: offered, littleEndian: d.littleEndian, index: 0 });
      assert.equal(dq.packed, packed);
      for (let round = 0; round < 3; round++) {
        const msg = new Uint8Array([1, 2, 3, 4, 5 + round]);
        mem.write(0x40000, msg);
        mem.fill(0x41000, 16, 0);
        assert.ok(dq.add([{ addr: 0x40000, len: msg.length }], [{ addr: 0x41000, len: 16 }], round));
        if (dq.kick()) d.notify(0, dq.notificationData());
        assert.equal(dq.takeUsed(), round);
        assert.equal(dq.lastUsedLen, msg.length);
        assert.deepEqual([...mem.slice(0x41000, msg.length)], [...msg].reverse());
      }
      assert.ok(used >= 1, 'used-buffer interrupts arrived');
      p.device.configChange();
      assert.equal(configChanges, 1);
      assert.deepEqual(bad, []);
      d.setStatus(0);
      assert.equal(core.status, 0);
    });
  }
});
