/**
 * 5.12.6.1 RPMB frames: field access (big-endian, whatever the transport's byte order) and the
 * HMAC-SHA256 MAC over a run of frames. Shared by the device and the driver.
 */
import { createHmac } from 'node:crypto';
import { RpmbFrame } from '../../spec/rpmb.js';

export function frameU16(frame: Uint8Array, off: number): number {
  return (frame[off]! << 8) | frame[off + 1]!;
}

export function frameU32(frame: Uint8Array, off: number): number {
  return ((frame[off]! << 24) >>> 0) + ((frame[off + 1]! << 16) | (frame[off + 2]! << 8) | frame[off + 3]!);
}

export function setFrameU16(frame: Uint8Array, off: number, v: number): void {
  frame[off] = (v >>> 8) & 0xff;
  frame[off + 1] = v & 0xff;
}

export function setFrameU32(frame: Uint8Array, off: number, v: number): void {
  frame[off] = (v >>> 24) & 0xff;
  frame[off + 1] = (v >>> 16) & 0xff;
  frame[off + 2] = (v >>> 8) & 0xff;
  frame[off + 3] = v & 0xff;
}

/** The part of a frame the MAC covers: data .. req_resp (5.12.6.1 key_mac). */
export function macInput(frame: Uint8Array): Uint8Array {
  return frame.subarray(RpmbFrame.MAC_START, RpmbFrame.SIZE);
}

/**
 * The MAC of `count` consecutive frames in `frames` (eMMC 6.6.22: over every frame of a
 * multi-block request, carried in the last one), written into the last frame's key_mac.
 */
export function signFrames(key: Uint8Array, frames: Uint8Array, count: number): void {
  const h = createHmac('sha256', key);
  for (let i = 0; i < count; i++) h.update(macInput(frames.subarray(i * RpmbFrame.SIZE, (i + 1) * RpmbFrame.SIZE)));
  frames.set(h.digest(), (count - 1) * RpmbFrame.SIZE + RpmbFrame.KEY_MAC);
}

/** Whether the last of `count` frames carries the right MAC for all of them. */
export function framesSigned(key: Uint8Array, frames: Uint8Array, count: number): boolean {
  if (count < 1) return false;
  const h = createHmac('sha256', key);
  for (let i = 0; i < count; i++) h.update(macInput(frames.subarray(i * RpmbFrame.SIZE, (i + 1) * RpmbFrame.SIZE)));
  const mac = h.digest();
  const at = (count - 1) * RpmbFrame.SIZE + RpmbFrame.KEY_MAC;
  let diff = 0;
  for (let i = 0; i < RpmbFrame.KEY_MAC_SIZE; i++) diff |= mac[i]! ^ frames[at + i]!;
  return diff === 0;
}
