/**
 * The multi-process QEMU ("x-remote") wire format, as QEMU 7.2 speaks it (hw/remote/,
 * include/hw/remote/mpqemu-link.h): a 16-byte header (int32 cmd, 4 bytes of padding, u64
 * payload size) then the payload, little-endian (x86 host order), file descriptors in
 * SCM_RIGHTS with the header. Every access request is answered by one RET message carrying a
 * u64; SYNC_SYSMEM and SET_IRQFD are not answered.
 *
 * Encoders write into a caller's buffer and return the message length (no allocation per
 * register access); numbers stay `number` (u64 fields as two 32-bit halves, no BigInt).
 */
import { hi32, join64, lo32 } from '../bus.js';
import { XRemoteError, XRemoteFault } from './x-remote-error.js';

/** MPQemuCmd. */
export const XRemoteCmd = {
  SYNC_SYSMEM: 0,
  RET: 1,
  PCI_CFGWRITE: 2,
  PCI_CFGREAD: 3,
  BAR_WRITE: 4,
  BAR_READ: 5,
  SET_IRQFD: 6,
  DEVICE_RESET: 7,
} as const;
export type XRemoteCmd = (typeof XRemoteCmd)[keyof typeof XRemoteCmd];

/** Bytes of the message header (int32 cmd, 4 bytes padding, u64 payload size) before every payload. */
export const HEADER_SIZE = 16;
/** PciConfDataMsg: u32 addr, u32 val, int len. */
export const CONFIG_ACCESS_SIZE = 12;
/** BarAccessMsg: u64 addr, u64 val, unsigned size, bool memory (padded to 8). */
export const BAR_ACCESS_SIZE = 24;
/** SyncSysmemMsg: gpas[8], sizes[8], offsets[8], all 64-bit. */
export const SYNC_SYSMEM_SIZE = 192;
/** REMOTE_MAX_FDS; QEMU's mpqemu_msg_valid refuses a message with this many fds or more. */
export const MAX_FDS = 8;
/** Most RAM regions one SYNC_SYSMEM can carry: one memfd per region, and fewer than `MAX_FDS` fds per message. */
export const MAX_SYSMEM_REGIONS = MAX_FDS - 1;
/** Payload bytes of a RET reply: one little-endian u64 (the read value, or 0 / an error for writes). */
export const REPLY_SIZE = 8;
/** Largest message this codec produces (a SYNC_SYSMEM). */
export const MAX_MESSAGE = HEADER_SIZE + SYNC_SYSMEM_SIZE;
/** PCI config space of a conventional PCI function: QEMU refuses addr + 4 beyond it. */
export const PCI_CONFIG_SIZE = 256;

/** One shared RAM region: `size` bytes of the memfd from `offset`, at guest address `gpa`. */
export interface SysmemRegion {
  /** Guest physical address where the region starts. */
  readonly gpa: number;
  /** Length of the region in bytes. */
  readonly size: number;
  /** Byte offset of the region's first byte within its memfd. */
  readonly offset: number;
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function putU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, lo32(v), true);
  dv.setUint32(at + 4, hi32(v), true);
}

function checkU64(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `${what} ${v} is not a non-negative safe integer`);
}

function header(dv: DataView, cmd: number, size: number): void {
  dv.setInt32(0, cmd, true);
  dv.setUint32(4, 0, true);
  dv.setUint32(8, size, true);
  dv.setUint32(12, 0, true);
}

/** PCI_CFGREAD / PCI_CFGWRITE of `len` (1, 2 or 4) bytes at config offset `addr`. */
export function encodeConfigAccess(buf: Uint8Array, write: boolean, addr: number, len: number, value = 0): number {
  const dv = view(buf);
  header(dv, write ? XRemoteCmd.PCI_CFGWRITE : XRemoteCmd.PCI_CFGREAD, CONFIG_ACCESS_SIZE);
  dv.setUint32(16, addr >>> 0, true);
  dv.setUint32(20, write ? value >>> 0 : 0, true);
  dv.setInt32(24, len, true);
  return HEADER_SIZE + CONFIG_ACCESS_SIZE;
}

/**
 * BAR_READ / BAR_WRITE of `size` bytes at bus address `addr`, in the memory (`memory`) or I/O
 * address space of the remote machine.
 */
export function encodeBarAccess(buf: Uint8Array, write: boolean, addr: number, size: number, memory: boolean, value = 0): number {
  const dv = view(buf);
  header(dv, write ? XRemoteCmd.BAR_WRITE : XRemoteCmd.BAR_READ, BAR_ACCESS_SIZE);
  putU64(dv, 16, addr);
  putU64(dv, 24, write ? value : 0);
  dv.setUint32(32, size, true);
  dv.setUint32(36, memory ? 1 : 0, true); // bool then padding
  return HEADER_SIZE + BAR_ACCESS_SIZE;
}

/** SYNC_SYSMEM: region i is backed by the i-th fd sent with the message. */
export function encodeSyncSysmem(buf: Uint8Array, regions: readonly SysmemRegion[]): number {
  if (regions.length === 0 || regions.length > MAX_SYSMEM_REGIONS) {
    throw new XRemoteError(XRemoteFault.BAD_REQUEST, `SYNC_SYSMEM takes 1 to ${MAX_SYSMEM_REGIONS} regions, not ${regions.length}`);
  }
  const dv = view(buf);
  header(dv, XRemoteCmd.SYNC_SYSMEM, SYNC_SYSMEM_SIZE);
  buf.fill(0, HEADER_SIZE, HEADER_SIZE + SYNC_SYSMEM_SIZE);
  regions.forEach((r, i) => {
    checkU64(r.gpa, 'gpa');
    checkU64(r.size, 'size');
    checkU64(r.offset, 'offset');
    putU64(dv, 16 + 8 * i, r.gpa);
    putU64(dv, 16 + 64 + 8 * i, r.size);
    putU64(dv, 16 + 128 + 8 * i, r.offset);
  });
  return HEADER_SIZE + SYNC_SYSMEM_SIZE;
}

/** SET_IRQFD (the interrupt and resample eventfds travel as fds) and DEVICE_RESET: header only. */
export function encodeHeaderOnly(buf: Uint8Array, cmd: typeof XRemoteCmd.SET_IRQFD | typeof XRemoteCmd.DEVICE_RESET): number {
  header(view(buf), cmd, 0);
  return HEADER_SIZE;
}

/** A RET message (what the device side sends; used by tests and fake peers). */
export function encodeReply(buf: Uint8Array, lo: number, hi = 0): number {
  const dv = view(buf);
  header(dv, XRemoteCmd.RET, REPLY_SIZE);
  dv.setUint32(16, lo >>> 0, true);
  dv.setUint32(20, hi >>> 0, true);
  return HEADER_SIZE + REPLY_SIZE;
}

/**
 * Checks a received reply header and returns its payload size (0 or 8). `fds` is how many
 * descriptors came with it (a reply carries none).
 */
export function decodeReplyHeader(buf: Uint8Array, fds: number): number {
  if (buf.length < HEADER_SIZE) throw new XRemoteError(XRemoteFault.PEER_CLOSED, `reply header of ${buf.length} bytes`);
  const dv = view(buf);
  const cmd = dv.getInt32(0, true);
  if (cmd !== XRemoteCmd.RET) throw new XRemoteError(XRemoteFault.BAD_COMMAND, `reply command ${cmd}, expected RET (${XRemoteCmd.RET})`);
  const sizeHi = dv.getUint32(12, true);
  const size = dv.getUint32(8, true);
  if (sizeHi !== 0 || (size !== 0 && size !== REPLY_SIZE)) {
    throw new XRemoteError(XRemoteFault.BAD_SIZE, `reply payload of ${sizeHi * 2 ** 32 + size} bytes (0 or ${REPLY_SIZE} expected)`);
  }
  if (fds !== 0) throw new XRemoteError(XRemoteFault.UNEXPECTED_FDS, `${fds} fds came with a reply`);
  return size;
}

/** The two 32-bit halves of a reply's u64, read from `buf` at `at`. */
export function replyHalves(buf: Uint8Array, at: number): [lo: number, hi: number] {
  const dv = view(buf);
  return [dv.getUint32(at, true), dv.getUint32(at + 4, true)];
}

/** A decoded request (for tests and fake peers). */
export type XRemoteRequest =
  | {
      /** PCI config space read or write (PciConfDataMsg). */
      readonly cmd: typeof XRemoteCmd.PCI_CFGREAD | typeof XRemoteCmd.PCI_CFGWRITE;
      /** Byte offset in the function's config space. */
      readonly addr: number;
      /** Value to write (CFGWRITE); whatever the sender put there for a CFGREAD, normally 0. */
      readonly value: number;
      /** Access width in bytes: 1, 2 or 4. */
      readonly len: number;
    }
  | {
      /** BAR access (BarAccessMsg). */
      readonly cmd: typeof XRemoteCmd.BAR_READ | typeof XRemoteCmd.BAR_WRITE;
      /** Address of the access in the guest's memory or I/O space (the BAR base plus offset). */
      readonly addr: number;
      /** Value to write (BAR_WRITE); normally 0 for a read. */
      readonly value: number;
      /** Access width in bytes (1, 2, 4 or 8). */
      readonly size: number;
      /** True for a memory BAR, false for an I/O port BAR. */
      readonly memory: boolean;
    }
  | {
      /** Guest RAM layout update; answered by no reply. */
      readonly cmd: typeof XRemoteCmd.SYNC_SYSMEM;
      /** One region per memfd that came with the message, in fd order. */
      readonly regions: readonly SysmemRegion[];
    }
  | {
      /** SET_IRQFD (two fds: INTx eventfd and resample eventfd) or DEVICE_RESET; no payload. */
      readonly cmd: typeof XRemoteCmd.SET_IRQFD | typeof XRemoteCmd.DEVICE_RESET;
    };

/**
 * Decodes one whole request (header and payload) with the number of fds that came with it,
 * applying QEMU's own validity rules (mpqemu_msg_valid): exact payload sizes, fds only where
 * the command takes them.
 */
export function decodeRequest(buf: Uint8Array, fds: number): XRemoteRequest {
  if (buf.length < HEADER_SIZE) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `request of ${buf.length} bytes`);
  const dv = view(buf);
  const cmd = dv.getInt32(0, true);
  const size = join64(dv.getUint32(8, true), dv.getUint32(12, true));
  if (size !== buf.length - HEADER_SIZE) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `size field ${size} for a ${buf.length - HEADER_SIZE}-byte payload`);
  if (fds >= MAX_FDS) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `${fds} fds (at most ${MAX_FDS - 1})`);
  const need = (want: number, fdsOk: (n: number) => boolean): void => {
    if (size !== want || !fdsOk(fds)) throw new XRemoteError(XRemoteFault.BAD_REQUEST, `command ${cmd} with ${size} bytes and ${fds} fds`);
  };
  switch (cmd) {
    case XRemoteCmd.PCI_CFGREAD:
    case XRemoteCmd.PCI_CFGWRITE:
      need(CONFIG_ACCESS_SIZE, () => true);
      return { cmd, addr: dv.getUint32(16, true), value: dv.getUint32(20, true), len: dv.getInt32(24, true) };
    case XRemoteCmd.BAR_READ:
    case XRemoteCmd.BAR_WRITE:
      need(BAR_ACCESS_SIZE, (n) => n === 0);
      return {
        cmd,
        addr: join64(dv.getUint32(16, true), dv.getUint32(20, true)),
        value: join64(dv.getUint32(24, true), dv.getUint32(28, true)),
        size: dv.getUint32(32, true),
        memory: buf[36] !== 0,
      };
    case XRemoteCmd.SYNC_SYSMEM: {
      need(SYNC_SYSMEM_SIZE, (n) => n > 0);
      const regions: SysmemRegion[] = [];
      for (let i = 0; i < fds; i++) {
        const at = (base: number): number => join64(dv.getUint32(base + 8 * i, true), dv.getUint32(base + 8 * i + 4, true));
        regions.push({ gpa: at(16), size: at(80), offset: at(144) });
      }
      return { cmd, regions };
    }
    case XRemoteCmd.SET_IRQFD:
      need(0, (n) => n === 2);
      return { cmd };
    case XRemoteCmd.DEVICE_RESET:
      need(0, (n) => n === 0);
      return { cmd };
    default:
      throw new XRemoteError(XRemoteFault.BAD_REQUEST, `unknown command ${cmd}`);
  }
}
