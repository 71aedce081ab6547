/**
 * evdev names (Linux input-event-codes.h numbering, which virtio-input uses, 5.8.6) for the
 * JSON event and profile formats of `virtio-ts input`: event types, input properties, and the
 * codes people write by hand. Any other code is given as a number.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

export const EV_TYPE_NAMES: Readonly<Record<string, number>> = {
  EV_SYN: 0x00,
  EV_KEY: 0x01,
  EV_REL: 0x02,
  EV_ABS: 0x03,
  EV_MSC: 0x04,
  EV_SW: 0x05,
  EV_LED: 0x11,
  EV_SND: 0x12,
  EV_REP: 0x14,
  EV_FF: 0x15,
};

export const INPUT_PROP_NAMES: Readonly<Record<string, number>> = {
  INPUT_PROP_POINTER: 0,
  INPUT_PROP_DIRECT: 1,
  INPUT_PROP_BUTTONPAD: 2,
  INPUT_PROP_SEMI_MT: 3,
};

function keys(): Record<string, number> {
  const k: Record<string, number> = {
    KEY_ESC: 1,
    KEY_MINUS: 12,
    KEY_EQUAL: 13,
    KEY_BACKSPACE: 14,
    KEY_TAB: 15,
    KEY_LEFTBRACE: 26,
    KEY_RIGHTBRACE: 27,
    KEY_ENTER: 28,
    KEY_LEFTCTRL: 29,
    KEY_SEMICOLON: 39,
    KEY_APOSTROPHE: 40,
    KEY_GRAVE: 41,
    KEY_LEFTSHIFT: 42,
    KEY_BACKSLASH: 43,
    KEY_COMMA: 51,
    KEY_DOT: 52,
    KEY_SLASH: 53,
    KEY_RIGHTSHIFT: 54,
    KEY_KPASTERISK: 55,
    KEY_LEFTALT: 56,
    KEY_SPACE: 57,
    KEY_CAPSLOCK: 58,
    KEY_NUMLOCK: 69,
    KEY_SCROLLLOCK: 70,
    KEY_F11: 87,
    KEY_F12: 88,
    KEY_RIGHTCTRL: 97,
    KEY_RIGHTALT: 100,
    KEY_HOME: 102,
    KEY_UP: 103,
    KEY_PAGEUP: 104,
    KEY_LEFT: 105,
    KEY_RIGHT: 106,
    KEY_END: 107,
    KEY_DOWN: 108,
    KEY_PAGEDOWN: 109,
    KEY_INSERT: 110,
    KEY_DELETE: 111,
    KEY_LEFTMETA: 125,
    KEY_RIGHTMETA: 126,
    BTN_LEFT: 0x110,
    BTN_RIGHT: 0x111,
    BTN_MIDDLE: 0x112,
    BTN_SIDE: 0x113,
    BTN_EXTRA: 0x114,
    BTN_TOOL_PEN: 0x140,
    BTN_TOOL_FINGER: 0x145,
    BTN_TOUCH: 0x14a,
  };
  // KEY_1 .. KEY_9 are 2..10, KEY_0 is 11; the letter rows; F1..F10 are 59..68.
  for (let i = 1; i <= 9; i++) k[`KEY_${i}`] = i + 1;
  k['KEY_0'] = 11;
  const rows: [string, number][] = [
    ['QWERTYUIOP', 16],
    ['ASDFGHJKL', 30],
    ['ZXCVBNM', 44],
  ];
  for (const [letters, first] of rows) for (let i = 0; i < letters.length; i++) k[`KEY_${letters[i]!}`] = first + i;
  for (let i = 1; i <= 10; i++) k[`KEY_F${i}`] = 58 + i;
  return k;
}

/** Codes by name, per event type. */
const CODE_NAMES: Readonly<Record<number, Readonly<Record<string, number>>>> = {
  0x00: { SYN_REPORT: 0, SYN_CONFIG: 1, SYN_MT_REPORT: 2, SYN_DROPPED: 3 },
  0x01: keys(),
  0x02: { REL_X: 0, REL_Y: 1, REL_Z: 2, REL_HWHEEL: 6, REL_DIAL: 7, REL_WHEEL: 8 },
  0x03: {
    ABS_X: 0,
    ABS_Y: 1,
    ABS_Z: 2,
    ABS_RX: 3,
    ABS_RY: 4,
    ABS_RZ: 5,
    ABS_WHEEL: 8,
    ABS_PRESSURE: 0x18,
    ABS_MT_SLOT: 0x2f,
    ABS_MT_POSITION_X: 0x35,
    ABS_MT_POSITION_Y: 0x36,
    ABS_MT_TRACKING_ID: 0x39,
  },
  0x04: { MSC_SERIAL: 0, MSC_SCAN: 4, MSC_TIMESTAMP: 5 },
  0x11: { LED_NUML: 0, LED_CAPSL: 1, LED_SCROLLL: 2, LED_COMPOSE: 3, LED_KANA: 4 },
};

/** An event type: a number 0..0xffff or an EV_* name. */
export function eventType(v: unknown, what: string): number {
  if (typeof v === 'string' && Object.hasOwn(EV_TYPE_NAMES, v)) return EV_TYPE_NAMES[v]!;
  return u16(v, what);
}

/** A code of event type `type`: a number 0..0xffff or a name of that type (KEY_A, BTN_LEFT, ABS_X ...). */
export function eventCode(type: number, v: unknown, what: string): number {
  const names = CODE_NAMES[type];
  if (typeof v === 'string' && names !== undefined && Object.hasOwn(names, v)) return names[v]!;
  return u16(v, what);
}

/** An input property: a number or an INPUT_PROP_* name. */
export function inputProperty(v: unknown, what: string): number {
  if (typeof v === 'string' && Object.hasOwn(INPUT_PROP_NAMES, v)) return INPUT_PROP_NAMES[v]!;
  return u16(v, what);
}

function u16(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff) return v;
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: ${JSON.stringify(v)?.slice(0, 40)} is not a known name or a number 0..65535`);
}
