/**
 * 5.3 Console Device: feature bits, virtqueue numbering, configuration layout and the control
 * messages of the multiport extension. Constants only, no logic.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.3.3 Feature bits (bit numbers). */
export const ConsoleFeatureBit = {
  /** Configuration cols and rows are valid. */
  SIZE: 0,
  /** The device supports multiple ports; max_nr_ports is valid and the control queues are used. */
  MULTIPORT: 1,
  /** The device supports emergency write: configuration field emerg_wr is valid. */
  EMERG_WRITE: 2,
} as const;

/** 5.3.3 Feature bits as masks. */
export const ConsoleF = {
  SIZE: bit(ConsoleFeatureBit.SIZE),
  MULTIPORT: bit(ConsoleFeatureBit.MULTIPORT),
  EMERG_WRITE: bit(ConsoleFeatureBit.EMERG_WRITE),
} as const;

/** Every console feature bit. */
export const CONSOLE_FEATURES = ConsoleF.SIZE | ConsoleF.MULTIPORT | ConsoleF.EMERG_WRITE;

/** 5.3.2 Virtqueues: port 0's pair, then the control pair, then ports 1, 2, ... */
export const ConsoleQueue = {
  RECEIVEQ_PORT0: 0,
  TRANSMITQ_PORT0: 1,
  CONTROL_RECEIVEQ: 2,
  CONTROL_TRANSMITQ: 3,
} as const;

/** 5.3.2: the receiveq index of `port` (port 0: 0; port n >= 1: 2 + 2n). */
export function consoleReceiveQueue(port: number): number {
  return port === 0 ? ConsoleQueue.RECEIVEQ_PORT0 : 2 + 2 * port;
}

/** 5.3.2: the transmitq index of `port` (port 0: 1; port n >= 1: 3 + 2n). */
export function consoleTransmitQueue(port: number): number {
  return port === 0 ? ConsoleQueue.TRANSMITQ_PORT0 : 3 + 2 * port;
}

/** 5.3.2: the port whose receiveq (or transmitq) is queue `index`, or -1 for a control queue. */
export function consolePortOfQueue(index: number): number {
  if (index < 2) return 0;
  if (index < 4) return -1;
  return (index - 2) >> 1;
}

/** 5.3.2: the number of queues of a device with `maxNrPorts` ports (1: no control queues). */
export function consoleQueueCount(maxNrPorts: number, multiport: boolean): number {
  return multiport ? 2 * (maxNrPorts + 1) : 2;
}

/** 5.3.4 struct virtio_console_config offsets. */
export const ConsoleConfig = {
  COLS: 0,
  ROWS: 2,
  MAX_NR_PORTS: 4,
  EMERG_WR: 8,
  SIZE: 12,
} as const;

/** 5.3.4: the configuration layout (fields exist with their feature). */
export const CONSOLE_CONFIG_LAYOUT = defineConfigLayout(ConsoleConfig.SIZE, [
  { name: 'cols', offset: ConsoleConfig.COLS, width: 2, feature: ConsoleF.SIZE, access: 'ro' },
  { name: 'rows', offset: ConsoleConfig.ROWS, width: 2, feature: ConsoleF.SIZE, access: 'ro' },
  { name: 'maxNrPorts', offset: ConsoleConfig.MAX_NR_PORTS, width: 4, feature: ConsoleF.MULTIPORT, access: 'ro' },
  { name: 'emergWr', offset: ConsoleConfig.EMERG_WR, width: 4, feature: ConsoleF.EMERG_WRITE, access: 'rw' },
]);

/** The field names of CONSOLE_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type ConsoleConfigField = (typeof CONSOLE_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.3.6.2 struct virtio_console_control: le32 id, le16 event, le16 value. */
export const ConsoleControl = {
  ID: 0,
  EVENT: 4,
  VALUE: 6,
  SIZE: 8,
} as const;

/** 5.3.6.2: control events. */
export const ConsoleEvent = {
  /** Driver: ready for control messages (value 1 success, 0 failure). */
  DEVICE_READY: 0,
  /** Device: a new port. */
  DEVICE_ADD: 1,
  /** Device: a port went away. */
  DEVICE_REMOVE: 2,
  /** Driver: the port is ready (value 1) or failed (0). */
  PORT_READY: 3,
  /** Device: the port is a console port. */
  CONSOLE_PORT: 4,
  /** Device: console size change, followed by struct virtio_console_resize. */
  RESIZE: 5,
  /** Both: port closed (0) or open (1). */
  PORT_OPEN: 6,
  /** Device: followed by the UTF-8 name of the port, without NUL. */
  PORT_NAME: 7,
} as const;
export type ConsoleEvent = (typeof ConsoleEvent)[keyof typeof ConsoleEvent];

/** 5.3.6.2 struct virtio_console_resize: le16 cols, le16 rows, after the control header. */
export const CONSOLE_RESIZE_SIZE = 4;
