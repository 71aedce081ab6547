/** The options of VhostUserDriverTransport and the defaults that depend on the device type. */
import type { Platform } from '../platform/types.js';
import { DeviceId } from '../spec/device-id.js';
import { PF } from './messages.js';

/** Protocol features this front-end implements (offered to the back-end, intersected with its own). */
export const FRONTEND_PROTOCOL_FEATURES: bigint =
  PF.MQ | PF.REPLY_ACK | PF.CONFIG | PF.BACKEND_REQ | PF.INFLIGHT_SHMFD | PF.RESET_DEVICE | PF.CONFIGURE_MEM_SLOTS | PF.STATUS;

/** Queues when the back-end has no MQ: rx+tx for net, hiprio+request for fs, one otherwise. */
export const DEFAULT_QUEUES: Readonly<Record<number, number>> = { [DeviceId.NET]: 2, [DeviceId.FS]: 2 };

/** How VhostUserDriverTransport.connect talks to a back-end. */
export interface VhostUserTransportOptions {
  /** Device type (vhost-user has no discovery of it). */
  deviceId: number;
  /** The OS access; the native platform by default. */
  platform?: Platform;
  /** Shared guest memory size (default 16 MiB; page multiple). */
  memorySize?: number;
  /** Guest physical address of the memory (default 1 MiB, so no buffer sits at 0). */
  guestBase?: number;
  /** Front-end "user address" of the memory, used in SET_VRING_ADDR (default guestBase + 2^40). */
  userBase?: number;
  /** Protocol features to negotiate (intersected with FRONTEND_PROTOCOL_FEATURES and the back-end's). */
  protocolFeatures?: bigint;
  /** Bytes of configuration asked with GET_CONFIG (default: the registry record's `configSize`; 0: none). */
  configSize?: number;
  /** Queues to use (default: GET_QUEUE_NUM with MQ, else per device type). */
  numQueues?: number;
  /** Largest ring the driver may choose (default 256). */
  queueMaxSize?: number;
  /** Share memory with ADD_MEM_REG when CONFIGURE_MEM_SLOTS is negotiated (default true). */
  useMemSlots?: boolean;
  /** Ask an inflight area (GET/SET_INFLIGHT_FD) when INFLIGHT_SHMFD is negotiated (default true). */
  useInflight?: boolean;
  /** No call eventfds: used buffers are found by `poll()` (SET_VRING_CALL with the no-fd flag). */
  pollMode?: boolean;
  /** Bound on every reply (default 5000 ms). */
  timeoutMs?: number;
  /**
   * Period of the stall watch in ms (default 0: off): a split ring with buffers out and none used
   * for a whole period is notified again (frontend-stall-watch.ts: for back-ends that lose
   * notifications, such as QEMU 7.2's virtiofsd with EVENT_IDX).
   */
  stallKickMs?: number;
}
