import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceId, deviceIdName } from './device-id.js';
import { F, FeatureBit, featureBits, isDeviceTypeBit, isReservedForFutureBit } from './features.js';
import { legacySplitLayout, needEvent, SplitLayout } from './ring.js';
import { Status, statusToString } from './status.js';

describe('spec tables', () => {
  it('feature bit ranges follow 2.2', () => {
    for (const n of Object.values(FeatureBit)) {
      assert.equal(isDeviceTypeBit(n), n === FeatureBit.ADMIN_VQ, `bit ${n}`);
      assert.equal(isReservedForFutureBit(n), false);
    }
    assert.ok(isDeviceTypeBit(0) && isDeviceTypeBit(23) && isDeviceTypeBit(42) && isDeviceTypeBit(50));
    assert.ok(isReservedForFutureBit(44) && isReservedForFutureBit(49) && isReservedForFutureBit(128));
    assert.equal(F.VERSION_1, 1n << 32n);
    assert.deepEqual(featureBits(F.VERSION_1 | F.INDIRECT_DESC), [28, 32]);
  });

  it('device ids and status bits print by name', () => {
    assert.equal(DeviceId.BLOCK, 2);
    assert.equal(deviceIdName(4), 'ENTROPY');
    assert.equal(deviceIdName(37), 'UNKNOWN(37)');
    assert.equal(statusToString(Status.ACKNOWLEDGE | Status.DRIVER | 0x20), 'ACKNOWLEDGE|DRIVER|0x20');
  });

  it('legacy split layout aligns the used ring to 4096 (2.7.2 legacy)', () => {
    const l = legacySplitLayout(256);
    assert.equal(l.avail, 4096);
    assert.equal(l.used, 8192); // 4096 + 6 + 512 rounded up
    assert.equal(l.total, 8192 + 4096);
    assert.equal(SplitLayout.usedSize(256), 6 + 2048);
  });

  it('needEvent matches the vring_need_event formula with 16-bit wrap', () => {
    assert.equal(needEvent(5, 6, 5), true);
    assert.equal(needEvent(5, 5, 4), false);
    assert.equal(needEvent(0xffff, 0, 0xfffe), true);
    assert.equal(needEvent(10, 20, 15), false);
  });
});
