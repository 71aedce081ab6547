/**
 * 5.10 Socket Device (virtio-vsock): queues, feature bits, configuration layout, the packet
 * header, operations, socket types, flags and events. Constants only, no logic.
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.10.2 Virtqueues. */
export const VSOCK_RXQ = 0;
/** 5.10.2: the transmit queue. */
export const VSOCK_TXQ = 1;
/** 5.10.2: the event queue. */
export const VSOCK_EVENTQ = 2;
/** 5.10.2: a vsock device has three queues. */
export const VSOCK_NUM_QUEUES = 3;

/** 5.10.3 Feature bits (masks). */
export const VsockF = {
  /** Stream socket type is supported. */
  STREAM: 1n << 0n,
  /** Seqpacket socket type is supported. */
  SEQPACKET: 1n << 1n,
  /** Stream socket type is not implied (device/vsock/1: the device SHOULD offer it). */
  NO_IMPLIED_STREAM: 1n << 2n,
} as const;

/** 5.10.4: struct virtio_vsock_config { le64 guest_cid; }. */
export const VSOCK_CONFIG_SIZE = 8;
/** struct virtio_vsock_config as a declarative layout: guest_cid, read-only. */
export const VSOCK_CONFIG_LAYOUT = defineConfigLayout(VSOCK_CONFIG_SIZE, [{ name: 'guest_cid', offset: 0, width: 8, feature: null, access: 'ro' }]);

/** 5.10.4: the well-known CID of the host. */
export const VSOCK_HOST_CID = 2;
/** 5.10.4: CIDs that cannot be a guest's (0, 1, the host's 2, 0xffffffff; 2^64-1 is beyond 32 bits). */
export function isReservedGuestCid(cid: number): boolean {
  return !(Number.isInteger(cid) && cid > VSOCK_HOST_CID && cid < 0xffff_ffff);
}

/** 5.10.6: struct virtio_vsock_hdr, byte offsets (le; the upper 32 bits of the CIDs are zero). */
export const VsockHdr = {
  SRC_CID: 0,
  DST_CID: 8,
  SRC_PORT: 16,
  DST_PORT: 20,
  LEN: 24,
  TYPE: 28,
  OP: 30,
  FLAGS: 32,
  BUF_ALLOC: 36,
  FWD_CNT: 40,
  SIZE: 44,
} as const;

/** 5.10.6: op. */
export const VsockOp = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;
export type VsockOp = (typeof VsockOp)[keyof typeof VsockOp];

/** 5.10.6.2 Addressing: type. */
export const VsockType = {
  STREAM: 1,
  SEQPACKET: 2,
} as const;

/** 5.10.6.5: SHUTDOWN flags (masks of bits 0 and 1). */
export const VsockShutdown = {
  /** The peer will not receive any more data. */
  RECEIVE: 1,
  /** The peer will not send any more data. */
  SEND: 2,
} as const;

/** 5.10.6.6.1: seqpacket RW flags. */
export const VsockSeq = {
  EOM: 1,
  EOR: 2,
} as const;

/** 5.10.6.7: struct virtio_vsock_event { le32 id; }. */
export const VSOCK_EVENT_SIZE = 4;
/** 5.10.6.7 virtio_vsock_event.id values. */
export const VsockEvent = {
  TRANSPORT_RESET: 0,
} as const;
