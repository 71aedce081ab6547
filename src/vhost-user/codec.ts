/**
 * Decoding and encoding of vhost-user payloads with strict size checks: a payload of the wrong
 * size is refused (VhostUserError, code VHOST_USER_PROTOCOL) rather than read short or long.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import {
  FrontendReq,
  HEADER_SIZE,
  HeaderFlag,
  MAX_CONFIG_SIZE,
  MAX_MEM_REGIONS,
  PayloadSize,
  frontendReqName,
  type ConfigMsg,
  type DeviceStateMsg,
  type InflightDesc,
  type IotlbMsg,
  type LogDesc,
  type MemRegion,
  type VringAddr,
  type VringArea,
  type VringState,
} from './messages.js';

/** Why a vhost-user message was refused; stable reasons for tests and logs. */
export const VhostUserFault = {
  /** A message shorter than the 12-byte header, or a header that cannot be decoded. */
  BAD_HEADER: 'BAD_HEADER',
  /** The header's version bits are not 1 (vhost-user.rst "Message format"). */
  BAD_VERSION: 'BAD_VERSION',
  /** The header announces a payload larger than any request has. */
  TOO_LARGE: 'TOO_LARGE',
  /** The payload's size is not the size of the request's body. */
  BAD_SIZE: 'BAD_SIZE',
  /** A request number vhost-user.rst does not define. */
  UNKNOWN_REQUEST: 'UNKNOWN_REQUEST',
  /** A defined request this back-end (or this device) does not implement. */
  UNSUPPORTED: 'UNSUPPORTED',
  /** A request or field that needs a protocol feature that was not negotiated. */
  NOT_NEGOTIATED: 'NOT_NEGOTIATED',
  /** A ring index beyond the device's rings. */
  BAD_INDEX: 'BAD_INDEX',
  /** A field value outside what the request allows (reserved bits, ring size, alignment, ...). */
  BAD_VALUE: 'BAD_VALUE',
  /** A memory region overlaps one already in the table (guest or user addresses). */
  OVERLAP: 'OVERLAP',
  /** A request that needs file descriptors came with fewer than it needs. */
  MISSING_FD: 'MISSING_FD',
  /** A request came with more file descriptors than it takes (they are closed). */
  UNEXPECTED_FD: 'UNEXPECTED_FD',
  /** Ring addresses, or the rings after a memory table change, outside the memory table. */
  UNMAPPED: 'UNMAPPED',
  /** A request that is not valid in the session's current state (ring running, no memory table, ...). */
  BAD_STATE: 'BAD_STATE',
  /** mmap of a shared memory region, log area or inflight area failed. */
  MAP_FAILED: 'MAP_FAILED',
  /** The socket or the device failed while the message was served. */
  IO: 'IO',
} as const;
export type VhostUserFault = (typeof VhostUserFault)[keyof typeof VhostUserFault];

/**
 * A vhost-user message refused or a session failure (code VHOST_USER_PROTOCOL): the precise
 * `reason` and the request it concerns.
 */
export class VhostUserError extends VirtioError {
  constructor(
    /** Why the message was refused. */
    readonly reason: VhostUserFault,
    message: string,
    /** The request number (FrontendReq), or -1 when not tied to one. */
    readonly request = -1,
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.VHOST_USER_PROTOCOL, `${reason}: ${request >= 0 ? frontendReqName(request) + ': ' : ''}${message}`, options);
  }
}

const U32 = 0x1_0000_0000;

function dv(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

/** Reads a u64 as a number; values above 2^53 are refused (no address or size gets there). */
function getU64(d: DataView, off: number, what: string, req: number): number {
  const lo = d.getUint32(off, true);
  const hi = d.getUint32(off + 4, true);
  if (hi >= 0x20_0000) throw new VhostUserError(VhostUserFault.BAD_VALUE, `${what} exceeds 2^53`, req);
  return hi * U32 + lo;
}

function setU64(d: DataView, off: number, v: number): void {
  d.setUint32(off, v >>> 0, true);
  d.setUint32(off + 4, Math.floor(v / U32) >>> 0, true);
}

export function expectSize(req: number, p: Uint8Array, size: number): void {
  if (p.length !== size) {
    throw new VhostUserError(VhostUserFault.BAD_SIZE, `payload is ${p.length} bytes, expected ${size}`, req);
  }
}

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export function decodeHeader(b: Uint8Array): Header {
  if (b.length < HEADER_SIZE) throw new VhostUserError(VhostUserFault.BAD_HEADER, 'short header');
  const d = dv(b);
  return { request: d.getUint32(0, true), flags: d.getUint32(4, true), size: d.getUint32(8, true) };
}

/** A whole message (header and payload) in one buffer, ready for one sendmsg. */
export function encodeMessage(request: number, flags: number, payload?: Uint8Array): Uint8Array {
  const n = payload?.length ?? 0;
  const out = new Uint8Array(HEADER_SIZE + n);
  const d = dv(out);
  d.setUint32(0, request, true);
  d.setUint32(4, flags, true);
  d.setUint32(8, n, true);
  if (payload) out.set(payload, HEADER_SIZE);
  return out;
}

/** Header flags of a reply from the back-end. */
export const REPLY_FLAGS = HeaderFlag.VERSION | HeaderFlag.REPLY;

// --- u64 -----------------------------------------------------------------------------------

/** A u64 as bigint (feature sets). */
export function decodeU64Big(req: number, p: Uint8Array): bigint {
  expectSize(req, p, PayloadSize.U64);
  return dv(p).getBigUint64(0, true);
}
/** A u64 as a number (indices, sizes, status); above 2^53 refused. */
export function decodeU64(req: number, p: Uint8Array): number {
  expectSize(req, p, PayloadSize.U64);
  return getU64(dv(p), 0, 'u64', req);
}
export function encodeU64(v: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  dv(out).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return out;
}

// --- vring state / address -----------------------------------------------------------------

export function decodeVringState(req: number, p: Uint8Array): VringState {
  expectSize(req, p, PayloadSize.VRING_STATE);
  const d = dv(p);
  return { index: d.getUint32(0, true), num: d.getUint32(4, true) };
}
export function encodeVringState(s: VringState): Uint8Array {
  const out = new Uint8Array(PayloadSize.VRING_STATE);
  const d = dv(out);
  d.setUint32(0, s.index >>> 0, true);
  d.setUint32(4, s.num >>> 0, true);
  return out;
}

export function decodeVringAddr(req: number, p: Uint8Array): VringAddr {
  expectSize(req, p, PayloadSize.VRING_ADDR);
  const d = dv(p);
  return {
    index: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    descUser: getU64(d, 8, 'desc address', req),
    usedUser: getU64(d, 16, 'used address', req),
    availUser: getU64(d, 24, 'avail address', req),
    // The log address may legitimately be anything when logging is off; keep it only if sane.
    logGuest: d.getUint32(36, true) >= 0x20_0000 ? -1 : getU64(d, 32, 'log address', req),
  };
}
export function encodeVringAddr(a: VringAddr): Uint8Array {
  const out = new Uint8Array(PayloadSize.VRING_ADDR);
  const d = dv(out);
  d.setUint32(0, a.index >>> 0, true);
  d.setUint32(4, a.flags >>> 0, true);
  setU64(d, 8, a.descUser);
  setU64(d, 16, a.usedUser);
  setU64(d, 24, a.availUser);
  setU64(d, 32, Math.max(0, a.logGuest));
  return out;
}

// --- memory --------------------------------------------------------------------------------

function getRegion(d: DataView, off: number, req: number): MemRegion {
  return {
    guestAddr: getU64(d, off, 'guest address', req),
    size: getU64(d, off + 8, 'region size', req),
    userAddr: getU64(d, off + 16, 'user address', req),
    mmapOffset: getU64(d, off + 24, 'mmap offset', req),
  };
}
function setRegion(d: DataView, off: number, r: MemRegion): void {
  setU64(d, off, r.guestAddr);
  setU64(d, off + 8, r.size);
  setU64(d, off + 16, r.userAddr);
  setU64(d, off + 24, r.mmapOffset);
}

/** SET_MEM_TABLE: exactly 8 + 32 * num_regions bytes, 1 to 8 regions. */
export function decodeMemoryTable(req: number, p: Uint8Array): MemRegion[] {
  if (p.length < PayloadSize.MEM_TABLE_HEADER) {
    throw new VhostUserError(VhostUserFault.BAD_SIZE, `payload is ${p.length} bytes, below the 8-byte header`, req);
  }
  const d = dv(p);
  const n = d.getUint32(0, true);
  if (n === 0 || n > MAX_MEM_REGIONS) {
    throw new VhostUserError(VhostUserFault.BAD_VALUE, `${n} regions (1 to ${MAX_MEM_REGIONS})`, req);
  }
  expectSize(req, p, PayloadSize.MEM_TABLE_HEADER + n * PayloadSize.MEM_REGION);
  const out: MemRegion[] = [];
  for (let i = 0; i < n; i++) out.push(getRegion(d, 8 + i * PayloadSize.MEM_REGION, req));
  return out;
}
export function encodeMemoryTable(regions: readonly MemRegion[]): Uint8Array {
  const out = new Uint8Array(PayloadSize.MEM_TABLE_HEADER + regions.length * PayloadSize.MEM_REGION);
  const d = dv(out);
  d.setUint32(0, regions.length, true);
  regions.forEach((r, i) => setRegion(d, 8 + i * PayloadSize.MEM_REGION, r));
  return out;
}

/** ADD_MEM_REG / REM_MEM_REG: padding u64, then one region. */
export function decodeMemRegMsg(req: number, p: Uint8Array): MemRegion {
  expectSize(req, p, PayloadSize.MEM_REG_MSG);
  return getRegion(dv(p), 8, req);
}
export function encodeMemRegMsg(r: MemRegion): Uint8Array {
  const out = new Uint8Array(PayloadSize.MEM_REG_MSG);
  setRegion(dv(out), 8, r);
  return out;
}

// --- log, inflight, config, area, iotlb, device state --------------------------------------

export function decodeLog(req: number, p: Uint8Array): LogDesc {
  expectSize(req, p, PayloadSize.LOG);
  const d = dv(p);
  return { size: getU64(d, 0, 'log size', req), offset: getU64(d, 8, 'log offset', req) };
}
export function encodeLog(l: LogDesc): Uint8Array {
  const out = new Uint8Array(PayloadSize.LOG);
  const d = dv(out);
  setU64(d, 0, l.size);
  setU64(d, 8, l.offset);
  return out;
}

export function decodeInflight(req: number, p: Uint8Array): InflightDesc {
  expectSize(req, p, PayloadSize.INFLIGHT);
  const d = dv(p);
  return {
    mmapSize: getU64(d, 0, 'mmap size', req),
    mmapOffset: getU64(d, 8, 'mmap offset', req),
    numQueues: d.getUint16(16, true),
    queueSize: d.getUint16(18, true),
  };
}
export function encodeInflight(i: InflightDesc): Uint8Array {
  const out = new Uint8Array(PayloadSize.INFLIGHT);
  const d = dv(out);
  setU64(d, 0, i.mmapSize);
  setU64(d, 8, i.mmapOffset);
  d.setUint16(16, i.numQueues, true);
  d.setUint16(18, i.queueSize, true);
  return out;
}

/** GET/SET_CONFIG: 12-byte header and exactly `size` bytes (at most 256). */
export function decodeConfig(req: number, p: Uint8Array): ConfigMsg {
  if (p.length < PayloadSize.CONFIG_HEADER) {
    throw new VhostUserError(VhostUserFault.BAD_SIZE, `payload is ${p.length} bytes, below the 12-byte header`, req);
  }
  const d = dv(p);
  const offset = d.getUint32(0, true);
  const size = d.getUint32(4, true);
  const flags = d.getUint32(8, true);
  if (size > MAX_CONFIG_SIZE) throw new VhostUserError(VhostUserFault.BAD_VALUE, `config size ${size} above ${MAX_CONFIG_SIZE}`, req);
  expectSize(req, p, PayloadSize.CONFIG_HEADER + size);
  return { offset, size, flags, data: p.subarray(PayloadSize.CONFIG_HEADER) };
}
export function encodeConfig(c: ConfigMsg): Uint8Array {
  const out = new Uint8Array(PayloadSize.CONFIG_HEADER + c.data.length);
  const d = dv(out);
  d.setUint32(0, c.offset >>> 0, true);
  d.setUint32(4, c.data.length, true);
  d.setUint32(8, c.flags >>> 0, true);
  out.set(c.data, PayloadSize.CONFIG_HEADER);
  return out;
}

export function decodeVringArea(req: number, p: Uint8Array): VringArea {
  expectSize(req, p, PayloadSize.VRING_AREA);
  const d = dv(p);
  return { u64: getU64(d, 0, 'u64', req), size: getU64(d, 8, 'size', req), offset: getU64(d, 16, 'offset', req) };
}
export function encodeVringArea(a: VringArea): Uint8Array {
  const out = new Uint8Array(PayloadSize.VRING_AREA);
  const d = dv(out);
  setU64(d, 0, a.u64);
  setU64(d, 8, a.size);
  setU64(d, 16, a.offset);
  return out;
}

export function decodeIotlb(req: number, p: Uint8Array): IotlbMsg {
  expectSize(req, p, PayloadSize.IOTLB);
  const d = dv(p);
  return {
    iova: getU64(d, 0, 'iova', req),
    size: getU64(d, 8, 'size', req),
    userAddr: getU64(d, 16, 'user address', req),
    perm: d.getUint8(24),
    type: d.getUint8(25),
  };
}
export function encodeIotlb(m: IotlbMsg): Uint8Array {
  const out = new Uint8Array(PayloadSize.IOTLB);
  const d = dv(out);
  setU64(d, 0, m.iova);
  setU64(d, 8, m.size);
  setU64(d, 16, m.userAddr);
  d.setUint8(24, m.perm);
  d.setUint8(25, m.type);
  return out;
}

export function decodeDeviceState(req: number, p: Uint8Array): DeviceStateMsg {
  expectSize(req, p, PayloadSize.DEVICE_STATE);
  const d = dv(p);
  return { direction: d.getUint32(0, true), phase: d.getUint32(4, true) };
}
export function encodeDeviceState(m: DeviceStateMsg): Uint8Array {
  const out = new Uint8Array(PayloadSize.DEVICE_STATE);
  const d = dv(out);
  d.setUint32(0, m.direction >>> 0, true);
  d.setUint32(4, m.phase >>> 0, true);
  return out;
}

/**
 * The payload size rule of each front-end request: a fixed size, 'var' (checked by its
 * decoder), or absent for requests with no payload (size must be 0).
 */
export const REQUEST_PAYLOAD: ReadonlyMap<number, number | 'var' | 0> = new Map<number, number | 'var' | 0>([
  [FrontendReq.GET_FEATURES, 0],
  [FrontendReq.SET_FEATURES, PayloadSize.U64],
  [FrontendReq.SET_OWNER, 0],
  [FrontendReq.RESET_OWNER, 0],
  [FrontendReq.SET_MEM_TABLE, 'var'],
  [FrontendReq.SET_LOG_BASE, PayloadSize.LOG],
  [FrontendReq.SET_LOG_FD, 0],
  [FrontendReq.SET_VRING_NUM, PayloadSize.VRING_STATE],
  [FrontendReq.SET_VRING_ADDR, PayloadSize.VRING_ADDR],
  [FrontendReq.SET_VRING_BASE, PayloadSize.VRING_STATE],
  [FrontendReq.GET_VRING_BASE, PayloadSize.VRING_STATE],
  [FrontendReq.SET_VRING_KICK, PayloadSize.U64],
  [FrontendReq.SET_VRING_CALL, PayloadSize.U64],
  [FrontendReq.SET_VRING_ERR, PayloadSize.U64],
  [FrontendReq.GET_PROTOCOL_FEATURES, 0],
  [FrontendReq.SET_PROTOCOL_FEATURES, PayloadSize.U64],
  [FrontendReq.GET_QUEUE_NUM, 0],
  [FrontendReq.SET_VRING_ENABLE, PayloadSize.VRING_STATE],
  [FrontendReq.SEND_RARP, PayloadSize.U64],
  [FrontendReq.NET_SET_MTU, PayloadSize.U64],
  [FrontendReq.SET_BACKEND_REQ_FD, 0],
  [FrontendReq.IOTLB_MSG, PayloadSize.IOTLB],
  [FrontendReq.SET_VRING_ENDIAN, PayloadSize.VRING_STATE],
  [FrontendReq.GET_CONFIG, 'var'],
  [FrontendReq.SET_CONFIG, 'var'],
  [FrontendReq.CREATE_CRYPTO_SESSION, 'var'],
  [FrontendReq.CLOSE_CRYPTO_SESSION, PayloadSize.U64],
  [FrontendReq.POSTCOPY_ADVISE, 0],
  [FrontendReq.POSTCOPY_LISTEN, 0],
  [FrontendReq.POSTCOPY_END, 0],
  [FrontendReq.GET_INFLIGHT_FD, PayloadSize.INFLIGHT],
  [FrontendReq.SET_INFLIGHT_FD, PayloadSize.INFLIGHT],
  [FrontendReq.GPU_SET_SOCKET, 0],
  [FrontendReq.RESET_DEVICE, 0],
  [FrontendReq.VRING_KICK, PayloadSize.VRING_STATE],
  [FrontendReq.GET_MAX_MEM_SLOTS, 0],
  [FrontendReq.ADD_MEM_REG, PayloadSize.MEM_REG_MSG],
  [FrontendReq.REM_MEM_REG, PayloadSize.MEM_REG_MSG],
  [FrontendReq.SET_STATUS, PayloadSize.U64],
  [FrontendReq.GET_STATUS, 0],
  [FrontendReq.GET_SHARED_OBJECT, 16],
  [FrontendReq.SET_DEVICE_STATE_FD, PayloadSize.DEVICE_STATE],
  [FrontendReq.CHECK_DEVICE_STATE, 0],
]);

/**
 * Checks a request's payload size against its rule: UNKNOWN_REQUEST for a code the protocol
 * does not define, BAD_SIZE for a payload of the wrong size.
 */
export function checkRequestSize(request: number, size: number): void {
  const rule = REQUEST_PAYLOAD.get(request);
  if (rule === undefined) throw new VhostUserError(VhostUserFault.UNKNOWN_REQUEST, `request ${request} is not defined`, request);
  if (rule === 'var') return;
  if (size !== rule) throw new VhostUserError(VhostUserFault.BAD_SIZE, `payload is ${size} bytes, expected ${rule}`, request);
}
