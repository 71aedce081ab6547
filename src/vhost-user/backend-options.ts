/**
 * What a VhostUserBackend is built with: its options, the protocol features and transport bits it
 * implements, and the queue factory it uses by default.
 */
import type { VirtioDevice } from '../device/types.js';
import type { QueueStats } from '../device/queue-stats.js';
import type { Logger } from '../log.js';
import type { Platform } from '../platform/types.js';
import { PackedQueue } from '../queue/packed-queue.js';
import { SplitQueue } from '../queue/split-queue.js';
import { F } from '../spec/features.js';
import type { VhostUserBackend } from './backend.js';
import type { MessageSink } from './dispatcher.js';
import { PF, type VhostUserMessage } from './messages.js';
import type { QueueFactory } from './vrings.js';
import type { VhostUserMessageRouter } from './worker-router.js';

/** Protocol features this back-end implements (and therefore advertises). */
export const SUPPORTED_PROTOCOL_FEATURES =
  PF.MQ |
  PF.LOG_SHMFD |
  PF.REPLY_ACK |
  PF.BACKEND_REQ |
  PF.CROSS_ENDIAN |
  PF.CONFIG |
  PF.INFLIGHT_SHMFD |
  PF.RESET_DEVICE |
  PF.CONFIGURE_MEM_SLOTS |
  PF.STATUS;

/** Transport bits a vhost-user back-end can honour (no IOTLB, no notification data, no queue reset). */
export const VHOST_USER_TRANSPORT_FEATURES =
  F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT | F.INDIRECT_DESC | F.EVENT_IDX | F.VERSION_1 | F.RING_PACKED | F.IN_ORDER | F.ORDER_PLATFORM;

/**
 * The QueueFactory a back-end uses unless told otherwise: a PackedQueue when RING_PACKED was
 * negotiated, else a SplitQueue.
 */
export const defaultQueueFactory: QueueFactory = (memory, config) => {
  const packed = (config.features & F.RING_PACKED) !== 0n;
  return packed ? new PackedQueue(memory, config) : new SplitQueue(memory, config);
};

/** What a VhostUserBackend serves and with what. */
export interface VhostUserBackendOptions {
  /** The device to serve. */
  readonly device: VirtioDevice;
  /** The OS access (fd passing, mmap, eventfd): the native platform in production. */
  readonly platform: Platform;
  /** Where the back-end logs (every message at debug level). */
  readonly logger?: Logger;
  /** GET_MAX_MEM_SLOTS answer (default 32). */
  readonly maxMemSlots?: number;
  /** Mapping chunk for large regions (default 1 GiB, multiple of 4096). */
  readonly mapChunkSize?: number;
  /** Builds each started ring's device queue (default defaultQueueFactory). */
  readonly queueFactory?: QueueFactory;
  /** Polling period of rings without a kick fd (SET_VRING_KICK bit 8), in ms (default 1). */
  readonly pollIntervalMs?: number;
  /** Restricts the advertised protocol features (default: all supported, the device's included). */
  readonly protocolFeatures?: bigint;
  /**
   * Busy-poll window after a processing pass, in microseconds (default 0: off). The back-end
   * keeps driver notifications suppressed and watches the avail ring for this long after the
   * last buffer it found before re-enabling them and sleeping, which saves the driver's kick
   * and the back-end's wake-up when requests follow each other closely. At most
   * MAX_POLL_US; one polling episode, passes included, never keeps the event loop for more than
   * POLL_BUDGET_US (+ one pass).
   */
  readonly pollUs?: number;
  /** Per-queue counters to add to (a server hands one to every connection); default a new one. */
  readonly stats?: QueueStats;
  /**
   * Serves rings on worker threads (worker-pool.ts): builds the connection's router, which takes
   * every request and hands those of the main thread back to `dispatch`. Default: all here.
   */
  readonly messageRouter?: (backend: VhostUserBackend, dispatch: (msg: VhostUserMessage, sink: MessageSink) => void) => VhostUserMessageRouter;
  /** Called on each configuration change of the core (a ring worker tells the main thread). */
  readonly onConfigChange?: () => void;
}
