/**
 * A learning L2 switch (IEEE 802.1D forwarding without spanning tree): a frame from a port
 * teaches the switch where its source address lives; a frame to a learned unicast address goes
 * to that port only; broadcast, multicast and unknown unicast frames are flooded to every other
 * port. Ports come and go while others run. Per-port counters.
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
import { type NetPacket, isGroupAddress, macKey } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { ETH_HEADER } from '../../spec/net.js';

/** Per-port counters (from the port's point of view: rx = frames the port sent into the switch). */
export interface SwitchPortCounters {
  /** Frames and bytes the port sent into the switch. */
  rxFrames: number;
  rxBytes: number;
  /** Frames and bytes the switch delivered to the port. */
  txFrames: number;
  txBytes: number;
  /** Frames from the port the switch dropped (runt, looped too deep, port detached, GSO not segmentable). */
  dropped: number;
}

/** Nested synchronous forwards at most (a frame answered by a frame answered by ...). */
export const MAX_FORWARD_DEPTH = 8;
/** Default size of the address table. */
export const DEFAULT_MAX_ADDRESSES = 4096;

/** A port's attachment: its link into the switch, its counters, and detach. */
export class SwitchPort implements NetLink {
  readonly counters: SwitchPortCounters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, dropped: 0 };
  /** @internal */
  attached = true;

  constructor(
    private readonly sw: NetSwitch,
    readonly port: NetPort,
  ) {}

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

export interface NetSwitchOptions {
  /** Learned addresses at most (default 4096). */
  readonly maxAddresses?: number;
}

export class NetSwitch {
  private ports: SwitchPort[] = [];
  private readonly table = new Map<number, SwitchPort>();
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
  attach(port: NetPort): SwitchPort {
    const sp = new SwitchPort(this, port);
    this.ports = [...this.ports, sp]; // copy on write: a forward in progress keeps its list
    return sp;
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
    return this.table.get(macKey(mac, 0));
  }

  /** @internal */
  detach(sp: SwitchPort): void {
    if (!sp.attached) return;
    sp.attached = false;
    this.ports = this.ports.filter((p) => p !== sp);
    for (const [k, v] of this.table) if (v === sp) this.table.delete(k);
  }

  /** @internal A frame from `from`: learn its source, deliver to the learned port or flood. */
  forward(from: SwitchPort, p: NetPacket): void {
    if (!from.attached || p.length < ETH_HEADER || this.depth >= MAX_FORWARD_DEPTH) {
      from.counters.dropped++;
      return;
    }
    from.counters.rxFrames++;
    from.counters.rxBytes += p.length;
    const d = p.data;
    // Learn the source (a group source address is bogus: never learned).
    if (!isGroupAddress(d, 6)) {
      const src = macKey(d, 6);
      const known = this.table.get(src);
      if (known !== from && (known !== undefined || this.table.size < this.maxAddresses)) this.table.set(src, from);
    }
    this.depth++;
    try {
      if (!isGroupAddress(d, 0)) {
        const to = this.table.get(macKey(d, 0));
        if (to !== undefined) {
          if (to !== from) this.deliver(to, p);
          return; // a frame for the port it came from is not sent back
        }
      }
      const ports = this.ports;
      for (let i = 0; i < ports.length; i++) {
        const to = ports[i]!;
        if (to !== from && to.attached) this.deliver(to, p);
      }
    } finally {
      this.depth--;
    }
  }

  /** Software segmentation done for ports without `takesGso`: packets, segments, refused. */
  get segmentation(): { packets: number; segments: number; refused: number } {
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
