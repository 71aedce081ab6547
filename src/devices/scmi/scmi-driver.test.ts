import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../../errors.js';
import { ScmiF, ScmiMessageType, ScmiProtocol, ScmiSensorMessage, ScmiSensorNotification, ScmiSensorType, ScmiStatus, ScmiTripPoint } from '../../spec/scmi.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import type { ScmiCommand } from './scmi-command.js';
import { ScmiDevice } from './scmi-device.js';
import { ScmiDriver, type ScmiP2aMessage, ScmiStatusError } from './scmi-driver.js';

const T = { timeout: 10_000 };

/** Records every command the sensor protocol serves: message id, first parameter, room given. */
function recordSensorCommands(device: ScmiDevice): { msg: number; p0: number; room: number }[] {
  const log: { msg: number; p0: number; room: number }[] = [];
  const handle = device.sensors.handle.bind(device.sensors);
  device.sensors.handle = (cmd: ScmiCommand) => {
    log.push({ msg: cmd.messageId, p0: cmd.has(4) ? cmd.u32(0) : -1, room: cmd.retRoom });
    return handle(cmd);
  };
  return log;
}

describe('ScmiDriver', T, () => {
  it('driver/scmi/1: DESCRIPTION_GET pages are asked one after the other, each from where the last answer ended', async () => {
    const device = new ScmiDevice({ sensors: Array.from({ length: 20 }, (_, i) => ({ name: `t${i}`, value: i })) });
    const log = recordSensorCommands(device);
    const drv = new ScmiDriver(createTestPair(device).ctx);
    const all = await drv.sensorDescriptions();
    assert.deepEqual(all.map((s) => s.id), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(all[13]!.name, 't13');
    // 8 descriptors fit a page: pages at 0, 8, 16, each sent after the previous answer told where to go on.
    assert.deepEqual(log.filter((l) => l.msg === ScmiSensorMessage.DESCRIPTION_GET).map((l) => l.p0), [0, 8, 16]);
  });

  it('driver/scmi/2: every command comes with room for its largest return values (no response is ever cut)', async () => {
    const device = new ScmiDevice({ sensors: Array.from({ length: 9 }, (_, i) => ({ name: `s${i}` })) });
    const log = recordSensorCommands(device);
    const drv = new ScmiDriver(createTestPair(device).ctx);
    await drv.vendor();
    await drv.subVendor();
    await drv.implementationVersion();
    await drv.listProtocols();
    await drv.protocolVersion(ScmiProtocol.SENSOR);
    await drv.sensorDescriptions();
    await drv.readSensor(3);
    await drv.readSensorAsync(3);
    await drv.sensorTripPointConfig(1, 0, ScmiTripPoint.BOTH, 10);
    await drv.sensorTripPointNotify(1, true);
    assert.equal(await drv.messageAttributes(ScmiProtocol.SENSOR, 0x40), null);
    assert.equal(device.shortResponses, 0);
    assert.ok(log.length >= 6 && log.every((l) => l.room >= 4));
  });

  it('driver/scmi/3: without P2A_CHANNELS the driver never asks for a notification or a delayed response', async () => {
    const device = new ScmiDevice({ sensors: [{ name: 'x', value: 7 }] });
    const log = recordSensorCommands(device);
    const pair = createTestPair(device, { accept: ~ScmiF.P2A_CHANNELS });
    const drv = new ScmiDriver(pair.ctx);
    assert.equal(drv.p2a, false);
    const refused = (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT;
    await assert.rejects(drv.readSensorAsync(0), refused);
    await assert.rejects(drv.sensorTripPointNotify(0, true), refused);
    await assert.rejects(drv.sensorTripPointConfig(0, 0, ScmiTripPoint.BOTH, 1), refused);
    assert.deepEqual(log, [], 'nothing was sent');
    assert.equal(await drv.readSensor(0), 7);
    const [info] = await drv.sensorDescriptions();
    assert.equal(info!.asyncRead, false);
    assert.equal(info!.tripPoints, 0);
  });

  it('driver/scmi/4 driver/scmi/5 driver/scmi/6: with P2A_CHANNELS the eventq holds device-writable buffers only, each larger than the largest P2A message', async () => {
    const device = new ScmiDevice();
    const drv = new ScmiDriver(createTestPair(device).ctx, { eventBuffers: 6, eventBufferSize: 20 });
    assert.equal(drv.p2a, true);
    await new Promise((r) => setImmediate(r));
    // The eventq refuses (uses with length 0) a buffer with readable parts or shorter than a header:
    // all six are waiting, so all six were writable-only and long enough.
    assert.equal(device.events.buffersWaiting, 6);
    assert.throws(() => new ScmiDriver(createTestPair(new ScmiDevice()).ctx, { eventBufferSize: 19 }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('statuses other than SUCCESS are ScmiStatusError; a delayed response for the right token only', async () => {
    const device = new ScmiDevice({ sensors: [{ name: 'a', value: 1 }, { name: 'b', value: 2 }] });
    const drv = new ScmiDriver(createTestPair(device).ctx);
    await assert.rejects(drv.readSensor(5), (e: unknown) => e instanceof ScmiStatusError && e.status === ScmiStatus.NOT_FOUND);
    await assert.rejects(drv.protocolVersion(0x33), (e: unknown) => e instanceof ScmiStatusError && e.status === ScmiStatus.NOT_SUPPORTED);
    const [a, b] = await Promise.all([drv.readSensorAsync(0), drv.readSensorAsync(1)]);
    assert.deepEqual([a, b], [1, 2]);
  });

  for (const packed of [false, true]) {
    it(`full stack (createLoopback, ${packed ? 'packed' : 'split'}): discovery, readings, a trip point notification`, async () => {
      const device = new ScmiDevice({ vendor: 'loop', sensors: [{ name: 'board', type: ScmiSensorType.DEGREES_C, value: 30 }] });
      const lb = await createLoopback(device, { packed, queueSize: 32 });
      try {
        const drv = new ScmiDriver(lb.context);
        assert.equal(await drv.vendor(), 'loop');
        assert.equal(await drv.implementationVersion(), 1);
        assert.deepEqual(await drv.listProtocols(), [ScmiProtocol.SENSOR]);
        assert.equal(await drv.readSensor(0), 30);
        device.sensors.setValue(0, -(2 ** 40));
        assert.equal(await drv.readSensorAsync(0), -(2 ** 40));
        await drv.sensorTripPointConfig(0, 0, ScmiTripPoint.NEGATIVE, -100);
        await drv.sensorTripPointNotify(0, true);
        const got = new Promise<ScmiP2aMessage>((r) => drv.onNotification(r));
        device.sensors.setValue(0, 0);
        device.sensors.setValue(0, -200);
        const n = await got;
        assert.equal(n.type, ScmiMessageType.NOTIFICATION);
        assert.equal(n.messageId, ScmiSensorNotification.TRIP_POINT_EVENT);
        assert.equal(new DataView(n.payload.buffer).getUint32(8, true), 0, 'trip point 0, descending');
        drv.detach();
      } finally {
        await lb.close();
      }
    });
  }
});
