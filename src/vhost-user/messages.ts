/**
 * vhost-user wire constants and payload layouts (vhost-user.rst "Message Specification").
 * All numbers are in the machine's native byte order; virtio-ts runs on little-endian hosts
 * (x86-64, aarch64), so every layout below is read and written little-endian.
 */

/** Header: request u32, flags u32, size u32. */
export const HEADER_SIZE = 12;

/** Header flags: version in bits 0-1, REPLY bit 2, NEED_REPLY bit 3. */
export const HeaderFlag = {
  VERSION_MASK: 0x3,
  VERSION: 0x1,
  REPLY: 1 << 2,
  NEED_REPLY: 1 << 3,
} as const;

/** Requests sent by the front-end (the rst's "master message types"). */
export const FrontendReq = {
  NONE: 0,
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  /** SET_SLAVE_REQ_FD in the QEMU 7.2 text. */
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  /** Later revisions of the protocol (after QEMU 7.2). */
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
} as const;
export type FrontendReq = (typeof FrontendReq)[keyof typeof FrontendReq];

/** Requests sent by the back-end on the back-end channel (the rst's "slave message types"). */
export const BackendReq = {
  NONE: 0,
  IOTLB_MSG: 1,
  CONFIG_CHANGE_MSG: 2,
  VRING_HOST_NOTIFIER_MSG: 3,
  VRING_CALL: 4,
  VRING_ERR: 5,
  /**
   * 6 to 8: the QEMU 7.2 text names them FS_MAP, FS_UNMAP, FS_IO (virtio-fs DAX, never merged);
   * later revisions assign them to the shared-object messages below.
   */
  SHARED_OBJECT_ADD: 6,
  SHARED_OBJECT_REMOVE: 7,
  SHARED_OBJECT_LOOKUP: 8,
} as const;
export type BackendReq = (typeof BackendReq)[keyof typeof BackendReq];

/** Aliases of the 7.2 text for back-end requests 6 to 8. */
export const BackendReqFs = { FS_MAP: 6, FS_UNMAP: 7, FS_IO: 8 } as const;

/** Protocol feature bit numbers ("Protocol features"). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  /** SLAVE_REQ in the QEMU 7.2 text. */
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  /** SLAVE_SEND_FD in the QEMU 7.2 text. */
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  /** Later revisions. */
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
} as const;
export type ProtocolFeature = (typeof ProtocolFeature)[keyof typeof ProtocolFeature];

/** Protocol feature masks (bigint, like virtio feature sets). */
export const PF = Object.fromEntries(
  Object.entries(ProtocolFeature).map(([k, v]) => [k, 1n << BigInt(v)]),
) as { readonly [K in keyof typeof ProtocolFeature]: bigint };

/** Feature bit 30 of GET_FEATURES: the back-end supports GET/SET_PROTOCOL_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
/** Feature bit 26 (vhost): the back-end can log every write ("Migration"). */
export const VHOST_F_LOG_ALL = 26;
/** VHOST_USER_F_PROTOCOL_FEATURES (bit 30 of GET_FEATURES): protocol features may be negotiated. */
export const F_PROTOCOL_FEATURES = 1n << 30n;
/** VHOST_F_LOG_ALL (bit 26): the front-end can ask for dirty logging of all writes. */
export const F_LOG_ALL = 1n << 26n;

/** SET_VRING_KICK / CALL / ERR u64: bits 0-7 ring index, bit 8 "no fd" (polling). */
export const VRING_IDX_MASK = 0xff;
/** Largest ring index a vring message can name (8 bits in the kick/call/err u64). */
export const MAX_QUEUE_INDEX = 0xff;
/**
 * Bit 8 of a SET_VRING_KICK/CALL/ERR u64: no fd comes with the message (the ring is polled, or has
 * no fd).
 */
export const VRING_NOFD_MASK = 0x100;

/** SET_VRING_ADDR flags bit 0: log writes to the used ring at log_guest_addr. */
export const VHOST_VRING_F_LOG = 1;

/** Dirty log page size ("Migration"). */
export const VHOST_LOG_PAGE = 0x1000;

/** SET_MEM_TABLE carries at most 8 regions (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_MEM_REGIONS = 8;
/** Ancillary data carries at most 8 fds per message. */
export const MAX_FDS = 8;
/** GET/SET_CONFIG: VHOST_USER_MAX_CONFIG_SIZE. */
export const MAX_CONFIG_SIZE = 256;
/** Largest payload accepted (the largest fixed layout is 264 bytes; config 268). */
export const MAX_PAYLOAD_SIZE = 4096;

/** Payload sizes of the fixed layouts. */
export const PayloadSize = {
  U64: 8,
  VRING_STATE: 8,
  /** index u32, flags u32, desc, used, avail, log u64 (struct vhost_vring_addr). */
  VRING_ADDR: 40,
  MEM_REGION: 32,
  /** num_regions u32, padding u32. */
  MEM_TABLE_HEADER: 8,
  /** padding u64 + one region. */
  MEM_REG_MSG: 40,
  LOG: 16,
  /** iova, size, uaddr u64, perm u8, type u8, padded to 32 (struct vhost_iotlb_msg). */
  IOTLB: 32,
  /** offset, size, flags u32. */
  CONFIG_HEADER: 12,
  VRING_AREA: 24,
  /** mmap_size, mmap_offset u64, num_queues, queue_size u16, padded to 24 (C layout). */
  INFLIGHT: 24,
  /** direction u32, phase u32 (SET_DEVICE_STATE_FD). */
  DEVICE_STATE: 8,
} as const;

/** GET/SET_CONFIG flags. */
export const ConfigFlag = { WRITABLE: 0, MIGRATION: 1 } as const;

/** IOTLB message types and permissions. */
export const IotlbType = { MISS: 1, UPDATE: 2, INVALIDATE: 3, ACCESS_FAIL: 4 } as const;
/** VHOST_ACCESS_* permissions of an IOTLB entry. */
export const IotlbPerm = { NONE: 0, RO: 1, WO: 2, RW: 3 } as const;

/** SET_DEVICE_STATE_FD direction and phase. */
export const DeviceStateDirection = { SAVE: 0, LOAD: 1 } as const;
/** The device state transfer phases (VHOST_USER_TRANSFER_STATE_PHASE_*). */
export const DeviceStatePhase = { STOPPED: 0 } as const;

/**
 * The body of SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE and SET_VRING_ENABLE (struct
 * vhost_vring_state).
 */
export interface VringState {
  index: number;
  num: number;
}

/** The body of VHOST_USER_SET_VRING_ADDR (struct vhost_vring_addr). */
export interface VringAddr {
  /** The ring. */
  index: number;
  /** VHOST_VRING_F_LOG: log used ring writes. */
  flags: number;
  /** Front-end user addresses (or IOVAs with ACCESS_PLATFORM). */
  descUser: number;
  /** Front-end address of the used ring (split) or device area (packed). */
  usedUser: number;
  /** Front-end address of the available ring (split) or driver area (packed). */
  availUser: number;
  /** Guest physical address of the used ring for dirty logging. */
  logGuest: number;
}

/** One region of a memory table (VhostUserMemoryRegion). */
export interface MemRegion {
  /** Guest physical address of the region. */
  guestAddr: number;
  /** Size in bytes. */
  size: number;
  /** The front-end's virtual address of it (ring addresses come in this space). */
  userAddr: number;
  /** Offset of the region in the fd that comes with it. */
  mmapOffset: number;
}

/** The body of SET_LOG_BASE: the dirty log area's size and offset in its fd. */
export interface LogDesc {
  size: number;
  offset: number;
}

/**
 * The body of GET_INFLIGHT_FD / SET_INFLIGHT_FD: the inflight area's mmap size and offset, and its
 * geometry.
 */
export interface InflightDesc {
  /** Size of the inflight area. */
  mmapSize: number;
  /** Offset of the area in the fd. */
  mmapOffset: number;
  /** Queues the area covers. */
  numQueues: number;
  /** Ring size each queue's region is laid out for. */
  queueSize: number;
}

/** The body of GET_CONFIG / SET_CONFIG. */
export interface ConfigMsg {
  /** Offset in the device config. */
  offset: number;
  /** Bytes of config. */
  size: number;
  /** VHOST_SET_CONFIG_TYPE_* (0: from the front-end, 1: migration). */
  flags: number;
  /** `size` bytes (empty for a GET_CONFIG error reply). */
  data: Uint8Array;
}

/** The body of VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG: a ring's host notifier area. */
export interface VringArea {
  /** Ring index in bits 0-7, bit 8 "no fd". */
  u64: number;
  size: number;
  offset: number;
}

/** The body of VHOST_USER_IOTLB_MSG (struct vhost_iotlb_msg). */
export interface IotlbMsg {
  iova: number;
  size: number;
  userAddr: number;
  perm: number;
  type: number;
}

/** The body of SET_DEVICE_STATE_FD: transfer direction and phase. */
export interface DeviceStateMsg {
  direction: number;
  phase: number;
}

/** A framed message: header fields, payload bytes and the fds that came with it. */
export interface VhostUserMessage {
  /** The request number (FrontendReq or BackendReq). */
  request: number;
  /** The header flags (version, REPLY, NEED_REPLY). */
  flags: number;
  /** The message body. */
  payload: Uint8Array;
  /**
   * Received fds, owned by whoever holds the message. A handler that keeps one replaces it with
   * -1 in this array; the dispatcher closes whatever is left.
   */
  fds: number[];
}

const FRONTEND_NAMES = new Map<number, string>(Object.entries(FrontendReq).map(([k, v]) => [v, k]));

/**
 * The FrontendReq name of request number `req` (`SET_MEM_TABLE`, ...), or `UNKNOWN(req)`, for logs.
 */
export function frontendReqName(req: number): string {
  return FRONTEND_NAMES.get(req) ?? `UNKNOWN(${req})`;
}
