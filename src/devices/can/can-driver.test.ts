import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import { CanF, CanQueue } from '../../spec/can.js';
import { F } from '../../spec/features.js';
import { createTestPair } from '../blk/test-pair.js';
import { type PostedBuffer, recordingContext } from '../sound/sound-test-support.js';
import { CanBus, type CanFrame, CanHostPort } from './can-bus.js';
import { CanDevice } from './can-device.js';
import { CanDriver } from './can-driver.js';

const T = { timeout: 20_000 };
const TRANSPORT = F.VERSION_1 | F.EVENT_IDX | F.RING_RESET;

function rig(accept: bigint): { drv: CanDriver; posted: PostedBuffer[]; host: CanHostPort } {
  const bus = new CanBus();
  const host = new CanHostPort(bus);
  const pair = createTestPair(new CanDevice(bus), { queueSize: 32, accept: accept | TRANSPORT });
  const posted: PostedBuffer[] = [];
  return { drv: new CanDriver(recordingContext(pair.ctx, posted), { rxBuffers: 3 }), posted, host };
}

const frame = (o: Partial<CanFrame> = {}): CanFrame => ({ id: 0x100, extended: false, fd: false, rtr: false, length: 2, data: Uint8Array.of(1, 2), ...o });

describe('CanDriver', T, () => {
  for (const [name, accept, size] of [
    ['CAN FD', CanF.CAN_CLASSIC | CanF.CAN_FD, 16 + 64],
    ['classic only', CanF.CAN_CLASSIC, 16 + 8],
  ] as const) {
    it(`driver/can/1: the Rxq is populated with empty device-writable buffers of struct virtio_can_rx plus the largest payload (${name}), re-posted`, async () => {
      const { drv, posted, host } = rig(accept);
      const rx = () => posted.filter((p) => p.queue === CanQueue.RXQ);
      assert.equal(rx().length, 3);
      for (const b of rx()) assert.deepEqual([b.out, b.inn], [[], [size]]);
      await drv.start();
      const f = drv.nextFrame();
      host.send(frame({ id: 0x55 }));
      assert.equal((await f).id, 0x55);
      assert.equal(rx().length, 4, 'the used buffer went back');
    });
  }

  it('frames are checked against the negotiated features and ranges before they are sent', async () => {
    const { drv, posted } = rig(CanF.CAN_CLASSIC);
    await drv.start();
    const bad: CanFrame[] = [
      frame({ fd: true, length: 12, data: new Uint8Array(12) }),
      frame({ rtr: true, length: 1, data: new Uint8Array(0) }),
      frame({ id: 0x800 }),
      frame({ id: 0x20000000, extended: true }),
      frame({ length: 9, data: new Uint8Array(9) }),
      frame({ length: 4, data: new Uint8Array(2) }),
    ];
    for (const f of bad) await assert.rejects(drv.send(f), VirtioError);
    assert.equal(posted.filter((p) => p.queue === CanQueue.TXQ).length, 0, 'nothing reached the Txq');
    await drv.send(frame());
    const tx = posted.filter((p) => p.queue === CanQueue.TXQ);
    assert.deepEqual([tx.length, tx[0]!.inn], [1, [1]]);
  });

  it('refuses a device with neither CAN_CLASSIC nor CAN_FD negotiated', () => {
    // A modern device refuses FEATURES_OK for it; a legacy interface has no FEATURES_OK, so the driver checks.
    assert.throws(() => createTestPair(new CanDevice(new CanBus()), { accept: TRANSPORT, queueSize: 8 }), /refuses the features/);
    const pair = createTestPair(new CanDevice(new CanBus()), { accept: 0n, queueSize: 8 });
    assert.throws(() => new CanDriver(pair.ctx), VirtioError);
  });
});
