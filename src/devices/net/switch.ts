/**
 * A learning L2 switch (IEEE 802.1D forwarding without spanning tree): a frame from a port
 * teaches the switch where its source address lives; a frame to a learned unicast address goes
 * to that port only; broadcast, multicast and unknown unicast frames are flooded to every other
 * port. Ports come and go while others run. Per-port counters.
 *
 * VLANs (IEEE 802.1Q): a port attached with `vlans` is a member of those VLAN ids only (and of
 * the untagged network unless `untagged: false`); a frame's VLAN is the id of its 802.1Q tag, or
 * "untagged". A frame from a port that is not a member of its VLAN is dropped (counted); frames
 * go only to ports that are members. Tags pass unchanged. Addresses are learned once for all
 * VLANs (shared VLAN learning).
 *
 * Monitors (`monitor`) see every frame the switch accepts, before it is delivered: a capture
 * port (pcap) is one.
 *
 * The guest is untrusted: a port that sends from many source addresses cannot grow the table
 * beyond `maxAddresses` (further addresses are not learned and their frames are flooded), and a
 * chain of ports that answer synchronously (two reflectors) is cut at `MAX_FORWARD_DEPTH`.
 *
 * A GSO packet (`packet.gsoType` not NONE) goes whole only to ports that say `takesGso`; every
 * other port gets its segments (gso-segmenter.ts), so ports that know nothing of GSO keep
 * seeing ordinary frames. One segmenter per forwarding depth: a port that answers a segment
 * synchronously cannot clobber the segments still to come.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { GsoSegmenter } from './gso-segmenter.js';
import { MacTable } from './mac-table.js';
import { type NetPacket, isGroupAddress } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { ETH_HEADER, ETH_P_8021Q, ETH_VLAN_TAG, NET_VLAN_IDS } from '../../spec/net.js';

/** Per-port counters (from the port's point of view: rx = frames the port sent into the switch). */
export interface SwitchPortCounters {
  /** Frames and bytes the port sent into the switch. */
  rxFrames: number;
  /** Bytes of the frames the port sent into the switch. */
  rxBytes: number;
  /** Frames and bytes the switch delivered to the port. */
  txFrames: number;
  /** Bytes of the frames the switch delivered to the port. */
  txBytes: number;
  /** Frames from the port the switch dropped (runt, looped too deep, port detached, GSO not segmentable). */
  dropped: number;
}

/** Nested synchronous forwards at most (a frame answered by a frame answered by ...). */
export const MAX_FORWARD_DEPTH = 8;
/** Default size of the address table. */
export const DEFAULT_MAX_ADDRESSES = 4096;

/** The VLAN of an untagged frame, for membership tests. */
export const UNTAGGED = -1;

/** How a port joins the switch. */
export interface SwitchPortOptions {
  /** VLAN ids (0..4095) the port is a member of; absent: every VLAN (no filtering). */
  readonly vlans?: readonly number[];
  /** Whether untagged frames reach and leave the port (default true). */
  readonly untagged?: boolean;
  /**
   * A link to another switch of a full mesh (the thread links of `virtio-ts net --threads`):
   * a frame that came in through a link is never sent out through a link (split horizon: the
   * switch it came from already flooded it to every other switch), and monitors do not see it
   * (the switch where it entered showed it to its own). Links are members of every VLAN.
   */
  readonly link?: boolean;
}

/** A port's attachment: its link into the switch, its counters, and detach. */
export class SwitchPort implements NetLink {
  /** The port's frame and byte counters, updated in place. */
  readonly counters: SwitchPortCounters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, dropped: 0 };
  /** @internal */
  attached = true;
  /** One bit per VLAN id, or null for "member of all". */
  private readonly vlanBits: Uint8Array | null;
  private readonly untagged: boolean;
  /** A link to another switch of a mesh (SwitchPortOptions.link). */
  readonly link: boolean;
  /**
   * The switch reads only the Ethernet header (NET_PARTIAL_FRAME bytes) to decide, and completes
   * a partial packet before a monitor or a port sees it: a frame nobody receives is never copied whole.
   */
  readonly partialFrames = true;
  /**
   * @internal The last frame from this port that the switch learned from and looked up
   * (NetSwitch.forward): its 12 address bytes as words, the table's generation then, and the
   * port its destination was learned on (undefined: flood). A sender's frames mostly go to one
   * peer: the next such frame costs three compares instead of two table lookups.
   */
  seenGen = -1;
  /** @internal */
  seen0 = 0;
  /** @internal */
  seen1 = 0;
  /** @internal */
  seen2 = 0;
  /** @internal */
  seenTo: SwitchPort | undefined = undefined;

  constructor(
    private readonly sw: NetSwitch,
    /** The port attached (a device's back end, a TAP, a reflector...). */
    readonly port: NetPort,
    opts: SwitchPortOptions = {},
  ) {
    this.untagged = opts.untagged ?? true;
    this.link = opts.link ?? false;
    if (opts.vlans === undefined) {
      this.vlanBits = null;
    } else {
      this.vlanBits = new Uint8Array(NET_VLAN_IDS / 8);
      for (const v of opts.vlans) {
        if (!Number.isInteger(v) || v < 0 || v >= NET_VLAN_IDS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `VLAN id ${v} not in 0..${NET_VLAN_IDS - 1}`);
        this.vlanBits[v >> 3]! |= 1 << (v & 7);
      }
    }
  }

  /** Whether the port is a member of `vlan` (a VLAN id, or UNTAGGED). */
  isMember(vlan: number): boolean {
    if (vlan === UNTAGGED) return this.untagged;
    const b = this.vlanBits;
    return b === null || (b[vlan >> 3]! & (1 << (vlan & 7))) !== 0;
  }

  /** The attached port's name (for logs and stats). */
  get name(): string {
    return this.port.name;
  }

  send(packet: NetPacket): void {
    this.sw.forward(this, packet);
  }

  /** Removes the port; its learned addresses are forgotten. */
  detach(): void {
    this.sw.detach(this);
  }
}

/** Options of NetSwitch. */
export interface NetSwitchOptions {
  /** Learned addresses at most (default 4096). */
  readonly maxAddresses?: number;
}

/** A monitor's attachment: detach to stop seeing frames. */
export interface SwitchMonitor {
  /** Stops the monitor seeing frames; calling it again does nothing. */
  detach(): void;
}

/** The VLAN id of a frame's 802.1Q tag, or UNTAGGED. */
export function frameVlan(p: NetPacket): number {
  const d = p.data;
  if (p.length < ETH_HEADER + ETH_VLAN_TAG || ((d[12]! << 8) | d[13]!) !== ETH_P_8021Q) return UNTAGGED;
  return ((d[14]! << 8) | d[15]!) & 0xfff;
}

/** The learning L2 switch of virtio-ts's virtual network (see the file comment): ports, VLANs, monitors. */
export class NetSwitch {
  private ports: SwitchPort[] = [];
  private monitors: NetPort[] = [];
  private readonly table = new MacTable<SwitchPort>();
  private readonly maxAddresses: number;
  private depth = 0;
  private readonly segmenters: GsoSegmenter[] = [];

  constructor(opts: NetSwitchOptions = {}) {
    this.maxAddresses = opts.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
    if (!Number.isInteger(this.maxAddresses) || this.maxAddresses < 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxAddresses ${this.maxAddresses}`);
    }
  }

  /** Attaches `port`; frames it sends go through the returned link. */
  attach(port: NetPort, opts: SwitchPortOptions = {}): SwitchPort {
    const sp = new SwitchPort(this, port, opts);
    this.ports = [...this.ports, sp]; // copy on write: a forward in progress keeps its list
    return sp;
  }

  /**
   * Shows `port` every frame the switch accepts from any port (a mirror port, as a capture):
   * delivered before the frame goes on. The monitor must not send.
   */
  monitor(port: NetPort): SwitchMonitor {
    this.monitors = [...this.monitors, port];
    return {
      detach: () => {
        this.monitors = this.monitors.filter((m) => m !== port);
      },
    };
  }

  /** The attached ports, in attach order. */
  get attached(): readonly SwitchPort[] {
    return this.ports;
  }

  /** Learned addresses now. */
  get addressCount(): number {
    return this.table.size;
  }

  /** The port an address was learned on, or undefined. */
  lookup(mac: Uint8Array): SwitchPort | undefined {
    return this.table.get(mac, 0);
  }

  /** @internal */
  detach(sp: SwitchPort): void {
    if (!sp.attached) return;
    sp.attached = false;
    this.ports = this.ports.filter((p) => p !== sp);
    this.table.deleteValue(sp);
  }

  /** @internal A frame from `from`: learn its source, deliver to the learned port or flood. */
  forward(from: SwitchPort, p: NetPacket): void {
    if (!from.attached || p.length < ETH_HEADER || this.depth >= MAX_FORWARD_DEPTH) {
      from.counters.dropped++;
      return;
    }
    const vlan = frameVlan(p);
    if (!from.isMember(vlan)) {
      from.counters.dropped++;
      return;
    }
    from.counters.rxFrames++;
    from.counters.rxBytes += p.length;
    const d = p.data;
    const monitors = this.monitors;
    if (!from.link && monitors.length > 0) {
      p.ensureFrame();
      for (let i = 0; i < monitors.length; i++) monitors[i]!.deliver(p);
    }
    // Learn the source (a group source address is bogus: never learned), look the destination
    // up (a group address is flooded). The same addresses as the last frame from this port,
    // with the table unchanged since (its generation): nothing to learn, the same answer.
    const table = this.table;
    const w = p.data32;
    let to: SwitchPort | undefined;
    if (w !== null && from.seenGen === table.generation && w[0] === from.seen0 && w[1] === from.seen1 && w[2] === from.seen2) {
      to = from.seenTo;
    } else {
      if (!isGroupAddress(d, 6)) {
        const known = table.get(d, 6);
        if (known !== from && (known !== undefined || table.size < this.maxAddresses)) table.set(d, 6, from);
      }
      to = isGroupAddress(d, 0) ? undefined : table.get(d, 0);
      if (w !== null) {
        from.seen0 = w[0]!;
        from.seen1 = w[1]!;
        from.seen2 = w[2]!;
        from.seenTo = to;
        from.seenGen = table.generation;
      }
    }
    this.depth++;
    try {
      if (to !== undefined) {
        if (to !== from && to.isMember(vlan) && !(to.link && from.link)) this.deliver(to, p);
        return; // a frame for the port it came from is not sent back
      }
      const ports = this.ports;
      for (let i = 0; i < ports.length; i++) {
        const to = ports[i]!;
        if (to !== from && to.attached && to.isMember(vlan) && !(to.link && from.link)) this.deliver(to, p);
      }
    } finally {
      this.depth--;
    }
  }

  /** Software segmentation done for ports without `takesGso`: packets, segments, refused. */
  get segmentation(): {
    /** GSO packets segmented. */
    packets: number;
    /** Frames made from them. */
    segments: number;
    /** GSO packets that could not be segmented (dropped). */
    refused: number;
  } {
    let packets = 0;
    let segments = 0;
    let refused = 0;
    for (const s of this.segmenters) {
      packets += s.packets;
      segments += s.segments;
      refused += s.refused;
    }
    return { packets, segments, refused };
  }

  private deliver(to: SwitchPort, p: NetPacket): void {
    p.ensureFrame();
    to.counters.txFrames++;
    to.counters.txBytes += p.length;
    if (p.gsoType === 0 || to.port.takesGso === true) {
      to.port.deliver(p);
      return;
    }
    const k = this.depth - 1; // forward() raised depth before delivering
    let s = this.segmenters[k];
    if (s === undefined) s = this.segmenters[k] = new GsoSegmenter();
    if (!s.segment(p, to.port)) to.counters.dropped++;
  }
}
