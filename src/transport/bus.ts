/**
 * What a host emulator (a VMM, a CPU emulator, a test) provides to the register-level
 * transports, and what the transports give back.
 *
 * The emulator decodes the guest's physical accesses to a device (an MMIO window, a PCI BAR or
 * configuration space, a channel program) and calls the adapter with an offset and a width.
 * The adapters never throw out of these calls: an access the transport does not define is
 * answered as the spec or the bus says (reads give 0 or all ones, writes are ignored, a CCW is
 * rejected) and reported to an optional listener.
 */
import { type DeviceCoreApi, type InterruptSink, type QueueRefusal, QueueRefusalReason } from '../device/types.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';

/** The host side of the bus a transport sits on. */
export interface TransportBus {
  /** The guest memory the device's rings live in. */
  readonly memory: GuestMemory;
  /** Asserts the device's level-triggered interrupt line (PCI INTx, MMIO IRQ). */
  raiseIrq(): void;
  /** Deasserts it (the driver read ISR / acknowledged InterruptStatus). */
  lowerIrq(): void;
  /** Sends one MSI-X message: a 32-bit `data` write to the 64-bit `address`. */
  msiSend(address: number, data: number): void;
  /** Channel I/O: an unsolicited I/O interrupt on the device's subchannel (classic indicators). */
  ioInterrupt?(): void;
  /** Channel I/O: an adapter I/O interrupt for interruption subclass `isc` (two-stage indicators). */
  adapterInterrupt?(isc: number): void;
}

/** A register window accessed by offset and width in bytes (1, 2, 4 or 8). Never throws. */
export interface RegisterWindow {
  /**
   * Reads `width` bytes at byte `offset` as an unsigned number (register byte order already
   * applied). A refused read returns a placeholder value (MmioDeviceTransport: 0) rather than throwing.
   */
  read(offset: number, width: number): number;
  /** Writes the low `width` bytes of `value` at byte `offset`; a refused write is dropped. */
  write(offset: number, width: number, value: number): void;
}

/** How the device core is to be built: the transport picks it once the driver chose an interface. */
export interface CoreMode {
  /** The legacy (pre-1.0) interface: no VERSION_1, no FEATURES_OK handshake required. */
  readonly legacy: boolean;
  /** False for a legacy interface on a big-endian guest. */
  readonly littleEndian: boolean;
  /**
   * Transport bits only this transport implements, offered besides the common set
   * (TRANSPORT_FEATURES_SUPPORTED): PCI's modern interface passes VIRTIO_F_NOTIF_CONFIG_DATA
   * (queue_notif_config_data exists only in the PCI common configuration).
   */
  readonly transportFeatures?: bigint;
}

/**
 * Builds the device core for a transport. The transport passes itself as the interrupt sink.
 * Transitional transports may call it again (after a reset) when the driver switches between
 * the legacy and the modern interface; the previous core is reset first.
 */
export type CoreFactory = (sink: InterruptSink, mode: CoreMode) => DeviceCoreApi;

/** Why an access was refused; stable values for tests and logs. */
export const BadAccess = {
  /** Width not allowed for this register. */
  WIDTH: 'WIDTH',
  /** Offset outside every defined register. */
  OFFSET: 'OFFSET',
  /** Write to a read-only register. */
  READ_ONLY: 'READ_ONLY',
  /** Read of a write-only register. */
  WRITE_ONLY: 'WRITE_ONLY',
  /** Queue register for a queue that does not exist (queue select out of range). */
  NO_QUEUE: 'NO_QUEUE',
  /** Queue field written while the queue is enabled. */
  QUEUE_ENABLED: 'QUEUE_ENABLED',
  /** Notification for a queue that is not enabled. */
  QUEUE_DISABLED: 'QUEUE_DISABLED',
  /** A value the register does not accept (size not a power of two, vector out of range...). */
  VALUE: 'VALUE',
  /** The access is valid only in the other interface (legacy vs modern) or revision. */
  MODE: 'MODE',
  /** The device core refused the operation. */
  REFUSED: 'REFUSED',
  /** A guest buffer named by the access is not mapped. */
  MEMORY: 'MEMORY',
} as const;
export type BadAccess = (typeof BadAccess)[keyof typeof BadAccess];

/** The bad-access reason for a queue register write the core refused (same on every bus). */
export function badAccessForRefusal(refusal: QueueRefusal): BadAccess {
  switch (refusal.reason) {
    case QueueRefusalReason.NO_QUEUE:
      return BadAccess.NO_QUEUE;
    case QueueRefusalReason.QUEUE_ENABLED:
      return BadAccess.QUEUE_ENABLED;
    case QueueRefusalReason.VALUE:
      return BadAccess.VALUE;
    default:
      return BadAccess.REFUSED;
  }
}

/**
 * The negotiated transport features a bus decodes accesses by, read from the core once per
 * status change so no access needs BigInt. Before FEATURES_OK nothing is in force; a legacy
 * interface carries none of these bits (all above bit 31).
 */
export class TransportFeatureFlags {
  /** 2.9 VIRTIO_F_NOTIFICATION_DATA: notifications carry more than the queue index. */
  notificationData = false;
  /** VIRTIO_F_NOTIF_CONFIG_DATA: notifications name the queue by queue_notif_config_data. */
  notifConfigData = false;
  /** 2.6.1 VIRTIO_F_RING_RESET: per-queue reset. */
  ringReset = false;
  /** 2.8 VIRTIO_F_RING_PACKED. */
  packed = false;

  /** Re-reads the flags from `core`'s negotiated features; all false unless FEATURES_OK is set. */
  refresh(core: DeviceCoreApi): void {
    const f = core.status & Status.FEATURES_OK ? core.negotiatedFeatures : 0n;
    this.notificationData = (f & F.NOTIFICATION_DATA) !== 0n;
    this.notifConfigData = (f & F.NOTIF_CONFIG_DATA) !== 0n;
    this.ringReset = (f & F.RING_RESET) !== 0n;
    this.packed = (f & F.RING_PACKED) !== 0n;
  }
}

/**
 * The queue a notification value names (2.9): its low 16 bits are the queue index, or with
 * NOTIF_CONFIG_DATA the queue's notification config data. -1 when no queue matches.
 */
export function notifiedQueue(core: DeviceCoreApi, flags: TransportFeatureFlags, value: number): number {
  const key = value & 0xffff;
  if (!flags.notifConfigData) return key;
  for (let i = 0; i < core.numQueues; i++) if (core.queueRegisters(i)?.notifyData === key) return i;
  return -1;
}

/**
 * An access a transport refused or did not define, reported to the BadAccessListener a test or
 * emulator gave.
 */
export interface BadAccessReport {
  /** Why it was refused. */
  readonly reason: BadAccess;
  /** Region the access went to: 'mmio', 'pci-config', 'common', 'notify', 'legacy', 'ccw', ... */
  readonly region: string;
  /** Offset of the access in its region. */
  readonly offset: number;
  /** Width of the access in bytes. */
  readonly width: number;
  /** Whether it was a write. */
  readonly write: boolean;
  /** What exactly was wrong, for people. */
  readonly detail?: string;
}

/** Told of each access a transport refused. */
export type BadAccessListener = (r: BadAccessReport) => void;

/** Widths a register bus can carry. */
export function isAccessWidth(width: number): boolean {
  return width === 1 || width === 2 || width === 4 || width === 8;
}

/** Mask of an access width's value (width 8 gives the safe-integer range). */
export function widthMask(width: number, value: number): number {
  switch (width) {
    case 1:
      return value & 0xff;
    case 2:
      return value & 0xffff;
    case 4:
      return value >>> 0;
    default:
      return Number.isSafeInteger(value) && value >= 0 ? value : 0;
  }
}

const U32 = 0x1_0000_0000;

/** Low 32 bits of a non-negative safe integer (no BigInt). */
export function lo32(v: number): number {
  return v % U32 >>> 0;
}
/** High 32 bits of a non-negative safe integer. */
export function hi32(v: number): number {
  return Math.floor(v / U32) >>> 0;
}
/** Joins two 32-bit halves; -1 when the result exceeds 2^53 (no guest region can be there). */
export function join64(lo: number, hi: number): number {
  return hi >= 0x20_0000 ? -1 : hi * U32 + (lo >>> 0);
}

/**
 * Reads `width` bytes of device configuration through the core as a little-endian bus value.
 * The bytes are what the device put in its config space (guest endian for legacy), so a byte
 * view of the window is the same whichever width the driver uses.
 */
export function readConfigValue(core: DeviceCoreApi, scratch: Uint8Array, offset: number, width: number): number {
  const view = scratch.subarray(0, width);
  view.fill(0);
  core.readConfigBytes(offset, view);
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + view[i]!;
  return v;
}

/**
 * Writes `width` bytes of device configuration from a little-endian bus value: byte i of the
 * window gets byte i of the value, whatever the guest endianness (the core encodes values in
 * guest endian, so a big-endian core is handed the byte-swapped value).
 */
export function writeConfigValue(core: DeviceCoreApi, offset: number, width: number, value: number): void {
  let v = value >>> 0;
  if (!core.littleEndian && width > 1) {
    let s = 0;
    for (let i = 0; i < width; i++) {
      s = s * 256 + (v & 0xff);
      v >>>= 8;
    }
    v = s >>> 0;
  }
  core.writeConfig(offset, width, v);
}

/**
 * Reads config bytes through a register window with natural-width accesses where the range
 * allows (4.2.2.2 / 4.1.3.1: fields of 1, 2, 4 bytes at their own width, 8 as two halves).
 */
export function readWindowBytes(w: RegisterWindow, base: number, dst: Uint8Array): void {
  const n = dst.length;
  if ((n === 2 || n === 4) && base % n === 0) {
    putLe(dst, 0, w.read(base, n), n);
    return;
  }
  if (n === 8 && base % 4 === 0) {
    putLe(dst, 0, w.read(base, 4), 4);
    putLe(dst, 4, w.read(base + 4, 4), 4);
    return;
  }
  for (let i = 0; i < n; i++) dst[i] = w.read(base + i, 1) & 0xff;
}

/**
 * Writes config bytes through a register window, the counterpart of `readWindowBytes`: one
 * access of 2 or 4 bytes when aligned, 8 bytes as two aligned 4-byte halves, otherwise byte by byte.
 */
export function writeWindowBytes(w: RegisterWindow, base: number, src: Uint8Array): void {
  const n = src.length;
  if ((n === 2 || n === 4) && base % n === 0) {
    w.write(base, n, getLe(src, 0, n));
    return;
  }
  if (n === 8 && base % 4 === 0) {
    w.write(base, 4, getLe(src, 0, 4));
    w.write(base + 4, 4, getLe(src, 4, 4));
    return;
  }
  for (let i = 0; i < n; i++) w.write(base + i, 1, src[i]!);
}

function putLe(dst: Uint8Array, off: number, v: number, n: number): void {
  for (let i = 0; i < n; i++) {
    dst[off + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

function getLe(src: Uint8Array, off: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + src[off + i]!;
  return v;
}

/**
 * A bus for in-process use: the device side raises interrupts, the handlers set by the
 * driver side (or a test) receive them. A raise inside a handler is delivered once the
 * handler returns (if the line is still asserted), so handlers never nest; delivery rounds
 * are bounded.
 */
export class LoopbackBus implements TransportBus {
  /** Whether the level-triggered line is asserted now. */
  irqLevel = false;
  /** Counts, for tests. */
  irqRaises = 0;
  /** MSI-X messages sent. */
  msiCount = 0;
  /** Channel I/O interrupts sent. */
  ioInterrupts = 0;
  /** Channel I/O adapter interrupts sent. */
  adapterInterrupts = 0;
  /** Receives INTx / MMIO interrupts (the line was raised). */
  onIrq: (() => void) | null = null;
  /** Receives MSI-X messages (address, data). */
  onMsi: ((address: number, data: number) => void) | null = null;
  /** Receives Channel I/O interrupts. */
  onIo: (() => void) | null = null;
  /** Receives Channel I/O adapter interrupts (interruption subclass). */
  onAdapter: ((isc: number) => void) | null = null;

  private delivering = false;
  private scheduled = false;
  private pendingIrq = false;
  private readonly pendingMsi: number[] = [];
  private pendingIo = false;
  private readonly pendingAdapter: number[] = [];

  /**
   * With `deferred`, interrupts are delivered in a microtask, as a real interrupt arrives after
   * the access that caused it; otherwise at once (after the current handler, if any).
   */
  constructor(
    /** The guest memory of the in-process guest. */
    readonly memory: GuestMemory,
    /** Deliver interrupts in a microtask rather than at once. */
    readonly deferred = false,
  ) {}

  raiseIrq(): void {
    this.irqLevel = true;
    this.irqRaises++;
    this.pendingIrq = true;
    this.deliver();
  }
  lowerIrq(): void {
    this.irqLevel = false;
  }
  msiSend(address: number, data: number): void {
    this.msiCount++;
    this.pendingMsi.push(address, data);
    this.deliver();
  }
  ioInterrupt(): void {
    this.ioInterrupts++;
    this.pendingIo = true;
    this.deliver();
  }
  adapterInterrupt(isc: number): void {
    this.adapterInterrupts++;
    this.pendingAdapter.push(isc);
    this.deliver();
  }

  private deliver(): void {
    if (this.deferred) {
      if (this.scheduled) return;
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.deliverNow();
      });
      return;
    }
    this.deliverNow();
  }

  private deliverNow(): void {
    if (this.delivering) return;
    this.delivering = true;
    try {
      // Bounded: a handler that never lowers the line cannot spin forever.
      for (let round = 0; round < 10_000; round++) {
        if (this.pendingMsi.length > 0) {
          const a = this.pendingMsi.shift()!;
          const d = this.pendingMsi.shift()!;
          this.onMsi?.(a, d);
          continue;
        }
        if (this.pendingAdapter.length > 0) {
          const isc = this.pendingAdapter.shift()!;
          this.onAdapter?.(isc);
          continue;
        }
        if (this.pendingIo) {
          this.pendingIo = false;
          this.onIo?.();
          continue;
        }
        if (this.pendingIrq && this.irqLevel && this.onIrq) {
          this.pendingIrq = false;
          this.onIrq();
          continue;
        }
        this.pendingIrq = false;
        break;
      }
    } finally {
      this.delivering = false;
    }
  }
}
