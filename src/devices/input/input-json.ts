/**
 * The JSON forms of `virtio-ts input`:
 *  - event lines (JSON-lines on stdin or an events socket): `{"type":"EV_KEY","code":"KEY_A","value":1}`
 *    or numbers (`{"type":1,"code":30,"value":1}`); `{"syn":true}`, or an EV_SYN event, ends an
 *    update (the device delivers an update whole, with its own SYN_REPORT, 5.8.6.1);
 *  - a device profile file (the generic event device): name, serial, ids, properties, event
 *    codes per type, absolute axes with their ranges (5.8.4 ID_NAME .. ABS_INFO).
 * Input is the host's, but still bounded and checked: a malformed line is refused, not thrown.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { eventCode, eventType, inputProperty } from './evdev-names.js';
import type { InputAbsAxis, InputDeviceProfile } from './input-config.js';
import type { InputEventValue } from './input-device.js';

/** Lines longer than this are refused before parsing (an event line is ~60 bytes). */
export const MAX_JSON_LINE = 1024;

/** One JSON event line: an event, 'syn' (end of update), or null when it is not a valid event line. */
export function parseJsonEventLine(line: string): InputEventValue | 'syn' | null {
  if (line.length > MAX_JSON_LINE) return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (o['syn'] === true) return 'syn';
  try {
    const type = eventType(o['type'], 'type');
    if (type === 0) return 'syn'; // EV_SYN: the device adds its own SYN_REPORT
    const code = eventCode(type, o['code'], 'code');
    const value = o['value'];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) return null;
    return { type, code, value };
  } catch {
    return null;
  }
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} must be an object`);
  return v as Record<string, unknown>;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} must be an integer ${min}..${max}`);
  return v;
}

const I32 = [-0x8000_0000, 0x7fff_ffff] as const;

/**
 * A generic event device's profile from its JSON text:
 * `{"name":"pad","serial":"S1","ids":{"bustype":6,"vendor":1,"product":2,"version":1},
 *   "properties":["INPUT_PROP_DIRECT"],"events":{"EV_KEY":["BTN_TOUCH"],"EV_ABS":["ABS_X","ABS_Y"]},
 *   "abs":{"ABS_X":{"min":0,"max":4095},"ABS_Y":{"min":0,"max":4095,"res":10}}}`.
 * Names or numbers everywhere; the device checks the rest (sizes, code ranges).
 */
export function parseInputProfile(text: string): InputDeviceProfile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `input profile is not JSON: ${(e as Error).message}`);
  }
  const o = object(v, 'input profile');
  if (typeof o['name'] !== 'string') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'input profile: "name" must be a string');
  const events: Record<number, number[]> = {};
  for (const [t, codes] of Object.entries(object(o['events'] ?? {}, 'input profile "events"'))) {
    const type = eventType(/^\d+$/.test(t) ? Number(t) : t, `events type ${t}`);
    if (!Array.isArray(codes)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `input profile: events.${t} must be an array`);
    events[type] = codes.map((c: unknown) => eventCode(type, c, `events.${t}`));
  }
  const abs: Record<number, InputAbsAxis> = {};
  for (const [a, info] of Object.entries(object(o['abs'] ?? {}, 'input profile "abs"'))) {
    const axis = eventCode(0x03, /^\d+$/.test(a) ? Number(a) : a, `abs axis ${a}`);
    const i = object(info, `abs.${a}`);
    const axisInfo: { -readonly [K in keyof InputAbsAxis]: InputAbsAxis[K] } = { min: int(i['min'], `abs.${a}.min`, ...I32), max: int(i['max'], `abs.${a}.max`, ...I32) };
    for (const k of ['fuzz', 'flat', 'res'] as const) if (i[k] !== undefined) axisInfo[k] = int(i[k], `abs.${a}.${k}`, ...I32);
    abs[axis] = axisInfo;
  }
  const profile: { -readonly [K in keyof InputDeviceProfile]: InputDeviceProfile[K] } = { name: o['name'], events, abs };
  if (o['serial'] !== undefined) {
    if (typeof o['serial'] !== 'string') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'input profile: "serial" must be a string');
    profile.serial = o['serial'];
  }
  if (o['ids'] !== undefined) {
    const ids = object(o['ids'], 'input profile "ids"');
    profile.ids = {
      bustype: int(ids['bustype'], 'ids.bustype', 0, 0xffff),
      vendor: int(ids['vendor'], 'ids.vendor', 0, 0xffff),
      product: int(ids['product'], 'ids.product', 0, 0xffff),
      version: int(ids['version'], 'ids.version', 0, 0xffff),
    };
  }
  if (o['properties'] !== undefined) {
    if (!Array.isArray(o['properties'])) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'input profile: "properties" must be an array');
    profile.properties = o['properties'].map((p: unknown) => inputProperty(p, 'properties'));
  }
  return profile;
}
