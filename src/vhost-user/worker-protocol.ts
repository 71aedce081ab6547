/**
 * What the main thread and a ring worker say to each other, and which vhost-user requests go
 * where. A worker runs a complete VhostUserBackend over its own device instance for the rings it
 * owns; the main thread's back-end keeps the control socket, the device's features, status and
 * config space. Ring requests go to the owner of the ring only; requests that set up the session
 * (features, memory, config, resets) are applied by the main thread and then by every worker
 * before the front-end gets the reply.
 */
import { FrontendReq, VRING_IDX_MASK, type VhostUserMessage } from './messages.js';

/** Where a front-end request is handled. */
export const Route = {
  /** The main thread only (GET_*, the back-end channel, device-specific requests). */
  MAIN: 'main',
  /** The worker owning the ring the request names (the ring messages). */
  RING: 'ring',
  /** The main thread, then every worker (session set-up: features, memory, config, resets). */
  ALL: 'all',
} as const;
export type Route = (typeof Route)[keyof typeof Route];

/** Ring requests whose payload starts with a u32 ring index (struct vhost_vring_state / addr). */
const RING_STATE_REQUESTS = new Set<number>([
  FrontendReq.SET_VRING_NUM,
  FrontendReq.SET_VRING_ADDR,
  FrontendReq.SET_VRING_BASE,
  FrontendReq.GET_VRING_BASE,
  FrontendReq.SET_VRING_ENABLE,
]);
/** Ring requests carrying a u64 whose low byte is the ring index (and bit 8 "no fd"). */
const RING_FD_REQUESTS = new Set<number>([FrontendReq.SET_VRING_KICK, FrontendReq.SET_VRING_CALL, FrontendReq.SET_VRING_ERR]);
/** Requests every worker must see (each keeps its own session: negotiation, memory, device config). */
const SESSION_REQUESTS = new Set<number>([
  FrontendReq.SET_OWNER,
  FrontendReq.RESET_OWNER,
  FrontendReq.SET_FEATURES,
  FrontendReq.SET_PROTOCOL_FEATURES,
  FrontendReq.SET_MEM_TABLE,
  FrontendReq.ADD_MEM_REG,
  FrontendReq.REM_MEM_REG,
  FrontendReq.SET_CONFIG,
  FrontendReq.RESET_DEVICE,
  FrontendReq.SET_STATUS,
  // The ring's byte order decides a legacy guest's config on the main thread (ring 0) and the
  // ring format in the worker: both keep it.
  FrontendReq.SET_VRING_ENDIAN,
]);
/** Session requests whose fds every worker needs its own copy of (the memory regions). */
export const FD_COPY_REQUESTS = new Set<number>([FrontendReq.SET_MEM_TABLE, FrontendReq.ADD_MEM_REG]);

/**
 * The route of `msg` and, for a ring request, its ring index. A ring request too short to name
 * its ring, or naming one beyond `numRings`, stays on the main thread, whose back-end refuses it
 * as it would without workers.
 */
export function routeOf(msg: VhostUserMessage, numRings: number): { route: Route; ring: number } {
  const p = msg.payload;
  if (RING_STATE_REQUESTS.has(msg.request)) {
    if (p.length < 8) return { route: Route.MAIN, ring: -1 };
    const ring = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
    return ring < numRings ? { route: Route.RING, ring } : { route: Route.MAIN, ring: -1 };
  }
  if (RING_FD_REQUESTS.has(msg.request)) {
    if (p.length !== 8) return { route: Route.MAIN, ring: -1 };
    const ring = p[0]! & VRING_IDX_MASK;
    return ring < numRings ? { route: Route.RING, ring } : { route: Route.MAIN, ring: -1 };
  }
  if (SESSION_REQUESTS.has(msg.request)) return { route: Route.ALL, ring: -1 };
  return { route: Route.MAIN, ring: -1 };
}

/** One reply the worker's back-end wrote to its sink. */
export interface WorkerReply {
  /** The reply's request code (FrontendReq), as in the vhost-user message header. */
  readonly request: number;
  /** The header's flags (version, REPLY bit), as the worker's back-end set them. */
  readonly flags: number;
  /** The reply's payload (copied out of the worker's buffer), or null for none. */
  readonly payload: Uint8Array | null;
  /** File descriptors sent with the reply (empty for none). */
  readonly fds: readonly number[];
}

/** Calls from the main thread (synchronous, WorkerCallChannel). */
export type WorkerCall =
  | {
      /** A front-end connected: the worker creates its back-end for the new session. */
      readonly kind: 'session-start';
      /** The session's number (one per front-end connection, from 1). */
      readonly session: number;
      /** What the device type's factory builds this session's device from (WorkerDeviceFactory.device), if anything. */
      readonly args?: unknown;
      /** The session's own queue counters (QueueStats.shared), instead of the pool's. */
      readonly stats?: SharedArrayBuffer;
    }
  | {
      /** A front-end request for the worker's back-end to handle (a ring request, or a session request after the main thread). */
      readonly kind: 'message';
      /** The session the request belongs to; a call for a session the worker no longer has is answered `ended`. */
      readonly session: number;
      /** The request as decoded on the main thread, with its fds (the worker's own copies for memory regions). */
      readonly message: VhostUserMessage;
    }
  | {
      /** The front-end disconnected (or the session failed): the worker closes its back-end and stops its rings. */
      readonly kind: 'session-end';
      /** The session to end. */
      readonly session: number;
    };

/** A worker's answer to a call. */
export interface WorkerAnswer {
  /** Replies its back-end wrote (forwarded to the front-end for a ring request). */
  readonly replies: readonly WorkerReply[];
  /** The request was refused (its back-end's refusal message), or null. */
  readonly refused: string | null;
  /** The worker's back-end ended the session (a refusal without an error reply), or null. */
  readonly ended: string | null;
}

/** Events a worker posts on its own (asynchronously, on the worker's parent port). */
export type WorkerEvent =
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly message: string }
  /** Its device or a ring failed or changed config: the main thread's core follows. */
  | { readonly kind: 'config-change'; readonly session: number; readonly needsReset: string | null };

/** What a worker is started with (workerData). */
export interface WorkerInit {
  readonly index: number;
  /** The worker-side device factory (see src/device/worker-device.ts). */
  readonly device: import('../device/worker-device.js').WorkerDeviceSpec;
  /** QueueStats storage shared by every thread (QueueStats.shared). */
  readonly stats: SharedArrayBuffer;
  /** The call channel's counter (WorkerCallChannel). */
  readonly signal: SharedArrayBuffer;
  readonly port: import('node:worker_threads').MessagePort;
  readonly protocolFeatures: bigint;
  readonly pollUs: number;
  readonly verbosity: number;
  readonly name: string;
}
