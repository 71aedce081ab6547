/**
 * A switch port on a Linux TAP interface: frames the switch delivers are written to the TAP (the
 * host's network stack receives them), frames the host sends out of the TAP go into the switch.
 * Needs root (CAP_NET_ADMIN) and /dev/net/tun.
 *
 * The TAP is opened with IFF_VNET_HDR (a 10-byte virtio_net_hdr, 5.1.6 legacy layout, in the
 * host's byte order as tun uses it without TUNSETVNETLE) and TUNSETOFFLOAD(TUN_F_CSUM): a partial
 * checksum crosses the TAP as NEEDS_CSUM both ways instead of being summed in software; no GSO
 * offload is asked for, so the kernel segments before handing frames over and a frame from the
 * kernel with a gso_type is dropped and counted.
 *
 * Reads are batched (at most `READ_BUDGET` frames per readiness callback) so one busy TAP does
 * not starve the event loop. No allocation or copy per frame: readv/writev move the header and
 * the frame between the fd and the port's header buffers and packets directly.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { FdWatcher, Platform } from '../../platform/types.js';
import { TapDevice, TunOffload } from '../../platform/tap.js';
import { ETH_HEADER, NetGsoType, NetHdr, NetHdrFlag } from '../../spec/net.js';
import { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import type { NetSwitch, SwitchPort, SwitchPortOptions } from './switch.js';

/** Frames read per readiness callback at most. */
export const READ_BUDGET = 64;
/** The legacy virtio_net_hdr tun uses (no num_buffers). */
const TAP_HDR = NetHdr.LEGACY_SIZE;
/** Largest frame through the TAP: a 64 KiB IP packet plus Ethernet and VLAN headers. */
const TAP_FRAME_MAX = 65535 + 18;

/** Counters of a TapPort (rx: from the host interface into the switch; tx: to it). */
export interface TapPortStats {
  /** Frames read from the TAP and sent into the switch. */
  rxFrames: number;
  /** Bytes of those frames (Ethernet header on, virtio_net_hdr off). */
  rxBytes: number;
  /** Frames from the TAP dropped (runt, unexpected GSO, bad checksum offsets). */
  rxErrors: number;
  /** Frames written to the TAP. */
  txFrames: number;
  /** Bytes of those frames (Ethernet header on, virtio_net_hdr off). */
  txBytes: number;
  /** Frames not written: the interface queue was full, or the TAP is down. */
  txDropped: number;
}

/** How a TapPort opens its host interface (Linux TUN/TAP, needs CAP_NET_ADMIN to create it). */
export interface TapPortOptions {
  /** The interface (created when missing; "" lets the kernel name it tapN). */
  readonly ifname: string;
  /** For readiness callbacks. */
  readonly platform: Platform;
  /** Reports a read failure (the port stops reading); default: none. */
  readonly onError?: (e: Error) => void;
}

export class TapPort implements NetPort {
  /** Frame and byte counters, updated in place. */
  readonly stats: TapPortStats = { rxFrames: 0, rxBytes: 0, rxErrors: 0, txFrames: 0, txBytes: 0, txDropped: 0 };
  readonly name: string;
  private readonly tap: TapDevice;
  private readonly watcher: FdWatcher;
  private readonly rxHdr = new Uint8Array(TAP_HDR);
  private readonly txHdr = new Uint8Array(TAP_HDR);
  private readonly packet = new NetPacket(TAP_FRAME_MAX);
  private readonly onError: ((e: Error) => void) | undefined;
  private attachment: SwitchPort | null = null;
  private closed = false;

  constructor(opts: TapPortOptions) {
    this.tap = TapDevice.open(opts.ifname, TAP_HDR);
    try {
      this.tap.setOffload(TunOffload.CSUM);
      this.watcher = opts.platform.watchReadable(this.tap.fd, () => this.onReadable());
    } catch (e) {
      this.tap.close();
      throw e;
    }
    this.name = `tap ${this.tap.name}`;
    this.onError = opts.onError;
  }

  /** The interface name the kernel gave. */
  get ifname(): string {
    return this.tap.name;
  }

  /** Joins `sw` (frames read from the TAP go there). */
  attachTo(sw: NetSwitch, opts?: SwitchPortOptions): SwitchPort {
    if (this.closed) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${this.name} is closed`);
    this.attachment?.detach();
    this.attachment = sw.attach(this, opts);
    return this.attachment;
  }

  /** Leaves the switch, stops reading and closes the TAP (a non-persistent interface goes away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.attachment?.detach();
    this.attachment = null;
    this.watcher.stop();
    this.tap.close();
  }

  /** NetPort: a frame from the switch for the host. */
  deliver(p: NetPacket): void {
    const st = this.stats;
    if (this.closed) {
      st.txDropped++;
      return;
    }
    const b = this.txHdr;
    b.fill(0);
    if (p.needsCsum) {
      b[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
      putHost16(b, NetHdr.CSUM_START, p.csumStart);
      putHost16(b, NetHdr.CSUM_OFFSET, p.csumOffset);
    }
    let n: number;
    try {
      n = this.tap.write(b, p.data, p.length);
    } catch {
      n = -1; // EIO while the interface is down: the frame is lost, as on a wire
    }
    if (n < 0) {
      st.txDropped++;
      return;
    }
    st.txFrames++;
    st.txBytes += p.length;
  }

  private onReadable(): void {
    const st = this.stats;
    const b = this.rxHdr;
    const p = this.packet;
    for (let i = 0; i < READ_BUDGET && !this.closed; i++) {
      let n: number;
      try {
        n = this.tap.read(b, p.data, p.capacity);
      } catch (e) {
        this.watcher.stop();
        this.onError?.(e as Error);
        return;
      }
      if (n < 0) return;
      const len = n - TAP_HDR;
      if (len < ETH_HEADER || b[NetHdr.GSO_TYPE] !== NetGsoType.NONE) {
        st.rxErrors++;
        continue;
      }
      p.length = len;
      p.needsCsum = (b[NetHdr.FLAGS]! & NetHdrFlag.NEEDS_CSUM) !== 0;
      if (p.needsCsum) {
        p.csumStart = host16(b, NetHdr.CSUM_START);
        p.csumOffset = host16(b, NetHdr.CSUM_OFFSET);
        if (p.csumStart + p.csumOffset + 2 > len) {
          st.rxErrors++;
          continue;
        }
      }
      st.rxFrames++;
      st.rxBytes += len;
      this.attachment?.send(p);
    }
  }
}

/** tun's header fields are in the host's byte order (no TUNSETVNETLE/BE): little-endian on x86 and arm64. */
const HOST_LE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
function host16(b: Uint8Array, o: number): number {
  return HOST_LE ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
function putHost16(b: Uint8Array, o: number, v: number): void {
  b[o + (HOST_LE ? 0 : 1)] = v & 0xff;
  b[o + (HOST_LE ? 1 : 0)] = (v >>> 8) & 0xff;
}
