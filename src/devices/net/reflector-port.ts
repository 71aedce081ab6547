/**
 * A port that answers every unicast frame addressed to it by sending it back with source and
 * destination swapped (an echo host on the wire), and counts what it saw. The transport matrix
 * and tests use it as the far end of a link.
 */
import { type NetPacket, isGroupAddress, macKey } from './packet.js';
import type { NetLink, NetPort } from './port.js';

export class ReflectorPort implements NetPort {
  /** The link into the switch, set when attached; null before (frames sent back are dropped). */
  link: NetLink | null = null;
  /** Frames received, and frames sent back. */
  received = 0;
  /** Frames echoed back (those addressed to `mac`). */
  reflected = 0;
  private readonly out: NetPacket;
  private readonly key: number;

  constructor(
    readonly name: string,
    /** The reflector's own address: frames to it are echoed; others are only counted. */
    readonly mac: Uint8Array,
    packetFactory: () => NetPacket,
  ) {
    this.out = packetFactory();
    this.key = macKey(mac, 0);
  }

  deliver(p: NetPacket): void {
    this.received++;
    const d = p.data;
    // Broadcast (an ARP request, say) or a frame to us: echo it to its sender from our address.
    if (this.link === null || (!isGroupAddress(d, 0) && macKey(d, 0) !== this.key)) return;
    if (p.length > this.out.capacity) return;
    const o = this.out;
    o.data.set(d.subarray(0, p.length));
    o.length = p.length;
    o.copyOffloads(p);
    o.data.copyWithin(0, 6, 12); // destination: the sender
    o.data.set(this.mac, 6); // source: us
    this.reflected++;
    this.link.send(o);
  }
}
