/**
 * The vhost-user-gpu display protocol (QEMU docs/interop/vhost-user-gpu.rst): the socket a
 * vhost-user front-end hands the GPU back-end with VHOST_USER_GPU_SET_SOCKET (front-end message
 * 33). The back-end sends requests (display changes, pixels, the cursor); the front-end answers
 * only the synchronous ones (GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO, GET_EDID, and DMABUF_UPDATE
 * which is not used here). Every message is a 12-byte header (u32 request, u32 flags, u32 size of
 * the payload that follows), little-endian; a reply carries flag bit 2 (0x4) and the request's
 * number.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** Requests of the vhost-user-gpu protocol (VhostUserGpuRequest). */
export const VhostUserGpuRequest = {
  GET_PROTOCOL_FEATURES: 1,
  SET_PROTOCOL_FEATURES: 2,
  GET_DISPLAY_INFO: 3,
  CURSOR_POS: 4,
  CURSOR_POS_HIDE: 5,
  CURSOR_UPDATE: 6,
  SCANOUT: 7,
  UPDATE: 8,
  DMABUF_SCANOUT: 9,
  DMABUF_UPDATE: 10,
  GET_EDID: 11,
  DMABUF_SCANOUT2: 12,
} as const;

/** Sizes and flags of the protocol's structures. */
export const VhostUserGpuLayout = {
  HEADER_SIZE: 12,
  /** VHOST_USER_GPU_MSG_FLAG_REPLY. */
  FLAG_REPLY: 0x4,
  /** VhostUserGpuCursorPos: u32 scanout_id, x, y. */
  CURSOR_POS_SIZE: 12,
  /** VhostUserGpuCursorUpdate: pos, u32 hot_x, hot_y, u32 data[64 * 64]. */
  CURSOR_UPDATE_SIZE: 12 + 8 + 64 * 64 * 4,
  /** VhostUserGpuScanout: u32 scanout_id, width, height. */
  SCANOUT_SIZE: 12,
  /** VhostUserGpuUpdate header: u32 scanout_id, x, y, width, height; then the pixels. */
  UPDATE_HEADER_SIZE: 20,
  /** struct virtio_gpu_resp_display_info: a 24-byte ctrl header, 16 x (rect, enabled, flags). */
  DISPLAY_INFO_SIZE: 24 + 16 * 24,
  /** struct virtio_gpu_resp_edid: a 24-byte ctrl header, u32 size, u32 padding, u8 edid[1024]. */
  EDID_REPLY_SIZE: 24 + 8 + 1024,
  /** The largest message the front-end may send us: the EDID reply. */
  MAX_REPLY_PAYLOAD: 24 + 8 + 1024,
} as const;

/** VHOST_USER_GPU_PROTOCOL_F_* bit numbers. */
export const VhostUserGpuProtocolFeature = {
  EDID: 0,
  DMABUF2: 1,
} as const;

/** A malformed, oversized, unexpected or late message on the display socket. */
export class VhostUserGpuProtocolError extends VirtioError {
  constructor(message: string, code: ErrorCode = ErrorCode.VHOST_USER_PROTOCOL) {
    super(code, `vhost-user-gpu: ${message}`);
  }
}

/** One message as read from the socket. */
export interface VhostUserGpuMessage {
  /** The request number (a reply carries the request it answers). */
  readonly request: number;
  /** Header flags (FLAG_REPLY on replies). */
  readonly flags: number;
  /** The payload, `size` bytes. */
  readonly payload: Uint8Array;
}

/** A message: header and payload in one buffer. */
export function encodeGpuMessage(request: number, payload: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(VhostUserGpuLayout.HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, payload.length, true);
  out.set(payload, VhostUserGpuLayout.HEADER_SIZE);
  return out;
}

/** A payload of little-endian u32 values. */
export function u32Payload(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => v.setUint32(i * 4, x >>> 0, true));
  return out;
}

/** A u64 payload. */
export function u64Payload(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

/**
 * Splits a byte stream into messages, refusing any payload larger than `maxPayload` before
 * buffering it (the peer is not trusted: memory stays bounded).
 */
export class GpuMessageReader {
  private buf = new Uint8Array(0);

  constructor(private readonly maxPayload: number) {}

  /** Adds bytes; returns the complete messages. Throws VhostUserGpuProtocolError on an oversized one. */
  push(chunk: Uint8Array): VhostUserGpuMessage[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const out: VhostUserGpuMessage[] = [];
    let at = 0;
    const H = VhostUserGpuLayout.HEADER_SIZE;
    while (joined.length - at >= H) {
      const v = new DataView(joined.buffer, joined.byteOffset + at, H);
      const size = v.getUint32(8, true);
      if (size > this.maxPayload) throw new VhostUserGpuProtocolError(`message ${v.getUint32(0, true)} of ${size} bytes exceeds ${this.maxPayload}`);
      if (joined.length - at < H + size) break;
      out.push({ request: v.getUint32(0, true), flags: v.getUint32(4, true), payload: joined.slice(at + H, at + H + size) });
      at += H + size;
    }
    this.buf = joined.slice(at);
    return out;
  }
}

/** One display of GET_DISPLAY_INFO's reply. */
export interface VhostUserGpuDisplay {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** The display is connected. */
  readonly enabled: boolean;
}

/** Decodes a GET_DISPLAY_INFO reply (struct virtio_gpu_resp_display_info). */
export function decodeDisplayInfo(p: Uint8Array): VhostUserGpuDisplay[] {
  if (p.length !== VhostUserGpuLayout.DISPLAY_INFO_SIZE) throw new VhostUserGpuProtocolError(`GET_DISPLAY_INFO reply of ${p.length} bytes, expected ${VhostUserGpuLayout.DISPLAY_INFO_SIZE}`);
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const out: VhostUserGpuDisplay[] = [];
  for (let i = 0; i < 16; i++) {
    const at = 24 + i * 24;
    out.push({ width: v.getUint32(at + 8, true), height: v.getUint32(at + 12, true), enabled: v.getUint32(at + 16, true) !== 0 });
  }
  return out;
}

/** Encodes a GET_DISPLAY_INFO reply (the front-end side, for peers and tests). */
export function encodeDisplayInfo(displays: readonly VhostUserGpuDisplay[]): Uint8Array {
  const out = new Uint8Array(VhostUserGpuLayout.DISPLAY_INFO_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x1101, true); // VIRTIO_GPU_RESP_OK_DISPLAY_INFO
  displays.slice(0, 16).forEach((d, i) => {
    const at = 24 + i * 24;
    v.setUint32(at + 8, d.width, true);
    v.setUint32(at + 12, d.height, true);
    v.setUint32(at + 16, d.enabled ? 1 : 0, true);
  });
  return out;
}

/** Decodes a GET_EDID reply (struct virtio_gpu_resp_edid): the EDID bytes. */
export function decodeEdidReply(p: Uint8Array): Uint8Array {
  if (p.length !== VhostUserGpuLayout.EDID_REPLY_SIZE) throw new VhostUserGpuProtocolError(`GET_EDID reply of ${p.length} bytes, expected ${VhostUserGpuLayout.EDID_REPLY_SIZE}`);
  const size = new DataView(p.buffer, p.byteOffset, p.length).getUint32(24, true);
  if (size === 0 || size > 1024 || size % 128 !== 0) throw new VhostUserGpuProtocolError(`GET_EDID reply size ${size} is not 128..1024 in blocks of 128`);
  return p.slice(32, 32 + size);
}

/** Encodes a GET_EDID reply (the front-end side). */
export function encodeEdidReply(edid: Uint8Array): Uint8Array {
  const out = new Uint8Array(VhostUserGpuLayout.EDID_REPLY_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x1104, true); // VIRTIO_GPU_RESP_OK_EDID
  v.setUint32(24, edid.length, true);
  out.set(edid.subarray(0, 1024), 32);
  return out;
}
