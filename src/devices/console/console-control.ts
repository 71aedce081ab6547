/**
 * 5.3.6.2 control messages in both directions: struct virtio_console_control (le32 id, le16
 * event, le16 value) followed by an event's payload (RESIZE: cols, rows; PORT_NAME: the UTF-8
 * name). The legacy interface uses the guest's byte order (5.3.6.3), so every encoder and
 * decoder takes `littleEndian`.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { CONSOLE_RESIZE_SIZE, ConsoleControl, ConsoleEvent } from '../../spec/console.js';

/** A decoded control header. */
export interface ConsoleControlHeader {
  id: number;
  event: number;
  value: number;
}

/** Port names are cut to this many bytes (the control receiveq buffer must hold them). */
export const CONSOLE_MAX_NAME_BYTES = 256;

/** Encodes a control message: header plus `payload` (may be empty). */
export function encodeControl(id: number, event: number, value: number, payload: Uint8Array | null, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(ConsoleControl.SIZE + (payload?.length ?? 0));
  const v = new DataView(out.buffer);
  v.setUint32(ConsoleControl.ID, id >>> 0, littleEndian);
  v.setUint16(ConsoleControl.EVENT, event & 0xffff, littleEndian);
  v.setUint16(ConsoleControl.VALUE, value & 0xffff, littleEndian);
  if (payload) out.set(payload, ConsoleControl.SIZE);
  return out;
}

/** Decodes the header at the start of `bytes` (at least ConsoleControl.SIZE of them) into `into`. */
export function decodeControl(bytes: Uint8Array, littleEndian: boolean, into: ConsoleControlHeader): ConsoleControlHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, ConsoleControl.SIZE);
  into.id = v.getUint32(ConsoleControl.ID, littleEndian);
  into.event = v.getUint16(ConsoleControl.EVENT, littleEndian);
  into.value = v.getUint16(ConsoleControl.VALUE, littleEndian);
  return into;
}

/** 5.3.6.2 struct virtio_console_resize: cols then rows (the spec's order). */
export function encodeResize(cols: number, rows: number, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(CONSOLE_RESIZE_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(0, cols & 0xffff, littleEndian);
  v.setUint16(2, rows & 0xffff, littleEndian);
  return out;
}

/** Decodes struct virtio_console_resize, or null when `bytes` is too short. */
export function decodeResize(bytes: Uint8Array, littleEndian: boolean): { cols: number; rows: number } | null {
  if (bytes.length < CONSOLE_RESIZE_SIZE) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, CONSOLE_RESIZE_SIZE);
  return { cols: v.getUint16(0, littleEndian), rows: v.getUint16(2, littleEndian) };
}

/** The UTF-8 bytes of a port name, cut to CONSOLE_MAX_NAME_BYTES on a character boundary. */
export function encodePortName(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length <= CONSOLE_MAX_NAME_BYTES) return bytes;
  let end = CONSOLE_MAX_NAME_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not split a UTF-8 sequence
  return bytes.subarray(0, end);
}

/** The name of a control event (for logs). */
export function consoleEventName(event: number): string {
  for (const [k, v] of Object.entries(ConsoleEvent)) if (v === event) return k;
  return `event ${event}`;
}

/** A console size (cols, rows) fits the 16-bit fields of the configuration and of RESIZE. */
export function checkSize(cols: number, rows: number): void {
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 0 || rows < 0 || cols > 0xffff || rows > 0xffff) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `console size ${cols}x${rows} not 16-bit`);
  }
}
