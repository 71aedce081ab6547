/**
 * 5.18 GPIO Device: a request queue for line messages and, with VIRTIO_GPIO_F_IRQ, an event
 * queue whose buffers unmask one line's interrupt each.
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.18.2 queues. */
export const GpioQueue = {
  REQUESTQ: 0,
  /** Only with VIRTIO_GPIO_F_IRQ. */
  EVENTQ: 1,
} as const;

/** 5.18.3 feature bits. */
export const GpioF = {
  /** Interrupts on lines (the event queue and SET_IRQ_TYPE). */
  IRQ: 1n << 0n,
} as const;
/** The feature bits a GPIO device can offer (IRQ). */
export const GPIO_FEATURES = GpioF.IRQ;

/** 5.18.4 struct virtio_gpio_config: le16 ngpio, u8 padding[2], le32 gpio_names_size. */
export const GPIO_CONFIG_SIZE = 8;
/** struct virtio_gpio_config as a declarative layout: ngpio and gpio_names_size, read-only. */
export const GPIO_CONFIG_LAYOUT = defineConfigLayout(GPIO_CONFIG_SIZE, [
  { name: 'ngpio', offset: 0, width: 2, feature: null, access: 'ro' },
  { name: 'gpioNamesSize', offset: 4, width: 4, feature: null, access: 'ro' },
]);

/** 5.18.6 message types (`type` of virtio_gpio_request). */
export const GpioMsg = {
  GET_LINE_NAMES: 0x0001,
  GET_DIRECTION: 0x0002,
  SET_DIRECTION: 0x0003,
  GET_VALUE: 0x0004,
  SET_VALUE: 0x0005,
  SET_IRQ_TYPE: 0x0006,
} as const;
export type GpioMsg = (typeof GpioMsg)[keyof typeof GpioMsg];

/** 5.18.6 directions. */
export const GpioDirection = {
  NONE: 0x00,
  OUT: 0x01,
  IN: 0x02,
} as const;
export type GpioDirection = (typeof GpioDirection)[keyof typeof GpioDirection];

/** 5.18.6 interrupt trigger types. */
export const GpioIrqType = {
  NONE: 0x00,
  EDGE_RISING: 0x01,
  EDGE_FALLING: 0x02,
  EDGE_BOTH: 0x03,
  LEVEL_HIGH: 0x04,
  LEVEL_LOW: 0x08,
} as const;
export type GpioIrqType = (typeof GpioIrqType)[keyof typeof GpioIrqType];

/** Whether `v` is one of the trigger types of 5.18.6. */
export function isGpioIrqType(v: number): v is GpioIrqType {
  return v === 0 || v === 1 || v === 2 || v === 3 || v === 4 || v === 8;
}

/** 5.18.6 response status. */
export const GpioStatus = {
  OK: 0x0,
  ERR: 0x1,
} as const;

/** 5.18.7 interrupt status (virtio_gpio_irq_response). */
export const GpioIrqStatus = {
  INVALID: 0x0,
  VALID: 0x1,
} as const;

/** struct virtio_gpio_request: le16 type, le16 gpio, le32 value. */
export const GPIO_REQUEST_SIZE = 8;
/** Byte offsets of struct virtio_gpio_request's fields. */
export const GPIO_REQUEST = { type: 0, gpio: 2, value: 4 } as const;
/** struct virtio_gpio_response: u8 status, u8 value (GET_LINE_NAMES: value[gpio_names_size]). */
export const GPIO_RESPONSE_SIZE = 2;
/** struct virtio_gpio_irq_request: le16 gpio. */
export const GPIO_IRQ_REQUEST_SIZE = 2;
/** struct virtio_gpio_irq_response: u8 status. */
export const GPIO_IRQ_RESPONSE_SIZE = 1;

/**
 * 5.18.6.1 the gpio-names block: each line's name zero-terminated in line order, a lone zero
 * byte for a line without one; empty (size 0) when no line has a name.
 */
export function encodeGpioNames(names: readonly (string | null)[]): Uint8Array {
  if (names.every((n) => n === null || n === '')) return new Uint8Array(0);
  const parts: number[] = [];
  for (const n of names) {
    for (let i = 0; i < (n ?? '').length; i++) parts.push(n!.charCodeAt(i) & 0x7f);
    parts.push(0);
  }
  return Uint8Array.from(parts);
}

/** Splits a gpio-names block into `ngpio` names (null for an empty one); a short block gives nulls. */
export function decodeGpioNames(block: Uint8Array, ngpio: number): (string | null)[] {
  const out: (string | null)[] = [];
  let at = 0;
  for (let i = 0; i < ngpio; i++) {
    let end = at;
    while (end < block.length && block[end] !== 0) end++;
    const s = at < block.length ? String.fromCharCode(...block.subarray(at, end)) : '';
    out.push(s === '' ? null : s);
    at = end + 1;
  }
  return out;
}
