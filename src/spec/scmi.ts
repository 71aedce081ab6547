/**
 * 5.17 SCMI Device: feature bits, the two queues, the shared memory ids, and the numbers of the
 * Arm SCMI specification (DEN0056) the device and driver both use: the message header, status
 * codes, and the Base (0x10) and Sensor (0x15) protocols at version 1.0. Constants only.
 */
import { bit } from './features.js';

/** 5.17.3 Feature bits (bit numbers). */
export const ScmiFeatureBit = {
  /** The device implements some SCMI notifications or delayed responses: the eventq exists. */
  P2A_CHANNELS: 0,
  /** The device implements an SCMI statistics shared memory region. */
  SHARED_MEMORY: 1,
} as const;

/** 5.17.3 Feature bits as masks. */
export const ScmiF = {
  P2A_CHANNELS: bit(ScmiFeatureBit.P2A_CHANNELS),
  SHARED_MEMORY: bit(ScmiFeatureBit.SHARED_MEMORY),
} as const;

/** 5.17.2 Virtqueues. */
export const ScmiQueue = {
  CMDQ: 0,
  /** Only with VIRTIO_SCMI_F_P2A_CHANNELS. */
  EVENTQ: 1,
} as const;

/** 5.17.4: no configuration. */
export const SCMI_CONFIG_SIZE = 0;

/** 5.17.6.5 Virtio shmids of the SCMI statistics shared memory regions. */
export const ScmiShmId = {
  POWER_STATE_STATISTICS: 1,
  PERFORMANCE_DOMAIN_STATISTICS: 2,
  SENSOR_VALUES: 3,
  VENDOR_FIRST: 0x80,
  VENDOR_LAST: 0xff,
} as const;

/** SCMI message header (le32): message_id [7:0], message_type [9:8], protocol_id [17:10], token [27:18]. */
export const ScmiHeader = {
  SIZE: 4,
  MESSAGE_ID_MASK: 0xff,
  TYPE_SHIFT: 8,
  TYPE_MASK: 0x3,
  PROTOCOL_SHIFT: 10,
  PROTOCOL_MASK: 0xff,
  TOKEN_SHIFT: 18,
  TOKEN_MASK: 0x3ff,
} as const;

/** SCMI message types. */
export const ScmiMessageType = {
  COMMAND: 0,
  DELAYED_RESPONSE: 2,
  NOTIFICATION: 3,
} as const;

/** Packs an SCMI message header. */
export function scmiHeader(protocolId: number, messageId: number, type: number, token: number): number {
  return (
    ((messageId & ScmiHeader.MESSAGE_ID_MASK) |
      ((type & ScmiHeader.TYPE_MASK) << ScmiHeader.TYPE_SHIFT) |
      ((protocolId & ScmiHeader.PROTOCOL_MASK) << ScmiHeader.PROTOCOL_SHIFT) |
      ((token & ScmiHeader.TOKEN_MASK) << ScmiHeader.TOKEN_SHIFT)) >>>
    0
  );
}

/** The message_id field of an SCMI message header. */
export function scmiHeaderMessageId(h: number): number {
  return h & ScmiHeader.MESSAGE_ID_MASK;
}
/** The message_type field of an SCMI message header (command, delayed response, notification). */
export function scmiHeaderType(h: number): number {
  return (h >>> ScmiHeader.TYPE_SHIFT) & ScmiHeader.TYPE_MASK;
}
/** The protocol_id field of an SCMI message header. */
export function scmiHeaderProtocol(h: number): number {
  return (h >>> ScmiHeader.PROTOCOL_SHIFT) & ScmiHeader.PROTOCOL_MASK;
}
/** The token field of an SCMI message header. */
export function scmiHeaderToken(h: number): number {
  return (h >>> ScmiHeader.TOKEN_SHIFT) & ScmiHeader.TOKEN_MASK;
}

/** SCMI status codes (int32). */
export const ScmiStatus = {
  SUCCESS: 0,
  NOT_SUPPORTED: -1,
  INVALID_PARAMETERS: -2,
  DENIED: -3,
  NOT_FOUND: -4,
  OUT_OF_RANGE: -5,
  BUSY: -6,
  COMMS_ERROR: -7,
  GENERIC_ERROR: -8,
  HARDWARE_ERROR: -9,
  PROTOCOL_ERROR: -10,
} as const;

/** SCMI protocol identifiers. */
export const ScmiProtocol = {
  BASE: 0x10,
  POWER: 0x11,
  SYSTEM: 0x12,
  PERF: 0x13,
  CLOCK: 0x14,
  SENSOR: 0x15,
} as const;

/** Commands every protocol has. */
export const ScmiCommonMessage = {
  PROTOCOL_VERSION: 0x0,
  PROTOCOL_ATTRIBUTES: 0x1,
  PROTOCOL_MESSAGE_ATTRIBUTES: 0x2,
} as const;

/** Base protocol commands. */
export const ScmiBaseMessage = {
  ...ScmiCommonMessage,
  DISCOVER_VENDOR: 0x3,
  DISCOVER_SUB_VENDOR: 0x4,
  DISCOVER_IMPLEMENTATION_VERSION: 0x5,
  DISCOVER_LIST_PROTOCOLS: 0x6,
  DISCOVER_AGENT: 0x7,
  NOTIFY_ERRORS: 0x8,
} as const;

/** Base protocol version 1.0 (major in the upper 16 bits). */
export const SCMI_BASE_VERSION = 0x1_0000;
/** BASE_DISCOVER_VENDOR / SUB_VENDOR: a 16-byte NUL-terminated ASCII string. */
export const SCMI_VENDOR_ID_SIZE = 16;

/** Sensor protocol commands (version 1.0). */
export const ScmiSensorMessage = {
  ...ScmiCommonMessage,
  DESCRIPTION_GET: 0x3,
  TRIP_POINT_NOTIFY: 0x4,
  TRIP_POINT_CONFIG: 0x5,
  READING_GET: 0x6,
} as const;

/** Sensor protocol notifications. */
export const ScmiSensorNotification = {
  TRIP_POINT_EVENT: 0x0,
} as const;

/** Sensor protocol version 1.0. */
export const SCMI_SENSOR_VERSION = 0x1_0000;

/** SENSOR_DESCRIPTION_GET: one sensor descriptor (id, attributes_low, attributes_high, name[16]). */
export const ScmiSensorDescriptor = {
  SIZE: 28,
  ID: 0,
  ATTRIBUTES_LOW: 4,
  ATTRIBUTES_HIGH: 8,
  NAME: 12,
  NAME_SIZE: 16,
  /** attributes_low bit 31: asynchronous reading supported. */
  ASYNC_READ: 0x8000_0000,
  /** attributes_low [7:0]: trip points. */
  TRIP_POINTS_MASK: 0xff,
} as const;

/** SCMI sensor unit types (attributes_high [7:0]), a few of them. */
export const ScmiSensorType = {
  NONE: 0,
  UNSPECIFIED: 1,
  DEGREES_C: 2,
  VOLTS: 5,
  AMPS: 6,
  WATTS: 7,
  RPM: 11,
} as const;

/** SENSOR_READING_GET flags: bit 0 asynchronous (the value comes as a delayed response). */
export const SCMI_SENSOR_READ_ASYNC = 1;
/** SENSOR_TRIP_POINT_NOTIFY event_control bit 0: trip point notifications on. */
export const SCMI_SENSOR_NOTIFY_ALL = 1;
/** SENSOR_TRIP_POINT_CONFIG trip_point_ev_ctrl: [1:0] direction, [11:4] trip point id. */
export const ScmiTripPoint = {
  DISABLED: 0,
  POSITIVE: 1,
  NEGATIVE: 2,
  BOTH: 3,
  DIRECTION_MASK: 0x3,
  ID_SHIFT: 4,
  ID_MASK: 0xff,
  /** SENSOR_TRIP_POINT_EVENT trip_point_desc bit 16: crossed upwards (ascending). */
  DESC_ASCENDING: 0x1_0000,
} as const;
