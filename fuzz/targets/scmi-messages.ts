/**
 * virtio-scmi (5.17): SCMI commands on the cmdq (a message header: protocol Base 0x10, Sensor
 * 0x15 or Power 0x11 (not implemented) mostly, any byte sometimes; message id among the
 * protocol's mostly, any byte sometimes; type COMMAND mostly, any sometimes; any token; then four
 * 32-bit parameters mostly, fewer sometimes: a sensor id / index / message id among the first
 * ones or any, flags or a trip point control (async read, notify, trip point id and direction)
 * or any, a trip value, its high half), then raw bytes, with room for the response; buffers on
 * the eventq (with VIRTIO_SCMI_F_P2A_CHANNELS: delayed responses and notifications), which the
 * device holds until it has a message: the eventq is a held queue.
 *
 * The host side is the sensors' values: before an eventq buffer the input may set a sensor's value
 * (the host's reading changes), which raises SENSOR_TRIP_POINT_EVENT for trip points crossed.
 * Sensors are synchronous, asynchronous (a Promise, so commands complete out of order,
 * device/scmi/3) and failing (HARDWARE_ERROR). A new ScmiDevice per input (`freshDevice`): the
 * Sensor protocol keeps trip point settings, notification subscriptions and values across a
 * device reset (they are the platform's), so a reused device would answer an input by what the
 * inputs before it configured.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { ScmiDevice } from '../../src/devices/scmi/scmi-device.js';
import { SCMI_SENSOR_NOTIFY_ALL, SCMI_SENSOR_READ_ASYNC, ScmiBaseMessage, ScmiMessageType, ScmiProtocol, ScmiQueue, ScmiSensorMessage, ScmiSensorType, ScmiTripPoint, scmiHeader } from '../../src/spec/scmi.js';

const PROTOCOLS = [ScmiProtocol.BASE, ScmiProtocol.SENSOR, ScmiProtocol.POWER];
const SENSORS = 4;
/** Second parameter: read flags, notify control, trip point controls (id << 4 | direction). */
const P1 = [0, SCMI_SENSOR_READ_ASYNC, SCMI_SENSOR_NOTIFY_ALL, ScmiTripPoint.POSITIVE, ScmiTripPoint.NEGATIVE | (1 << 4), ScmiTripPoint.BOTH | (1 << 4), 2 << 4];
/** Trip values and sensor values. */
const VALUES = [0, 10, 50, 100, -5];

/** One of `list` mostly, any u32 for the index past its end. */
function choice(r: ByteReader, list: readonly number[]): number {
  const i = r.below(list.length + 1);
  return i === list.length ? r.u32() : list[i]!;
}

/** The device the current input runs on (set as its rig starts): the host's sensor values go to it. */
let current: ScmiDevice | null = null;

/**
 * cmdq selector bits: 0 any protocol, 1 any message id, 2 any message type, 3 fewer than four
 * parameters. eventq: 0 set a sensor value first.
 */
function header(queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  if (queue === ScmiQueue.EVENTQ) {
    if ((sel & 1) !== 0 && current) current.sensors.setValue(r.below(SENSORS), r.pick(VALUES));
    return new Uint8Array(0);
  }
  const protocol = (sel & 1) !== 0 ? r.u8() : r.pick(PROTOCOLS);
  const messageId = (sel & 2) !== 0 ? r.u8() : r.below(protocol === ScmiProtocol.BASE ? 10 : 8);
  const type = (sel & 4) !== 0 ? r.below(4) : ScmiMessageType.COMMAND;
  const w = new ByteWriter().u32(scmiHeader(protocol, messageId, type, r.u16()));
  const params = (sel & 8) !== 0 ? r.below(4) : 4;
  const p = [r.below(4) === 0 ? r.u32() : r.below(SENSORS + 2), choice(r, P1), choice(r, VALUES.map((v) => v >>> 0)), choice(r, [0, 0xffff_ffff])];
  for (let i = 0; i < params; i++) w.u32(p[i]!);
  return w.finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = new ScmiDevice({
      queueSize: 16,
      sensors: [
        { name: 'cpu', value: 40, tripPoints: 2 },
        { name: 'gpu', type: ScmiSensorType.WATTS, scale: -3, asyncRead: false, value: 7 },
        { name: 'fan', type: ScmiSensorType.RPM, tripPoints: 0, read: () => Promise.resolve(1200) },
        { name: 'broken', read: () => Number.NaN },
      ],
    });
    return { device, resetHost: () => void (current = device) };
  },
  queues: 2,
  heldQueues: [ScmiQueue.EVENTQ],
  header,
  queueSize: 16,
  freshDevice: { dispose: () => {} },
};

/** cmdq shaper input: selector 0, protocol index, message id, token, p0 (small), p1..p3 indices. */
function cmd(protocol: number, messageId: number, p0 = 0, p1 = 0, p2 = 0): number[] {
  return [0, PROTOCOLS.indexOf(protocol as never), messageId, 7, 0, 1, p0, P1.indexOf(p1), VALUES.indexOf(p2), 0];
}

/**
 * Seeds: Base version, vendor, protocol list, Sensor attributes; with P2A: sensor descriptions,
 * a synchronous and an asynchronous reading (its delayed response into an eventq buffer); a trip
 * point armed, notifications on, and the host crossing it (a notification).
 */
function seeds(): Uint8Array[] {
  const ev = (setSensor = -1, value = 0): number[] => (setSensor < 0 ? [0] : [1, setSensor, VALUES.indexOf(value)]);
  return [
    deviceChainsSeed(false, [[{ queue: 0, header: cmd(ScmiProtocol.BASE, ScmiBaseMessage.PROTOCOL_VERSION), writable: 16 },
        { queue: 0, header: cmd(ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_VENDOR), writable: 64 },
        { queue: 0, header: cmd(ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS), writable: 64 },
        { queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.PROTOCOL_ATTRIBUTES), writable: 64 }]], spec),
    deviceChainsSeed(true, [[{ queue: 1, header: ev(), writable: 64, emptyMessage: true }, { queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.DESCRIPTION_GET), writable: 512 }], [{ queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, 2), writable: 16 }, { queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, 0, SCMI_SENSOR_READ_ASYNC), writable: 16 }]], spec),
    deviceChainsSeed(true, [[{ queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.TRIP_POINT_CONFIG, 0, ScmiTripPoint.POSITIVE, 50), writable: 16 },
        { queue: 0, header: cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.TRIP_POINT_NOTIFY, 0, SCMI_SENSOR_NOTIFY_ALL), writable: 16 }], [{ queue: 1, header: ev(0, 100), writable: 64, emptyMessage: true }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'scmi-messages', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
