/**
 * The SCMI Sensor protocol (0x15), version 1.0, over host sensors: descriptions, synchronous
 * readings, asynchronous readings answered by a delayed response on the eventq, trip points and
 * their SENSOR_TRIP_POINT_EVENT notifications.
 *
 * Without VIRTIO_SCMI_F_P2A_CHANNELS (5.17.6.1) the protocol behaves as one with no
 * notifications or delayed responses: TRIP_POINT_NOTIFY and TRIP_POINT_CONFIG are not
 * implemented, descriptors show no asynchronous reading and no trip points, the attributes no
 * pending asynchronous commands (device/scmi/8), and an asynchronous reading is refused with
 * NOT_SUPPORTED (device/scmi/7).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  SCMI_SENSOR_NOTIFY_ALL,
  SCMI_SENSOR_READ_ASYNC,
  SCMI_SENSOR_VERSION,
  ScmiProtocol,
  ScmiSensorDescriptor,
  ScmiSensorMessage,
  ScmiSensorNotification,
  ScmiSensorType,
  ScmiStatus,
  ScmiTripPoint,
} from '../../spec/scmi.js';
import { type ScmiCommand, type ScmiProtocolHandler, joinS64, splitS64 } from './scmi-command.js';
import type { ScmiEventQueue } from './scmi-events.js';

/** One sensor the device's Sensor protocol (SCMI 4.7) presents. */
export interface ScmiSensorSpec {
  /** At most 15 ASCII characters. */
  readonly name: string;
  /** SCMI unit type (ScmiSensorType). Default DEGREES_C. */
  readonly type?: number;
  /** Power-of-ten exponent of the unit, -16..15. Default 0. */
  readonly scale?: number;
  /** Trip points (0..255). Default 2. */
  readonly tripPoints?: number;
  /** Whether asynchronous readings are offered. Default true. */
  readonly asyncRead?: boolean;
  /** The value now (safe integer). Default 0. */
  readonly value?: number;
  /**
   * Reads the sensor (default: the value last set). A Promise makes the command wait for it;
   * other commands are answered meanwhile (device/scmi/3). A throw answers HARDWARE_ERROR.
   */
  readonly read?: () => number | Promise<number>;
}

/** Asynchronous readings in flight at most (SENSOR PROTOCOL_ATTRIBUTES [23:16]). */
export const SCMI_MAX_PENDING_ASYNC = 16;

interface TripPoint {
  direction: number;
  value: number;
}

class Sensor {
  readonly name: Uint8Array;
  readonly type: number;
  readonly scale: number;
  readonly asyncRead: boolean;
  readonly trips: TripPoint[];
  notify = false;
  value: number;
  readonly read: (() => number | Promise<number>) | undefined;

  constructor(spec: ScmiSensorSpec) {
    if (!/^[\x20-\x7e]{0,15}$/.test(spec.name)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `SCMI sensor name "${spec.name}" is not ASCII of at most 15 characters`);
    this.name = new Uint8Array(ScmiSensorDescriptor.NAME_SIZE);
    this.name.set(new TextEncoder().encode(spec.name));
    this.type = spec.type ?? ScmiSensorType.DEGREES_C;
    this.scale = spec.scale ?? 0;
    if (!Number.isInteger(this.scale) || this.scale < -16 || this.scale > 15) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sensor scale ${this.scale}`);
    if (!Number.isInteger(this.type) || this.type < 0 || this.type > 0xff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sensor type ${this.type}`);
    const n = spec.tripPoints ?? 2;
    if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sensor trip points ${n}`);
    this.trips = Array.from({ length: n }, () => ({ direction: ScmiTripPoint.DISABLED, value: 0 }));
    this.asyncRead = spec.asyncRead ?? true;
    this.value = spec.value ?? 0;
    if (!Number.isSafeInteger(this.value)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'sensor value must be a safe integer');
    this.read = spec.read;
  }
}

/**
 * The SCMI Sensor management protocol (0x15): descriptions, readings (synchronous or by delayed
 * response), trip points and their notifications.
 */
export class ScmiSensorProtocol implements ScmiProtocolHandler {
  /** ScmiProtocol.SENSOR (0x15). */
  readonly protocolId = ScmiProtocol.SENSOR;
  private readonly sensors: Sensor[];
  private asyncInFlight = 0;
  private readonly payload = new Uint8Array(16);
  private readonly payloadView = new DataView(this.payload.buffer);

  constructor(
    specs: readonly ScmiSensorSpec[],
    private readonly events: ScmiEventQueue,
  ) {
    if (specs.length > 0xffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'too many sensors');
    this.sensors = specs.map((s) => new Sensor(s));
  }

  /**
   * Device reset (2.4): forget what the agent configured (trip points and their notifications),
   * as SCMI's BASE_RESET_AGENT_CONFIGURATION would, so a driver after the reset gets no
   * notification it did not ask for. The sensors' values are the platform's and stay.
   */
  resetAgentConfiguration(): void {
    for (const s of this.sensors) {
      s.notify = false;
      for (const t of s.trips) {
        t.direction = ScmiTripPoint.DISABLED;
        t.value = 0;
      }
    }
  }

  /** Number of sensors (ids are 0..count-1). */
  get count(): number {
    return this.sensors.length;
  }

  /** Asynchronous readings accepted and not yet answered by a delayed response on the eventq. */
  get pendingAsync(): number {
    return this.asyncInFlight + this.events.delayedWaiting;
  }

  /**
   * A new value of sensor `id` (safe integer). Trip points crossed on the way, in a direction
   * they watch, raise SENSOR_TRIP_POINT_EVENT when the agent asked for them.
   */
  setValue(id: number, value: number): void {
    const s = this.sensors[id];
    if (s === undefined || !Number.isSafeInteger(value)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no sensor ${id} or bad value`);
    const old = s.value;
    s.value = value;
    if (!s.notify) return;
    for (let tp = 0; tp < s.trips.length; tp++) {
      const t = s.trips[tp]!;
      const up = old < t.value && value >= t.value;
      const down = old > t.value && value <= t.value;
      if ((up && (t.direction & ScmiTripPoint.POSITIVE) !== 0) || (down && (t.direction & ScmiTripPoint.NEGATIVE) !== 0)) {
        const v = this.payloadView;
        v.setUint32(0, 0, true); // agent_id: the agent that caused it; 0 = the platform
        v.setUint32(4, id, true);
        v.setUint32(8, tp | (up ? ScmiTripPoint.DESC_ASCENDING : 0), true);
        this.events.notify(ScmiProtocol.SENSOR, ScmiSensorNotification.TRIP_POINT_EVENT, this.payload.slice(0, 12));
      }
    }
  }

  implements(messageId: number, p2a: boolean): boolean {
    if (messageId === ScmiSensorMessage.TRIP_POINT_NOTIFY || messageId === ScmiSensorMessage.TRIP_POINT_CONFIG) return p2a;
    return messageId <= ScmiSensorMessage.READING_GET;
  }

  handle(cmd: ScmiCommand): number | Promise<number> {
    if (!this.implements(cmd.messageId, cmd.p2a)) return cmd.status(ScmiStatus.NOT_SUPPORTED); // device/scmi/7
    switch (cmd.messageId) {
      case ScmiSensorMessage.PROTOCOL_VERSION:
        return cmd.success(SCMI_SENSOR_VERSION);
      case ScmiSensorMessage.PROTOCOL_ATTRIBUTES:
        // [15:0] sensors, [23:16] asynchronous commands pending at most; no shared memory region.
        return cmd.success(this.sensors.length | ((cmd.p2a ? SCMI_MAX_PENDING_ASYNC : 0) << 16), 0, 0, 0);
      case ScmiSensorMessage.PROTOCOL_MESSAGE_ATTRIBUTES:
        if (!cmd.has(4)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
        return this.implements(cmd.u32(0), cmd.p2a) ? cmd.success(0) : cmd.status(ScmiStatus.NOT_FOUND);
      case ScmiSensorMessage.DESCRIPTION_GET:
        return this.describe(cmd);
      case ScmiSensorMessage.TRIP_POINT_NOTIFY:
        return this.tripPointNotify(cmd);
      case ScmiSensorMessage.TRIP_POINT_CONFIG:
        return this.tripPointConfig(cmd);
      default:
        return this.reading(cmd);
    }
  }

  private describe(cmd: ScmiCommand): number {
    if (!cmd.has(4)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
    const index = cmd.u32(0);
    if (index >= this.sensors.length) return cmd.status(ScmiStatus.INVALID_PARAMETERS);
    const fit = Math.floor((cmd.retRoom - 8) / ScmiSensorDescriptor.SIZE);
    if (fit < 1) return cmd.status(ScmiStatus.COMMS_ERROR);
    const n = Math.min(fit, this.sensors.length - index);
    const remaining = this.sensors.length - index - n;
    cmd.success(n | (remaining << 16));
    const v = cmd.retView;
    for (let i = 0; i < n; i++) {
      const s = this.sensors[index + i]!;
      const at = 8 + i * ScmiSensorDescriptor.SIZE;
      v.setUint32(at + ScmiSensorDescriptor.ID, index + i, true);
      const low = cmd.p2a ? (s.asyncRead ? ScmiSensorDescriptor.ASYNC_READ : 0) | s.trips.length : 0;
      v.setUint32(at + ScmiSensorDescriptor.ATTRIBUTES_LOW, low >>> 0, true);
      v.setUint32(at + ScmiSensorDescriptor.ATTRIBUTES_HIGH, (s.type | ((s.scale & 0x1f) << 11)) >>> 0, true);
      cmd.ret.set(s.name, at + ScmiSensorDescriptor.NAME);
    }
    return 8 + n * ScmiSensorDescriptor.SIZE;
  }

  private tripPointNotify(cmd: ScmiCommand): number {
    if (!cmd.has(8)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
    const s = this.sensors[cmd.u32(0)];
    if (s === undefined) return cmd.status(ScmiStatus.NOT_FOUND);
    s.notify = (cmd.u32(1) & SCMI_SENSOR_NOTIFY_ALL) !== 0;
    return cmd.success();
  }

  private tripPointConfig(cmd: ScmiCommand): number {
    if (!cmd.has(16)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
    const s = this.sensors[cmd.u32(0)];
    if (s === undefined) return cmd.status(ScmiStatus.NOT_FOUND);
    const ctrl = cmd.u32(1);
    const t = s.trips[(ctrl >>> ScmiTripPoint.ID_SHIFT) & ScmiTripPoint.ID_MASK];
    if (t === undefined) return cmd.status(ScmiStatus.INVALID_PARAMETERS);
    const value = joinS64(cmd.u32(2), cmd.u32(3));
    if (!Number.isSafeInteger(value)) return cmd.status(ScmiStatus.OUT_OF_RANGE);
    t.direction = ctrl & ScmiTripPoint.DIRECTION_MASK;
    t.value = value;
    return cmd.success();
  }

  private reading(cmd: ScmiCommand): number | Promise<number> {
    if (!cmd.has(8)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
    const id = cmd.u32(0);
    const s = this.sensors[id];
    if (s === undefined) return cmd.status(ScmiStatus.NOT_FOUND);
    if ((cmd.u32(1) & SCMI_SENSOR_READ_ASYNC) === 0) return this.readSync(cmd, s);
    // device/scmi/7: no delayed responses without the eventq.
    if (!cmd.p2a || !s.asyncRead) return cmd.status(ScmiStatus.NOT_SUPPORTED);
    if (this.pendingAsync >= SCMI_MAX_PENDING_ASYNC) return cmd.status(ScmiStatus.BUSY);
    // device/scmi/6: SUCCESS now, whether or not the eventq has a buffer for the answer.
    this.asyncInFlight++;
    const token = cmd.token;
    void this.readValue(s).then((r) => {
      this.asyncInFlight--;
      const p = new Uint8Array(16);
      const v = new DataView(p.buffer);
      v.setInt32(0, r.status, true);
      if (r.status !== ScmiStatus.SUCCESS) {
        // device/scmi/14: a failed delayed response carries only the status.
        this.events.delayedResponse(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, token, p.subarray(0, 4));
        return;
      }
      const [low, high] = splitS64(r.value);
      v.setUint32(4, id, true);
      v.setUint32(8, low, true);
      v.setUint32(12, high, true);
      this.events.delayedResponse(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, token, p);
    });
    return cmd.success();
  }

  private readSync(cmd: ScmiCommand, s: Sensor): number | Promise<number> {
    const reply = (r: { status: number; value: number }): number => {
      if (r.status !== ScmiStatus.SUCCESS) return cmd.status(r.status);
      const [low, high] = splitS64(r.value);
      return cmd.success(low, high);
    };
    if (s.read === undefined) return reply({ status: ScmiStatus.SUCCESS, value: s.value });
    return this.readValue(s).then(reply);
  }

  private async readValue(s: Sensor): Promise<{ status: number; value: number }> {
    try {
      const v = s.read ? await s.read() : s.value;
      return Number.isSafeInteger(v) ? { status: ScmiStatus.SUCCESS, value: v } : { status: ScmiStatus.HARDWARE_ERROR, value: 0 };
    } catch {
      return { status: ScmiStatus.HARDWARE_ERROR, value: 0 };
    }
  }
}
