/**
 * 5.8 Input Device: queues, configuration selectors, the configuration structure and the event
 * structure. Constants only, no logic. Event type and code numbers are Linux evdev's
 * (include/uapi/linux/input-event-codes.h), which the spec defers to.
 */

/** 5.8.2 Virtqueues. */
export const INPUT_EVENTQ = 0;
/** 5.8.2: the status queue (LED and other feedback from the driver). */
export const INPUT_STATUSQ = 1;
/** 5.8.3: no device-specific feature bits. */
export const INPUT_FEATURES = 0n;

/** 5.8.4 enum virtio_input_config_select. */
export const InputConfigSelect = {
  UNSET: 0x00,
  ID_NAME: 0x01,
  ID_SERIAL: 0x02,
  ID_DEVIDS: 0x03,
  PROP_BITS: 0x10,
  EV_BITS: 0x11,
  ABS_INFO: 0x12,
} as const;
export type InputConfigSelect = (typeof InputConfigSelect)[keyof typeof InputConfigSelect];

/** 5.8.4 struct virtio_input_config: byte offsets (u8 select, u8 subsel, u8 size, u8 reserved[5], union u). */
export const InputConfig = {
  SELECT: 0,
  SUBSEL: 1,
  SIZE: 2,
  /** The union: string[128] / bitmap[128] / absinfo / devids. */
  U: 8,
  /** Bytes of the union. */
  U_BYTES: 128,
  /** Size of the whole structure. */
  BYTES: 136,
} as const;

/** 5.8.4 struct virtio_input_absinfo (offsets inside the union; all le32). */
export const InputAbsInfo = {
  MIN: 0,
  MAX: 4,
  FUZZ: 8,
  FLAT: 12,
  RES: 16,
  BYTES: 20,
} as const;

/** 5.8.4 struct virtio_input_devids (offsets inside the union; all le16). */
export const InputDevIds = {
  BUSTYPE: 0,
  VENDOR: 2,
  PRODUCT: 4,
  VERSION: 6,
  BYTES: 8,
} as const;

/** 5.8.6 struct virtio_input_event: le16 type, le16 code, le32 value. */
export const InputEvent = {
  TYPE: 0,
  CODE: 2,
  VALUE: 4,
  BYTES: 8,
} as const;

/** evdev event types (EV_*) used by the presets and tests. */
export const EvType = {
  SYN: 0x00,
  KEY: 0x01,
  REL: 0x02,
  ABS: 0x03,
  MSC: 0x04,
  SW: 0x05,
  LED: 0x11,
  SND: 0x12,
  REP: 0x14,
  MAX: 0x1f,
} as const;

/** evdev codes used by the presets and tests (a small subset; any code up to 1023 may be offered). */
export const EvCode = {
  SYN_REPORT: 0,
  REL_X: 0,
  REL_Y: 1,
  REL_WHEEL: 8,
  ABS_X: 0,
  ABS_Y: 1,
  KEY_ESC: 1,
  KEY_A: 30,
  KEY_ENTER: 28,
  BTN_LEFT: 0x110,
  BTN_RIGHT: 0x111,
  BTN_MIDDLE: 0x112,
  LED_NUML: 0,
  LED_CAPSL: 1,
  LED_SCROLLL: 2,
} as const;

/** evdev input properties (INPUT_PROP_*). */
export const InputProp = {
  POINTER: 0,
  DIRECT: 1,
} as const;

/** Linux BUS_VIRTUAL, the bus type QEMU's virtio-input devices report. */
export const INPUT_BUS_VIRTUAL = 0x06;
