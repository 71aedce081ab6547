/**
 * 5.6 SCSI Host Device: feature bits, virtqueue numbering, configuration layout, the request,
 * control and event structures with their codes, and the few SCSI (SAM/SPC/SBC) numbers both
 * sides use: operation codes, status, sense keys and additional sense codes. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.6.3 Feature bits (bit numbers). */
export const ScsiFeatureBit = {
  /** A single request can include both device-readable and device-writable data buffers. */
  INOUT: 0,
  /** The device reports hot-plug and hot-unplug events for LUNs and targets. */
  HOTPLUG: 1,
  /** The device reports LUN parameter changes (VIRTIO_SCSI_T_PARAM_CHANGE). */
  CHANGE: 2,
  /** The request header has the T10 protection information fields. */
  T10_PI: 3,
} as const;

/** 5.6.3 Feature bits as masks. */
export const ScsiF = {
  INOUT: bit(ScsiFeatureBit.INOUT),
  HOTPLUG: bit(ScsiFeatureBit.HOTPLUG),
  CHANGE: bit(ScsiFeatureBit.CHANGE),
  T10_PI: bit(ScsiFeatureBit.T10_PI),
} as const;

/** 5.6.2 Virtqueues: controlq, eventq, then the request queues. */
export const ScsiQueue = {
  CONTROLQ: 0,
  EVENTQ: 1,
  /** The first request queue; request queue k is REQUESTQ + k. */
  REQUESTQ: 2,
} as const;

/** 5.6.4 defaults the device writes (device/scsi/1: restored on reset). */
export const SCSI_DEFAULT_SENSE_SIZE = 96;
/** 5.6.4: the default cdb_size (32 bytes). */
export const SCSI_DEFAULT_CDB_SIZE = 32;

/** 5.6.4 struct virtio_scsi_config (36 bytes). */
export const ScsiConfig = {
  SIZE: 36,
  NUM_QUEUES: 0,
  SEG_MAX: 4,
  MAX_SECTORS: 8,
  CMD_PER_LUN: 12,
  EVENT_INFO_SIZE: 16,
  SENSE_SIZE: 20,
  CDB_SIZE: 24,
  MAX_CHANNEL: 28,
  MAX_TARGET: 30,
  MAX_LUN: 32,
} as const;

/** 5.6.4: every field always exists; the driver may write sense_size and cdb_size only (driver/scsi/1). */
export const SCSI_CONFIG_LAYOUT = defineConfigLayout(ScsiConfig.SIZE, [
  { name: 'numQueues', offset: ScsiConfig.NUM_QUEUES, width: 4, feature: null, access: 'ro' },
  { name: 'segMax', offset: ScsiConfig.SEG_MAX, width: 4, feature: null, access: 'ro' },
  { name: 'maxSectors', offset: ScsiConfig.MAX_SECTORS, width: 4, feature: null, access: 'ro' },
  { name: 'cmdPerLun', offset: ScsiConfig.CMD_PER_LUN, width: 4, feature: null, access: 'ro' },
  { name: 'eventInfoSize', offset: ScsiConfig.EVENT_INFO_SIZE, width: 4, feature: null, access: 'ro' },
  { name: 'senseSize', offset: ScsiConfig.SENSE_SIZE, width: 4, feature: null, access: 'rw' },
  { name: 'cdbSize', offset: ScsiConfig.CDB_SIZE, width: 4, feature: null, access: 'rw' },
  { name: 'maxChannel', offset: ScsiConfig.MAX_CHANNEL, width: 2, feature: null, access: 'ro' },
  { name: 'maxTarget', offset: ScsiConfig.MAX_TARGET, width: 2, feature: null, access: 'ro' },
  { name: 'maxLun', offset: ScsiConfig.MAX_LUN, width: 4, feature: null, access: 'ro' },
] as const);
/** The field names of SCSI_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type ScsiConfigField = (typeof SCSI_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.6.6.1 struct virtio_scsi_req_cmd, device-readable part (without T10_PI): then cdb[cdb_size]. */
export const ScsiCmdReq = {
  LUN: 0,
  ID: 8,
  TASK_ATTR: 16,
  PRIO: 17,
  CRN: 18,
  CDB: 19,
  /** Bytes before the CDB. */
  HEADER: 19,
} as const;

/** 5.6.6.1 struct virtio_scsi_req_cmd, device-writable part: then sense[sense_size], then datain. */
export const ScsiCmdResp = {
  SENSE_LEN: 0,
  RESIDUAL: 4,
  STATUS_QUALIFIER: 8,
  STATUS: 10,
  RESPONSE: 11,
  SENSE: 12,
  /** Bytes before the sense data. */
  HEADER: 12,
} as const;

/** 5.6.6.1 and 5.6.6.2 response values. */
export const ScsiResponse = {
  OK: 0,
  OVERRUN: 1,
  ABORTED: 2,
  BAD_TARGET: 3,
  RESET: 4,
  BUSY: 5,
  TRANSPORT_FAILURE: 6,
  TARGET_FAILURE: 7,
  NEXUS_FAILURE: 8,
  FAILURE: 9,
  /** TMF: the function completed (same value as OK). */
  FUNCTION_COMPLETE: 0,
  FUNCTION_SUCCEEDED: 10,
  FUNCTION_REJECTED: 11,
  INCORRECT_LUN: 12,
} as const;

/** 5.6.6.1 task_attr values. */
export const ScsiTaskAttr = {
  SIMPLE: 0,
  ORDERED: 1,
  HEAD: 2,
  ACA: 3,
} as const;

/** 5.6.6.2 controlq request types. */
export const ScsiCtrlType = {
  TMF: 0,
  AN_QUERY: 1,
  AN_SUBSCRIBE: 2,
} as const;

/** 5.6.6.2 task management function subtypes. */
export const ScsiTmf = {
  ABORT_TASK: 0,
  ABORT_TASK_SET: 1,
  CLEAR_ACA: 2,
  CLEAR_TASK_SET: 3,
  I_T_NEXUS_RESET: 4,
  LOGICAL_UNIT_RESET: 5,
  QUERY_TASK: 6,
  QUERY_TASK_SET: 7,
} as const;

/** 5.6.6.2 struct virtio_scsi_ctrl_tmf: readable le32 type, le32 subtype, u8 lun[8], le64 id; writable u8 response. */
export const ScsiCtrlTmf = {
  TYPE: 0,
  SUBTYPE: 4,
  LUN: 8,
  ID: 16,
  /** Readable bytes. */
  SIZE: 24,
  /** Writable bytes. */
  RESPONSE_SIZE: 1,
} as const;

/** 5.6.6.2 struct virtio_scsi_ctrl_an: readable le32 type, u8 lun[8], le32 event_requested; writable le32 event_actual, u8 response. */
export const ScsiCtrlAn = {
  TYPE: 0,
  LUN: 4,
  EVENT_REQUESTED: 12,
  SIZE: 16,
  EVENT_ACTUAL: 0,
  RESPONSE: 4,
  RESPONSE_SIZE: 5,
} as const;

/** 5.6.6.2 asynchronous notification event bits. */
export const ScsiAsyncEvent = {
  OPERATIONAL_CHANGE: 2,
  POWER_MGMT: 4,
  EXTERNAL_REQUEST: 8,
  MEDIA_CHANGE: 16,
  MULTI_HOST: 32,
  DEVICE_BUSY: 64,
} as const;

/** 5.6.6.3 struct virtio_scsi_event (16 bytes): le32 event, u8 lun[8], le32 reason. */
export const ScsiEventLayout = {
  EVENT: 0,
  LUN: 4,
  REASON: 12,
  SIZE: 16,
} as const;

/** 5.6.6.3 event types, and the flag of lost events (bit 31). */
export const ScsiEventType = {
  NO_EVENT: 0,
  TRANSPORT_RESET: 1,
  ASYNC_NOTIFY: 2,
  PARAM_CHANGE: 3,
} as const;
/** 5.6.6.3 VIRTIO_SCSI_T_EVENTS_MISSED: set in an event's type when events were lost. */
export const SCSI_T_EVENTS_MISSED = 0x8000_0000;

/** 5.6.6.3 transport reset reasons. */
export const ScsiResetReason = {
  HARD: 0,
  RESCAN: 1,
  REMOVED: 2,
} as const;

/** 5.6.6.1: the REPORT LUNS well-known logical unit address (0xC1, 0x01, six zero bytes). */
export const SCSI_REPORT_LUNS_WLUN = 0xc101;
/** 5.6.6.1: `lun` byte 0 of a target and logical unit address. */
export const SCSI_LUN_ADDRESS_FIRST_BYTE = 1;
/** 5.6.6.1: the single level LUN structure holds up to 16384 LUNs per target. */
export const SCSI_MAX_LUN_ID = 16383;

/** SAM status codes (the `status` byte, device/scsi/5). */
export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  ACA_ACTIVE: 0x30,
  TASK_ABORTED: 0x40,
} as const;

/** SPC sense keys. */
export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
} as const;

/** SPC additional sense code and qualifier, as (asc << 8) | ascq. */
export const Asc = {
  NO_ADDITIONAL_SENSE: 0x0000,
  PARAMETER_LIST_LENGTH_ERROR: 0x1a00,
  INVALID_COMMAND_OPERATION_CODE: 0x2000,
  LBA_OUT_OF_RANGE: 0x2100,
  INVALID_FIELD_IN_CDB: 0x2400,
  LOGICAL_UNIT_NOT_SUPPORTED: 0x2500,
  INVALID_FIELD_IN_PARAMETER_LIST: 0x2600,
  WRITE_PROTECTED: 0x2700,
  POWER_ON_RESET: 0x2900,
  BUS_DEVICE_RESET: 0x2903,
  I_T_NEXUS_LOSS: 0x2907,
  CAPACITY_DATA_HAS_CHANGED: 0x2a09,
  SAVING_PARAMETERS_NOT_SUPPORTED: 0x3900,
  REPORTED_LUNS_DATA_HAS_CHANGED: 0x3f0e,
  INTERNAL_TARGET_FAILURE: 0x4400,
  WRITE_ERROR: 0x0c00,
  UNRECOVERED_READ_ERROR: 0x1100,
} as const;

/** Fixed-format sense data (SPC 4.5.3): 18 bytes with response code 0x70. */
export const FixedSense = {
  SIZE: 18,
  RESPONSE_CODE: 0x70,
  KEY: 2,
  ADDITIONAL_LENGTH: 7,
  ASC: 12,
  ASCQ: 13,
} as const;

/** SCSI operation codes the device serves (SPC-4, SBC-3). */
export const ScsiOp = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  SYNCHRONIZE_CACHE_10: 0x35,
  UNMAP: 0x42,
  MODE_SENSE_10: 0x5a,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
} as const;

/** SERVICE ACTION IN (16) service action of READ CAPACITY (16). */
export const SAI_READ_CAPACITY_16 = 0x10;

/** INQUIRY vital product data pages the device serves (SPC-4 7.8, SBC-3 6.6). */
export const VpdPage = {
  SUPPORTED_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
} as const;

/** Mode pages (SPC-4 7.5, SBC-3 6.5). */
export const ModePage = {
  CACHING: 0x08,
  CONTROL: 0x0a,
  ALL: 0x3f,
} as const;

/** The CDB length of an operation code by its group (SPC-4 4.2.5.1), 0 for variable/vendor groups. */
export function cdbLength(opcode: number): number {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

/** The LINK bit of the CONTROL byte (SAM-5, obsolete): a linked command. */
export const CDB_CONTROL_LINK = 0x01;
