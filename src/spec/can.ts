/**
 * 5.20 CAN Device: virtqueues, feature bits, configuration layout, message types, results,
 * frame flags and the layout of the tx / rx / control messages. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.20.2 Virtqueues. */
export const CanQueue = {
  TXQ: 0,
  RXQ: 1,
  CONTROLQ: 2,
} as const;

/** 5.20.3 Feature bits (bit numbers). */
export const CanFeatureBit = {
  /** Classic CAN frames (payload up to 8 bytes). */
  CAN_CLASSIC: 0,
  /** CAN FD frames (payload up to 64 bytes). */
  CAN_FD: 1,
  /** RTR frames (classic CAN only; requires CAN_CLASSIC). */
  RTR_FRAMES: 2,
  /** Tx requests are used only once the frame was transmitted on the bus. */
  LATE_TX_ACK: 3,
} as const;
/** 5.20.3 feature bits as masks (bigint), from CanFeatureBit. */
export const CanF = {
  CAN_CLASSIC: bit(CanFeatureBit.CAN_CLASSIC),
  CAN_FD: bit(CanFeatureBit.CAN_FD),
  RTR_FRAMES: bit(CanFeatureBit.RTR_FRAMES),
  LATE_TX_ACK: bit(CanFeatureBit.LATE_TX_ACK),
} as const;
/** Every device-type feature bit of the chapter. */
export const CAN_FEATURES = CanF.CAN_CLASSIC | CanF.CAN_FD | CanF.RTR_FRAMES | CanF.LATE_TX_ACK;

/** 5.20.4 struct virtio_can_config: le16 status (always present, driver-read-only). */
export const CanConfig = { SIZE: 2, STATUS: 0 } as const;
/** struct virtio_can_config as a declarative layout: status, always present, read-only. */
export const CAN_CONFIG_LAYOUT = defineConfigLayout(CanConfig.SIZE, [{ name: 'status', offset: CanConfig.STATUS, width: 2, feature: null, access: 'ro' }] as const);
/** VIRTIO_CAN_S_CTRL_BUSOFF: the controller went from started to stopped on a bus-off. */
export const CAN_S_CTRL_BUSOFF = 1;

/** 5.20.6 results (any other value is treated like NOT_OK). */
export const CanResult = { OK: 0, NOT_OK: 1 } as const;

/** Message types (msg_type). */
export const CanMsgType = {
  TX: 0x0001,
  RX: 0x0101,
  SET_CTRL_MODE_START: 0x0201,
  SET_CTRL_MODE_STOP: 0x0202,
} as const;

/** Frame flags (struct virtio_can_tx_out / virtio_can_rx flags). */
export const CanFlags = {
  RTR: 0x2000,
  FD: 0x4000,
  EXTENDED: 0x8000,
} as const;
/** Every defined flag bit (any other bit makes the frame unsupported, 5.20.6.2). */
export const CAN_FLAGS_DEFINED = CanFlags.RTR | CanFlags.FD | CanFlags.EXTENDED;

/** struct virtio_can_tx_out / virtio_can_rx: a 16-byte header, then sdu[length]. */
export const CanFrameLayout = {
  HEADER: 16,
  MSG_TYPE: 0,
  LENGTH: 2,
  RESERVED_CLASSIC_DLC: 4,
  PADDING: 5,
  RESERVED_XL_PRIORITY: 6,
  FLAGS: 8,
  CAN_ID: 12,
  SDU: 16,
} as const;
/** struct virtio_can_control_out (le16 msg_type) and the one-byte results (control_in, tx_in). */
export const CAN_CONTROL_OUT_SIZE = 2;
/** Size of the one-byte results (control_in.result, tx_in.result). */
export const CAN_RESULT_SIZE = 1;

/** Largest payloads: classic CAN 8, CAN FD 64. */
export const CAN_CLASSIC_MAX_LEN = 8;
/** The largest CAN FD payload, 64 bytes. */
export const CAN_FD_MAX_LEN = 64;
/** Identifier ranges: standard 11 bits (CAN 2.0A), extended 29 bits (CAN 2.0B). */
export const CAN_STD_ID_MAX = 0x7ff;
/** The largest extended (29-bit) identifier. */
export const CAN_EXT_ID_MAX = 0x1fffffff;

/** CAN FD payload lengths (DLC 0..15 -> 0..8, 12, 16, 20, 24, 32, 48, 64). */
export const CAN_FD_LENGTHS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

/** Whether `len` is a payload length a frame of this kind can carry. */
export function canLengthValid(len: number, fd: boolean): boolean {
  return fd ? CAN_FD_LENGTHS.includes(len) : len >= 0 && len <= CAN_CLASSIC_MAX_LEN;
}
