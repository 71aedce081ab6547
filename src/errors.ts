/**
 * Typed errors with stable codes. Callers branch on `code`, never on message text.
 * Subclasses carry the fields that explain the failure (address, length, queue, request).
 */
export const ErrorCode = {
  /** A guest address range is unmapped, crosses regions, or overflows. */
  MEMORY_OUT_OF_RANGE: 'MEMORY_OUT_OF_RANGE',
  /** A guest memory region description is invalid (overlap, zero size, misaligned buffer). */
  MEMORY_BAD_REGION: 'MEMORY_BAD_REGION',
  /** The driver broke a ring rule: the queue is unusable until reset (2.1.2 DEVICE_NEEDS_RESET). */
  QUEUE_BROKEN: 'QUEUE_BROKEN',
  /** Queue configuration (size, addresses, alignment) is invalid. */
  QUEUE_BAD_CONFIG: 'QUEUE_BAD_CONFIG',
  /** Saved queue state does not fit the queue it is restored into. */
  QUEUE_BAD_STATE: 'QUEUE_BAD_STATE',
  /** The driver side has no free descriptors for the chain. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** A device status transition the spec does not allow. */
  STATUS_INVALID: 'STATUS_INVALID',
  /** Feature negotiation failed (not offered, invalid combination, FEATURES_OK refused). */
  FEATURES_REJECTED: 'FEATURES_REJECTED',
  /** Config space access outside the device's config or with a bad width. */
  CONFIG_OUT_OF_RANGE: 'CONFIG_OUT_OF_RANGE',
  /** A device request failed (the device answered with an error status). */
  REQUEST_FAILED: 'REQUEST_FAILED',
  /** The device is in DEVICE_NEEDS_RESET or FAILED. */
  DEVICE_NEEDS_RESET: 'DEVICE_NEEDS_RESET',
  /** The driver suspended the device (VIRTIO_F_SUSPEND): no buffers, notifications or config writes until resume. */
  DEVICE_SUSPENDED: 'DEVICE_SUSPENDED',
  /** A backend (file, socket) failed. */
  BACKEND_IO: 'BACKEND_IO',
  /** Invalid argument from the library user or command line. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A transport register access the transport does not define. */
  TRANSPORT_BAD_ACCESS: 'TRANSPORT_BAD_ACCESS',
  /** A vhost-user message that cannot be accepted. */
  VHOST_USER_PROTOCOL: 'VHOST_USER_PROTOCOL',
  /** The OS-facing platform layer failed (addon missing, syscall error). */
  PLATFORM: 'PLATFORM',
  /** An operation did not complete in time. */
  TIMEOUT: 'TIMEOUT',
  /**
   * A device implementation threw (or reported an error) on another thread: its message, carried
   * across as the `cause` of the driver's DEVICE_NEEDS_RESET error.
   */
  DEVICE_ERROR: 'DEVICE_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The error every virtio-ts API throws: a stable `code` to branch on (ErrorCode), a message for
 * people, and the underlying error as `cause` where there is one. Subclasses add the fields that
 * explain the failure.
 */
export class VirtioError extends Error {
  /** What failed, as a stable value: branch on it, never on the message. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A guest memory access outside the mapped regions or a bad region layout (code MEMORY_OUT_OF_RANGE
 * or MEMORY_BAD_REGION), with the range that failed.
 */
export class MemoryError extends VirtioError {
  constructor(
    message: string,
    /** The guest address of the access that failed. */
    readonly addr: number,
    /** The length of the access that failed, in bytes. */
    readonly len: number,
    code: ErrorCode = ErrorCode.MEMORY_OUT_OF_RANGE,
  ) {
    super(code, message);
  }
}

/** Why a queue was declared broken; stable reasons for tests and logs. */
export const QueueFault = {
  /** A head index in the available ring is not below the queue size (2.7.5). */
  HEAD_OUT_OF_RANGE: 'HEAD_OUT_OF_RANGE',
  /** A descriptor's `next` is not below the queue size (or the indirect table's size) (2.7.5.3). */
  NEXT_OUT_OF_RANGE: 'NEXT_OUT_OF_RANGE',
  /** A chain visits more descriptors than its table holds (a loop), or has more segments than the device can take (2.7.5.3.1). */
  CHAIN_TOO_LONG: 'CHAIN_TOO_LONG',
  /** The available index moved ahead of the device by more than the queue size (2.7.6). */
  AVAIL_IDX_JUMP: 'AVAIL_IDX_JUMP',
  /** An indirect descriptor's length is zero or not a multiple of 16 (2.7.5.3.1). */
  INDIRECT_BAD_LEN: 'INDIRECT_BAD_LEN',
  /** An indirect table holds an indirect descriptor (2.7.5.3.1: the driver MUST NOT). */
  INDIRECT_NESTED: 'INDIRECT_NESTED',
  /** An indirect descriptor also has NEXT set, or sits in a NEXT list (packed) (2.7.5.3.1, 2.8.7). */
  INDIRECT_WITH_NEXT: 'INDIRECT_WITH_NEXT',
  /** An indirect descriptor without VIRTIO_F_INDIRECT_DESC negotiated (2.7.5.3.1). */
  INDIRECT_NOT_NEGOTIATED: 'INDIRECT_NOT_NEGOTIATED',
  /** A packed indirect table has more entries than the device can take (2.8.7). */
  INDIRECT_TOO_BIG: 'INDIRECT_TOO_BIG',
  /** A device-readable descriptor follows a device-writable one in a chain (2.7.4.2, 2.8.4). */
  READABLE_AFTER_WRITABLE: 'READABLE_AFTER_WRITABLE',
  /** The lengths of a chain add up to more than 2^32 - 1 bytes. */
  CHAIN_LEN_OVERFLOW: 'CHAIN_LEN_OVERFLOW',
  /** A ring area or an indirect table is not inside guest memory. */
  RING_UNMAPPED: 'RING_UNMAPPED',
  /** A data buffer is not inside guest memory: only that request fails (`chain.fault`), the queue goes on. */
  DESC_UNMAPPED: 'DESC_UNMAPPED',
  /** Driver side: the device returned a used id (or length) that is not a buffer the driver made available (2.7.8, 2.8.6). */
  USED_ID_INVALID: 'USED_ID_INVALID',
  /** A device write aimed at a device-readable part of a chain. */
  WRITE_TO_READABLE: 'WRITE_TO_READABLE',
} as const;
export type QueueFault = (typeof QueueFault)[keyof typeof QueueFault];

/**
 * A ring rule the driver broke (code QUEUE_BROKEN): the queue is unusable until it or the device is
 * reset, and the device sets DEVICE_NEEDS_RESET (2.1.2).
 */
export class QueueError extends VirtioError {
  constructor(
    /** Which rule was broken. */
    readonly fault: QueueFault,
    message: string,
    /** The queue, or -1 when not known where the error was raised. */
    readonly queueIndex = -1,
  ) {
    super(ErrorCode.QUEUE_BROKEN, `${fault}: ${message}`);
  }
}

/** Whether `e` is a VirtioError (of any subclass): narrows it so `e.code` can be read. */
export function isVirtioError(e: unknown): e is VirtioError {
  return e instanceof VirtioError;
}
