/**
 * Chains a device serves straight from a split ring (2.7), without a DescriptorChain per chain:
 * `DeviceQueue.popDirect` fills a DirectBatch with up to DIRECT_BATCH available chains of the
 * plainest shape (1 to DIRECT_MAX_SEGMENTS device-readable descriptors, no indirect table, every
 * buffer inside one guest memory region), already located in guest memory, and stops before
 * the first chain of any other shape: the ordinary `pop` takes that one, with every check and
 * outcome of 2.7 (a ring-rule break, an unmapped buffer). The device uses every chain of the
 * batch before it gives control back to the event loop (`pushDirect`), so no memory change
 * can come between the pop and the push. A transmit queue drained this way (virtio-net,
 * tx-direct.ts) saves the chain objects, the per-request bookkeeping and the per-chain calls of
 * the general path.
 */
import type { GuestMemory } from '../memory/guest-memory.js';

/** Descriptors one direct chain holds at most (longer chains take the ordinary path). */
export const DIRECT_MAX_SEGMENTS = 4;
/** Chains one `popDirect` takes at most. */
export const DIRECT_BATCH = 64;

/** The chains of one `popDirect` (see the module comment); one per device queue user, reused. */
export class DirectBatch {
  /** Head descriptor index of each chain (its used element's id). */
  readonly heads = new Uint16Array(DIRECT_BATCH);
  /** Descriptors (segments) of each chain, 1..DIRECT_MAX_SEGMENTS. */
  readonly segments = new Uint8Array(DIRECT_BATCH);
  /** Device-readable bytes of each chain (at most 2^32 - 1, 2.7.4). */
  readonly bytes = new Float64Array(DIRECT_BATCH);
  /**
   * Guest memory region of each segment (`GuestMemory.bytesOf`): segment s of chain k is entry
   * k * DIRECT_MAX_SEGMENTS + s here, in `offset` and in `len`.
   */
  readonly region = new Int32Array(DIRECT_BATCH * DIRECT_MAX_SEGMENTS);
  /** Offset of the segment's first byte in its region. */
  readonly offset = new Float64Array(DIRECT_BATCH * DIRECT_MAX_SEGMENTS);
  /** Length of the segment, bytes (non-zero). */
  readonly len = new Uint32Array(DIRECT_BATCH * DIRECT_MAX_SEGMENTS);
  /** The memory the regions are of (the ring's, at the pop). */
  memory: GuestMemory | null = null;
}
