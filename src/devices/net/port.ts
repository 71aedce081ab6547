/**
 * The port abstraction of virtio-ts networking: anything that exchanges Ethernet frames with a
 * switch (a virtio-net device, a TAP device, a capture file, a test reflector) is a NetPort; the
 * switch hands each one a NetLink to send through.
 */
import type { NetPacket } from './packet.js';

/** Where a port's outgoing frames go. */
export interface NetLink {
  /**
   * Sends one frame. Synchronous: receivers copy the frame before this returns, so the sender
   * may refill `packet` at once.
   */
  send(packet: NetPacket): void;
  /**
   * Whether `send` takes a partial packet (`NetPacket.pending` set, only its first
   * NET_PARTIAL_FRAME bytes in place) and calls `ensureFrame` before it reads further or hands
   * the packet on. Absent or false: senders pass whole frames.
   */
  readonly partialFrames?: boolean;
}

/** A frame endpoint attached to a switch. */
export interface NetPort {
  /** For logs and counters. */
  readonly name: string;
  /**
   * A frame for this port. Synchronous; the port copies what it keeps (the packet is the
   * sender's buffer). It may complete a partial checksum in place (`completeChecksum`): every
   * receiver of a flooded frame sees the same bytes either way.
   */
  deliver(packet: NetPacket): void;
  /**
   * Whether the port takes GSO packets (`packet.gsoType` not NONE) whole: it then passes them
   * on (a guest that negotiated GUEST_TSO4, say) or segments them itself (`GsoSegmenter`).
   * Absent or false: the switch delivers such a packet as its segments, each an ordinary frame
   * with complete checksums, so a port that knows nothing of GSO never sees a large frame.
   */
  readonly takesGso?: boolean;
}
