/**
 * 5.23 RTC Device: feature bits, queues, message types, statuses, clock types, smearing
 * variants, hardware counters, flags and the request/response/notification sizes and offsets.
 * Constants only, no logic.
 */
import { bit } from './features.js';

/** 5.23.3 Feature bits (bit numbers). */
export const RtcFeatureBit = {
  /** Device supports alarm (and the alarmq exists). */
  ALARM: 0,
} as const;
/** 5.23.3 feature bits as masks (bigint). */
export const RtcF = { ALARM: bit(RtcFeatureBit.ALARM) } as const;
/** Every feature bit an RTC device can offer. */
export const RTC_FEATURES = RtcF.ALARM;

/** 5.23.2 Virtqueues (the alarmq only with ALARM). */
export const RtcQueue = {
  REQUEST: 0,
  ALARM: 1,
} as const;

/** 5.23.4: no configuration space. */
export const RTC_CONFIG_SIZE = 0;

/** 5.23.6 message types (msg_type). */
export const RtcMsg = {
  READ: 0x0001,
  READ_CROSS: 0x0002,
  CFG: 0x1000,
  CLOCK_CAP: 0x1001,
  CROSS_CAP: 0x1002,
  READ_ALARM: 0x1003,
  SET_ALARM: 0x1004,
  SET_ALARM_ENABLED: 0x1005,
  /** alarmq notification. */
  NOTIF_ALARM: 0x2000,
} as const;
export type RtcMsg = (typeof RtcMsg)[keyof typeof RtcMsg];

/** 5.23.6 response status. */
export const RtcStatus = {
  OK: 0,
  EOPNOTSUPP: 2,
  ENODEV: 3,
  EINVAL: 4,
  EIO: 5,
} as const;
export type RtcStatus = (typeof RtcStatus)[keyof typeof RtcStatus];

/** 5.23.6.1.1 clock types. */
export const RtcClockType = {
  UTC: 0,
  TAI: 1,
  MONOTONIC: 2,
  UTC_SMEARED: 3,
  UTC_MAYBE_SMEARED: 4,
} as const;
export type RtcClockType = (typeof RtcClockType)[keyof typeof RtcClockType];

/** 5.23.6.1.2 smearing variants. */
export const RtcSmear = {
  UNSPECIFIED: 0,
  NOON_LINEAR: 1,
  UTC_SLS: 2,
} as const;
export type RtcSmear = (typeof RtcSmear)[keyof typeof RtcSmear];

/** 5.23.6.1.3 hardware counters. */
export const RtcCounter = {
  ARM_VCT: 0,
  X86_TSC: 1,
  INVALID: 0xff,
} as const;
/** Implementation-specific hardware counter ids: 0xF0..0xFE. */
export const RTC_COUNTER_IMPL_FIRST = 0xf0;
/** The last implementation-specific hardware counter id. */
export const RTC_COUNTER_IMPL_LAST = 0xfe;

/** Flags: CLOCK_CAP flags, CROSS_CAP flags, alarm flags (each in its own field). */
export const RtcFlag = {
  /** virtio_rtc_resp_clock_cap.flags: the clock supports an alarm (with ALARM negotiated). */
  ALARM_CAP: 1 << 0,
  /** virtio_rtc_resp_cross_cap.flags: cross-timestamping is supported. */
  CROSS_CAP: 1 << 0,
  /** read_alarm / set_alarm / set_alarm_enabled flags. */
  ALARM_ENABLED: 1 << 0,
} as const;

/** Common headers (8 bytes each): request msg_type at 0; response status at 0. */
export const RTC_HEAD_SIZE = 8;

/** Offsets of the request fields after the head (5.23.6.2 to 5.23.6.4.1). */
export const RtcReq = {
  /** clock_id of READ, READ_CROSS, CLOCK_CAP, CROSS_CAP, READ_ALARM, SET_ALARM_ENABLED. */
  CLOCK_ID: 8,
  /** hw_counter of READ_CROSS and CROSS_CAP. */
  HW_COUNTER: 10,
  /** flags of SET_ALARM_ENABLED. */
  ENABLED_FLAGS: 10,
  /** SET_ALARM: le64 alarm_time, le16 clock_id, u8 flags. */
  SET_ALARM_TIME: 8,
  SET_ALARM_CLOCK_ID: 16,
  SET_ALARM_FLAGS: 18,
} as const;

/** Offsets of the response fields after the head. */
export const RtcResp = {
  STATUS: 0,
  /** CFG: le16 num_clocks. */
  NUM_CLOCKS: 8,
  /** CLOCK_CAP: u8 type, u8 leap_second_smearing, u8 flags. */
  CLOCK_TYPE: 8,
  SMEARING: 9,
  CLOCK_FLAGS: 10,
  /** CROSS_CAP: u8 flags. */
  CROSS_FLAGS: 8,
  /** READ, READ_CROSS: le64 clock_reading; READ_CROSS: le64 counter_cycles. */
  CLOCK_READING: 8,
  COUNTER_CYCLES: 16,
  /** READ_ALARM: le64 alarm_time, u8 flags. */
  ALARM_TIME: 8,
  ALARM_FLAGS: 16,
} as const;

/** struct virtio_rtc_notif_alarm: le16 msg_type, reserved[6], le16 clock_id, reserved[6]. */
export const RtcNotif = {
  MSG_TYPE: 0,
  CLOCK_ID: 8,
  SIZE: 16,
} as const;

/** Request and response sizes by message type (5.23.6). */
export const RTC_MESSAGE_SIZES: Readonly<
  Record<
    number,
    {
      /** Bytes of the driver's request (header included) on the requestq. */
      readonly request: number;
      /** Bytes the device writes back (response header included). */
      readonly response: number;
    }
  >
> = {
  [RtcMsg.READ]: { request: 16, response: 16 },
  [RtcMsg.READ_CROSS]: { request: 16, response: 24 },
  [RtcMsg.CFG]: { request: 8, response: 16 },
  [RtcMsg.CLOCK_CAP]: { request: 16, response: 16 },
  [RtcMsg.CROSS_CAP]: { request: 16, response: 16 },
  [RtcMsg.READ_ALARM]: { request: 16, response: 24 },
  [RtcMsg.SET_ALARM]: { request: 24, response: 8 },
  [RtcMsg.SET_ALARM_ENABLED]: { request: 16, response: 8 },
};
