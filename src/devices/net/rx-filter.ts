/**
 * The receive filter of a virtio-net device (5.1.6.5.1 to 5.1.6.5.3): rx modes, the MAC
 * filtering table, the VLAN filter table. Plain state and one `accepts` per frame, without
 * allocation; the control queue handler (net-control.ts) sets it.
 */
import { ETH_P_8021Q, NET_VLAN_IDS } from '../../spec/net.js';
import { BROADCAST_KEY, type NetPacket, isGroupAddress, macKey } from './packet.js';

/**
 * Entries per MAC table (unicast, multicast). A longer table sets its overflow flag instead:
 * the device then accepts every address of that kind (5.1.6.5.2 footnote: "it can ... silently
 * switch to allmulti or promiscuous mode if it is given too many addresses").
 */
export const MAC_TABLE_ENTRIES = 64;

/** Which received frames a virtio-net device passes to the driver, as VIRTIO_NET_CTRL_RX/MAC/VLAN set it. */
export class RxFilter {
  /**
   * Promiscuous after reset, as QEMU's virtio-net: a driver that negotiates CTRL_RX narrows it
   * (Linux sends PROMISC off at open); one that does not still receives its frames.
   */
  promisc = true;
  /** VIRTIO_NET_CTRL_RX_ALLMULTI: every multicast frame passes. */
  allMulti = false;
  /** VIRTIO_NET_CTRL_RX_ALLUNI: every unicast frame passes. */
  allUni = false;
  /** VIRTIO_NET_CTRL_RX_NOMULTI: no multicast frame passes. */
  noMulti = false;
  /** VIRTIO_NET_CTRL_RX_NOUNI: no unicast frame passes. */
  noUni = false;
  /** VIRTIO_NET_CTRL_RX_NOBCAST: no broadcast frame passes. */
  noBcast = false;
  /** Whether unicast frames are filtered by address (the device knows the driver's address). */
  filterUnicast = false;
  /** The primary address as a macKey. */
  macKey = 0;
  /** Unicast MAC table (VIRTIO_NET_CTRL_MAC_TABLE_SET), as macKeys; the first `ucCount` count. */
  readonly uc = new Float64Array(MAC_TABLE_ENTRIES);
  /** Multicast MAC table, as macKeys; the first `mcCount` count. */
  readonly mc = new Float64Array(MAC_TABLE_ENTRIES);
  /** Entries in use in `uc`. */
  ucCount = 0;
  /** Entries in use in `mc`. */
  mcCount = 0;
  /** The driver gave more than MAC_TABLE_ENTRIES unicast addresses: every unicast frame passes. */
  ucOverflow = false;
  /** The driver gave more than MAC_TABLE_ENTRIES multicast addresses: every multicast frame passes. */
  mcOverflow = false;
  /** VLAN filtering on (CTRL_VLAN negotiated): tagged frames pass only with their id in `vlans`. */
  vlanFilter = false;
  /** VLAN filter table: bit `vid` set = VLAN id `vid` (0..4095) passes. */
  readonly vlans = new Uint8Array(NET_VLAN_IDS / 8);

  /** device/net/77: an empty MAC table (and default modes) on reset. */
  reset(mac: Uint8Array, filterUnicast: boolean, vlanFilter: boolean): void {
    this.promisc = true;
    this.allMulti = this.allUni = this.noMulti = this.noUni = this.noBcast = false;
    this.macKey = macKey(mac, 0);
    this.filterUnicast = filterUnicast;
    this.ucCount = this.mcCount = 0;
    this.ucOverflow = this.mcOverflow = false;
    this.vlanFilter = vlanFilter;
    this.vlans.fill(0);
  }

  /** VIRTIO_NET_CTRL_VLAN_ADD (`on`) or _DEL for VLAN id `vid` (0..4095). */
  setVlan(vid: number, on: boolean): void {
    const byte = vid >>> 3;
    const mask = 1 << (vid & 7);
    this.vlans[byte] = on ? this.vlans[byte]! | mask : this.vlans[byte]! & ~mask;
  }

  /** Whether VLAN id `vid` is in the filter table. */
  hasVlan(vid: number): boolean {
    return (this.vlans[vid >>> 3]! & (1 << (vid & 7))) !== 0;
  }

  /** Whether the frame passes the filter (5.1.6.5.1 to 5.1.6.5.3). The frame has an Ethernet header. */
  accepts(p: NetPacket): boolean {
    const d = p.data;
    // device/net/81, /82: with CTRL_VLAN, a tagged frame passes only with its id in the table.
    if (this.vlanFilter && p.length >= 16 && ((d[12]! << 8) | d[13]!) === ETH_P_8021Q) {
      if (!this.hasVlan(((d[14]! << 8) | d[15]!) & 0xfff)) return false;
    }
    if (this.promisc) return true; // device/net/65, /66
    const dst = macKey(d, 0);
    if (dst === BROADCAST_KEY) return !this.noBcast; // device/net/75, /72
    if (isGroupAddress(d, 0)) {
      if (this.noMulti) return false; // device/net/70, /71
      if (this.allMulti || this.mcOverflow) return true; // device/net/67
      return contains(this.mc, this.mcCount, dst);
    }
    if (this.noUni) return false; // device/net/73, /74
    if (this.allUni || this.ucOverflow || !this.filterUnicast) return true; // device/net/69
    // device/net/80: the primary address or the unicast table.
    return dst === this.macKey || contains(this.uc, this.ucCount, dst);
  }
}

function contains(t: Float64Array, n: number, key: number): boolean {
  for (let i = 0; i < n; i++) if (t[i] === key) return true;
  return false;
}
