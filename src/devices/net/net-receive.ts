/**
 * 5.1.6.4 Processing of incoming packets, device side: a frame from the link for the driver.
 * It is filtered (rx modes, MAC and VLAN tables); a GSO frame goes whole to a driver with the
 * matching GUEST_* offload, or as its segments (gso-segmenter.ts); each is written behind a
 * header into one buffer, or with MRG_RXBUF over as many buffers as it takes, all made visible
 * at once (device/net/32); when the ring holds too few the popped buffers go back with
 * `undoPop` and the frame is dropped and counted. The receive queue is the RSS indirection
 * table's when RSS is configured (net-rss.ts), else the pair the flow was sent on or a hash
 * over the pairs in use; with HASH_REPORT the hash goes into the header (of the inner packet
 * with HASH_TUNNEL). With RSC_EXT, TCP segments of one flow may first be coalesced into one GSO
 * frame (rsc-coalescer.ts). The chains, header and segment buffers are made once; per frame the
 * only allocation is the kit's view for copying a frame over 32 bytes (bench/net-heap.ts).
 */
import type { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext } from '../../device/types.js';
import { QueueError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { DescriptorChain } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import { ETH_HEADER, NetF, NetHdr } from '../../spec/net.js';
import type { FlowSteering } from './flow-steering.js';
import { GsoSegmenter, type NetPacketSink } from './gso-segmenter.js';
import type { NetCoalescing } from './net-coalescing.js';
import type { NetDeviceStats } from './net-device-options.js';
import { NET_GSO_MAX_FRAME, type RxHeaderFields, RxGsoDecision, writeRxHeader } from './net-header.js';
import { NetHashReport, type NetRss } from './net-rss.js';
import { NetRxCounter, type NetQueueCounters } from './net-stats.js';
import { type NetPacket, completeChecksum } from './packet.js';
import type { RxFilter } from './rx-filter.js';
import { RxChainWriter } from './rx-chain-writer.js';
import { RscCoalescer, type RscSink } from './rsc-coalescer.js';

/**
 * The feature bits the receive path tests per frame, as a small integer (`rxFlags`) kept by the
 * device when features are negotiated or CTRL_GUEST_OFFLOADS changes them: BigInt operations
 * allocate, and the hot path must not (bench/net-heap.ts).
 */
export const NetRxFlag = {
  /** GUEST_CSUM in effect. */
  GUEST_CSUM: 1,
  GUEST_TSO4: 2,
  GUEST_TSO6: 4,
  /** MRG_RXBUF negotiated. */
  MERGEABLE: 8,
  /** RSC_EXT negotiated. */
  RSC: 16,
} as const;

/** `rxFlags` for negotiated features `f` and receive offloads in effect `offloads`. */
export function netRxFlags(f: bigint, offloads: bigint): number {
  return (
    ((offloads & NetF.GUEST_CSUM) !== 0n ? NetRxFlag.GUEST_CSUM : 0) |
    ((offloads & NetF.GUEST_TSO4) !== 0n ? NetRxFlag.GUEST_TSO4 : 0) |
    ((offloads & NetF.GUEST_TSO6) !== 0n ? NetRxFlag.GUEST_TSO6 : 0) |
    ((f & NetF.MRG_RXBUF) !== 0n ? NetRxFlag.MERGEABLE : 0) |
    ((f & NetF.RSC_EXT) !== 0n ? NetRxFlag.RSC : 0)
  );
}

/** The device state the receive path reads (NetDevice keeps it; set at activation and by control commands). */
export interface NetReceiveState {
  /** NetRxFlag bits (netRxFlags of the negotiated features and the offloads in effect). */
  readonly rxFlags: number;
  /** The running device's context, null before activation and after reset. */
  readonly rxContext: DeviceContext | null;
  /** VIRTIO_NET_S_LINK_UP as the host set it: while the link is down, received frames are dropped. */
  readonly isLinkUp: boolean;
  /** The negotiated features and the header size they give (netHeaderSize). */
  readonly negotiatedFeatures: bigint;
  /** Bytes of the virtio-net header in front of each received frame, for the negotiated features (5.1.6). */
  readonly rxHeaderSize: number;
  /** The receive offloads in effect (negotiated, as CTRL_GUEST_OFFLOADS last set them). */
  readonly guestOffloadsInEffect: bigint;
  /** HASH_REPORT negotiated: every header carries hash_value and hash_report. */
  readonly hashReporting: boolean;
  /** Queue pairs in use (VQ_PAIRS_SET). */
  readonly activePairCount: number;
}

/** What the receive path shares with the rest of the device. */
export interface NetReceiveParts {
  readonly name: string;
  readonly logger: Logger | undefined;
  readonly state: NetReceiveState;
  readonly server: QueueServer;
  readonly stats: NetDeviceStats;
  readonly counters: NetQueueCounters;
  readonly coalescing: NetCoalescing;
  readonly filter: RxFilter;
  readonly rss: NetRss;
  readonly flows: FlowSteering;
  /** The largest frame without GSO: MTU, Ethernet header, VLAN tag (device/net/5, /6). */
  readonly maxFrame: number;
  /** The receive queue size (the most buffers one frame can take). */
  readonly queueSize: number;
}

export class NetReceiver implements RscSink {
  private readonly parts: NetReceiveParts;
  private readonly rxGso = new RxGsoDecision();
  private readonly segmenter = new GsoSegmenter();
  /** Where segments of a GSO frame for this driver go (made once). */
  private readonly segmentSink: NetPacketSink;
  private readonly rxFields: RxHeaderFields = { guestCsum: false, gsoType: 0, hdrLen: 0, rsc: false, rscSegments: 0, rscDupAcks: 0, numBuffers: 0, hashValue: 0, hashReport: 0 };
  /** RSC_EXT: segments of one flow coalesced into a GSO frame (rsc-coalescer.ts). */
  readonly rsc = new RscCoalescer(this);
  private readonly rxHdr = new Uint8Array(NetHdr.HASH_SIZE);
  private readonly writer = new RxChainWriter();
  /** Per receive queue: chains for the buffers of one frame, made as first needed (at most the queue size). */
  private rxChains: DescriptorChain[][] = [];
  private readonly rxWritten: Uint32Array;

  constructor(parts: NetReceiveParts) {
    this.parts = parts;
    this.segmentSink = { deliver: (seg: NetPacket) => this.receiveSegment(seg) };
    this.rxWritten = new Uint32Array(parts.queueSize);
  }

  /** Forgets the chains made for receive queue `index` (it was started, stopped or reset). */
  dropChains(index: number): void {
    if ((index & 1) === 0 && this.rxChains[index >> 1] !== undefined) this.rxChains[index >> 1] = [];
  }

  /** Device reset: every queue's chains go, and frames held for coalescing. */
  reset(): void {
    this.rxChains = [];
    this.rsc.reset();
  }

  /** NetPort.deliver: a frame from the link for the driver. */
  deliver(p: NetPacket): void {
    const { stats: st, state } = this.parts;
    if (state.rxContext === null || !state.isLinkUp || p.length < ETH_HEADER) {
      st.rxNoBuffer++;
      return;
    }
    if (!this.parts.filter.accepts(p)) {
      st.rxFiltered++;
      return;
    }
    const flags = state.rxFlags;
    const rscNegotiated = (flags & NetRxFlag.RSC) !== 0;
    if (p.gsoType !== 0) {
      if (rscNegotiated) this.rsc.flushFlowOf(p); // a flow's held segments go before its GSO frame
      this.receiveGso(p, 0);
      return;
    }
    // device/net/5: nothing longer than the MTU plus the Ethernet header (and a VLAN tag).
    if (p.length > this.parts.maxFrame) {
      st.rxErrors++;
      return;
    }
    if (rscNegotiated) {
      // RSC_EXT with GUEST_CSUM and GUEST_TSO4/6 in effect: TCP segments may be coalesced.
      if ((flags & NetRxFlag.GUEST_CSUM) !== 0 && this.rsc.offer(p, (flags & NetRxFlag.GUEST_TSO4) !== 0, (flags & NetRxFlag.GUEST_TSO6) !== 0)) return;
    }
    this.receiveFrame(p, 0, 0, 0, 0);
  }

  /** RscSink: a held segment as it came, or a coalesced TCP GSO frame with its counts. */
  deliverCoalesced(p: NetPacket, segments: number, dupAcks: number): void {
    if (this.parts.state.rxContext === null) return;
    if (p.gsoType === 0) this.receiveFrame(p, 0, 0, 0, 0);
    else {
      this.parts.stats.rxRscFrames++;
      this.receiveGso(p, segments, dupAcks);
    }
  }

  /**
   * 5.1.6.4: a GSO frame whole to a driver with the matching GUEST_* offload (gso fields set,
   * device/net/46), else as segments (device/net/34..37, /40, /45: never a gso_type the driver
   * did not negotiate). With RSC_EXT a whole frame reports its segment count: `segments` when
   * the device coalesced it, else the segments the sender's frame stands for (device/net/47).
   */
  private receiveGso(p: NetPacket, segments: number, dupAcks = 0): void {
    const st = this.parts.stats;
    if (p.length <= NET_GSO_MAX_FRAME && this.rxGso.takesWhole(p, this.parts.state.guestOffloadsInEffect)) {
      st.rxGsoWhole++;
      const hl = this.rxGso.hdrLen;
      const n = segments > 0 ? segments : Math.min(0xffff, Math.ceil((p.length - hl) / p.gsoSize));
      this.receiveFrame(p, this.rxGso.gsoTypeOut, hl, n, dupAcks);
    } else if (this.segmenter.segment(p, this.segmentSink)) st.rxGsoSegmented++;
    else st.rxErrors++;
  }

  private receiveSegment(seg: NetPacket): void {
    if (seg.length > this.parts.maxFrame) this.parts.stats.rxErrors++;
    else this.receiveFrame(seg, 0, 0, 0, 0);
  }

  /**
   * A frame (or a whole GSO frame with its gso_type, hdr_len and, with RSC_EXT, the segments
   * and duplicated ACKs it stands for) into a receive queue.
   */
  private receiveFrame(p: NetPacket, gsoType: number, hdrLen: number, rscSegments: number, rscDupAcks: number): void {
    const { stats: st, state, rss } = this.parts;
    const ctx = state.rxContext!;
    const guestCsum = (state.rxFlags & NetRxFlag.GUEST_CSUM) !== 0;
    // device/net/33: a driver without GUEST_CSUM gets a complete checksum.
    if (p.needsCsum && !guestCsum && !completeChecksum(p)) {
      st.rxErrors++;
      return;
    }
    // 5.1.6.4.3: a hash when RSS steers or HASH_REPORT reports (else none is calculated).
    const hashed = (rss.steering || state.hashReporting) && rss.hash(p.data, p.length);
    const f = this.rxFields;
    f.guestCsum = guestCsum;
    f.gsoType = gsoType;
    f.hdrLen = hdrLen;
    // device/net/47, /48: RSC_INFO on every GSO frame when RSC_EXT was negotiated, never without.
    f.rsc = gsoType !== 0 && (state.rxFlags & NetRxFlag.RSC) !== 0;
    f.rscSegments = rscSegments;
    f.rscDupAcks = rscDupAcks;
    f.hashValue = hashed ? rss.hashValue : 0;
    f.hashReport = hashed ? rss.hashReport : NetHashReport.NONE;
    let vq: DeviceQueue | null;
    if (rss.steering) {
      // device/net/97: the indirection table, or the unclassified queue; device/net/98: a queue
      // being reset drops the frame.
      const pair = hashed ? rss.table[rss.hashValue & rss.tableMask]! : rss.unclassified;
      vq = this.parts.server.queue(2 * pair);
      if (vq === null) {
        st.rxSteeredToStopped++;
        this.parts.counters.inc(2 * pair, NetRxCounter.DROPS);
        return;
      }
    } else {
      vq = this.pickRxQueue(p);
      if (vq === null) {
        st.rxNoBuffer++; // device/net/94: every receive queue is being reset
        return;
      }
    }
    try {
      this.receiveInto(ctx, vq, p);
    } catch (e) {
      const reason = e instanceof QueueError ? e.message : `receive: ${String(e)}`;
      this.parts.logger?.error(`${this.parts.name}: ${reason}`);
      ctx.needsReset(reason);
    }
  }

  /**
   * device/net/91: receiveq1 only until VQ_PAIRS_SET; then the pair the flow was last sent on
   * (device/net/89), else a flow hash over the pairs in use (device/net/90), skipping queues
   * being reset (device/net/93).
   */
  private pickRxQueue(p: NetPacket): DeviceQueue | null {
    const n = this.parts.state.activePairCount;
    const pair = n > 1 ? this.parts.flows.pick(p.data, p.length, n) : 0;
    for (let k = 0; k < n; k++) {
      const vq = this.parts.server.queue(2 * ((pair + k) % n));
      if (vq !== null) return vq;
    }
    return null;
  }

  /** Receive buffers too small for their use: returned with nothing written, counted. */
  private returnEmpty(vq: DeviceQueue, chains: DescriptorChain[], n: number): void {
    for (let i = 0; i < n; i++) vq.pushDeferred(chains[i]!, 0);
    vq.publish();
    this.parts.coalescing.packet(vq.index);
    this.parts.coalescing.notify(vq.index);
    this.parts.stats.rxShortBuffers++;
    this.parts.counters.inc(vq.index, NetRxCounter.DROPS);
  }

  private receiveInto(ctx: DeviceContext, vq: DeviceQueue, p: NetPacket): void {
    const { stats: st, state, counters } = this.parts;
    const hl = state.rxHeaderSize;
    const total = hl + p.length;
    const mergeable = (state.rxFlags & NetRxFlag.MERGEABLE) !== 0;
    const pairIndex = vq.index >> 1;
    let chains = this.rxChains[pairIndex];
    if (chains === undefined) chains = this.rxChains[pairIndex] = [];
    let n = 0;
    let room = 0;
    while (room < total && n < vq.size) {
      if (n === chains.length) chains.push(vq.createChain());
      const c = chains[n]!;
      if (!vq.pop(c)) break;
      n++;
      if (c.fault !== null) {
        // A buffer outside guest memory: the driver broke the ring's contract (2.1.2).
        vq.undoPop(n);
        ctx.needsReset(`receive queue ${vq.index}: buffer outside guest memory`);
        return;
      }
      if (mergeable && c.writableBytes < hl) {
        // driver/net/45: a mergeable buffer holds at least the header. The buffers popped for
        // this frame are used empty (the ring moves on past the bad one), the frame is dropped.
        this.returnEmpty(vq, chains, n);
        return;
      }
      room += c.writableBytes;
      if (!mergeable) break; // device/net/28: one buffer without MRG_RXBUF
    }
    if (n === 0) {
      st.rxNoBuffer++;
      counters.rxOverrun(vq.index);
      return;
    }
    if (room < total) {
      if (mergeable) {
        // Too few buffers for now: give them back untouched and drop the frame.
        vq.undoPop(n);
        st.rxNoBuffer++;
        counters.rxOverrun(vq.index);
        return;
      }
      // One buffer smaller than the frame (driver/net/40ff. SHOULD give 1526 bytes): used empty,
      // so the ring moves on.
      this.returnEmpty(vq, chains, 1);
      return;
    }
    this.rxFields.numBuffers = n;
    writeRxHeader(this.rxHdr, hl, p, this.rxFields, ctx.littleEndian);
    // Header then frame, buffer after buffer; all but the last filled (device/net/31).
    let at = 0; // position in header ++ frame
    for (let i = 0; i < n; i++) {
      const wrote = this.writer.fill(chains[i]!, this.rxHdr, hl, p.data, total, at);
      at += wrote;
      this.rxWritten[i] = wrote;
    }
    // device/net/32: every buffer of the frame becomes visible with one publication.
    const qs = ctx.stats;
    for (let i = 0; i < n; i++) {
      vq.pushDeferred(chains[i]!, this.rxWritten[i]!);
      // Receive buffers are popped here, not by the queue server: count them for the operator.
      if (qs !== undefined) {
        qs.popped(vq.index, 0);
        qs.completed(vq.index, this.rxWritten[i]!);
      }
    }
    vq.publish();
    st.rxFrames++;
    st.rxBytes += p.length;
    counters.rxPacket(vq.index, p.length, this.rxHdr[NetHdr.FLAGS]!, this.rxFields.gsoType);
    this.parts.coalescing.packet(vq.index);
    this.parts.coalescing.notify(vq.index);
  }
}
