/**
 * Automatic receive steering in multiqueue mode (5.1.6.5.5, device/net/89): "after the driver
 * transmitted a packet of a flow on transmitqX, the device SHOULD cause incoming packets for
 * that flow to be steered to receiveqX". A flow is keyed by a hash that is the same in both
 * directions (addresses summed, ports XORed: the reply of a flow has the same key); a small
 * direct-mapped table remembers the transmit pair of the last packet sent per key. Frames of a
 * flow never sent go by the plain hash (device/net/90). Fixed memory, no allocation per frame;
 * a collision only steers a frame to another valid queue.
 */
import { macKey } from './packet.js';
import { FrameLayout, IPPROTO_TCP, IPPROTO_UDP } from './frame-layout.js';

const TABLE_BITS = 10;
const TABLE_SIZE = 1 << TABLE_BITS;

export class FlowSteering {
  /** Transmit pair + 1 per flow slot (0: no flow seen). */
  private readonly pairOf = new Uint16Array(TABLE_SIZE);
  private readonly layout = new FrameLayout();

  /** The direction-independent key of frame d[0, len). */
  flowKey(d: Uint8Array, len: number): number {
    const l = this.layout;
    let h: number;
    if (l.parseNetwork(d, len)) {
      const at = l.ipv6 ? l.l3 + 8 : l.l3 + 12;
      const half = l.ipv6 ? 16 : 4;
      let a = 0;
      let b = 0;
      for (let i = 0; i < half; i += 2) {
        a = (a * 31 + ((d[at + i]! << 8) | d[at + i + 1]!)) | 0;
        b = (b * 31 + ((d[at + half + i]! << 8) | d[at + half + i + 1]!)) | 0;
      }
      h = (a + b) | 0;
      if (!l.fragment && (l.proto === IPPROTO_TCP || l.proto === IPPROTO_UDP) && len >= l.l4 + 4) {
        h = (h * 31 + (((d[l.l4]! << 8) | d[l.l4 + 1]!) ^ ((d[l.l4 + 2]! << 8) | d[l.l4 + 3]!)) + l.proto) | 0;
      }
    } else {
      h = (macKey(d, 0) + macKey(d, 6)) % 0x7fff_ffff;
    }
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** A frame of the flow went out on transmit pair `pair`. */
  sent(d: Uint8Array, len: number, pair: number): void {
    this.pairOf[this.flowKey(d, len) & (TABLE_SIZE - 1)] = pair + 1;
  }

  /** The receive pair for a frame among `pairs` in use: the flow's transmit pair, else the plain hash. */
  pick(d: Uint8Array, len: number, pairs: number): number {
    const key = this.flowKey(d, len);
    const p = this.pairOf[key & (TABLE_SIZE - 1)]! - 1;
    return p >= 0 && p < pairs ? p : key % pairs;
  }

  reset(): void {
    this.pairOf.fill(0);
  }
}
