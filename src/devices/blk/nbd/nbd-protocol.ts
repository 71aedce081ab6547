/**
 * The NBD protocol's numbers (NetworkBlockDevice/nbd doc/proto.md): handshake magics, options,
 * option replies, info types, transmission flags, commands, command flags, reply magics and
 * structured reply chunk types, and the wire sizes of each fixed header. Constants only.
 * Everything on the wire is big-endian ("network byte order").
 */

/** "NBDMAGIC": the first 8 bytes a server sends. */
export const NBD_INIT_MAGIC_HI = 0x4e42444d;
export const NBD_INIT_MAGIC_LO = 0x41474943;
/** "IHAVEOPT": newstyle negotiation; also prefixes every client option. */
export const NBD_OPTS_MAGIC_HI = 0x49484156;
export const NBD_OPTS_MAGIC_LO = 0x454f5054;
/** Oldstyle negotiation's second magic (0x00420281861253), refused. */
export const NBD_OLDSTYLE_MAGIC_HI = 0x00004202;
/** Magic of every option reply: 0x0003e889045565a9. */
export const NBD_REP_MAGIC_HI = 0x0003e889;
export const NBD_REP_MAGIC_LO = 0x045565a9;

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server, 16 bits) and client flags (32 bits): same bits. */
export const NbdHandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

export const NbdOpt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
} as const;

/** Option reply types; errors have bit 31 set. */
export const NbdRep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x8000_0001,
  ERR_POLICY: 0x8000_0002,
  ERR_INVALID: 0x8000_0003,
  ERR_PLATFORM: 0x8000_0004,
  ERR_TLS_REQD: 0x8000_0005,
  ERR_UNKNOWN: 0x8000_0006,
  ERR_SHUTDOWN: 0x8000_0007,
  ERR_BLOCK_SIZE_REQD: 0x8000_0008,
  ERR_TOO_BIG: 0x8000_0009,
} as const;
export const NBD_REP_ERR_BIT = 0x8000_0000;

/** NBD_INFO_* types, in NBD_REP_INFO replies to NBD_OPT_GO / NBD_OPT_INFO. */
export const NbdInfo = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Transmission flags (16 bits), from NBD_INFO_EXPORT or the EXPORT_NAME reply. */
export const NbdFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const NbdCmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;
export type NbdCmd = (typeof NbdCmd)[keyof typeof NbdCmd];

export const NbdCmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
} as const;

export const NbdReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Structured reply chunk types; error chunks have bit 15 set. */
export const NbdReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;
export const NBD_REPLY_TYPE_ERR_BIT = 0x8000;

/** Error values (errno numbers as the protocol fixes them). */
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Request header: magic u32, flags u16, type u16, cookie u64, offset u64, length u32. */
export const NBD_REQUEST_SIZE = 28;
/** Simple reply: magic u32, error u32, cookie u64. */
export const NBD_SIMPLE_REPLY_SIZE = 16;
/** Structured reply chunk header: magic u32, flags u16, type u16, cookie u64, length u32. */
export const NBD_STRUCTURED_HEADER_SIZE = 20;
/** Option reply header: magic u64, option u32, type u32, length u32. */
export const NBD_OPT_REPLY_HEADER_SIZE = 20;

/** Strings (export names, messages) MUST be at most 4096 bytes. */
export const NBD_MAX_STRING = 4096;
/** Without NBD_INFO_BLOCK_SIZE a client keeps payloads at or below 32 MiB. */
export const NBD_DEFAULT_MAX_PAYLOAD = 32 << 20;
/** The IANA port. */
export const NBD_DEFAULT_PORT = 10809;

export function errnoName(errno: number): string {
  for (const [name, v] of Object.entries(NbdErrno)) if (v === errno) return name;
  return `errno ${errno}`;
}
