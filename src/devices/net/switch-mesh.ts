/**
 * The switch of `virtio-ts net --threads T` as a full mesh of learning switches, one per thread
 * (docs/worker-threads.md, "net"): each port (a socket's devices with all their queue pairs, a
 * TAP) is attached to the switch of the one thread that serves it, and every switch has one link
 * port per other thread. A link's output is a FrameRing (SharedArrayBuffer, single producer,
 * single consumer) to the other thread, whose node drains it into its switch through its own
 * link port from the sender.
 *
 * Learning and VLANs stay consistent without a shared table: each switch learns where a source
 * address lives from the frames it sees, so an address of another thread's port is learned on
 * the link to that thread, and the owner thread alone learns the port itself ("the owner learns,
 * the others forward to the owner"). Split horizon (SwitchPortOptions.link) keeps a flooded frame
 * from going round the mesh: a frame that came in through a link goes out to local ports only.
 * A port's VLAN membership is checked on its own thread both ways (links are members of every
 * VLAN); tags pass unchanged through the rings.
 *
 * Capture (--pcap): frames are shown to monitors where they enter the mesh (a local port's
 * frame); the other threads' capture ring carries those to the capture thread, so each frame is
 * written once.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ErrorCode, VirtioError } from '../../errors.js';
import { Doorbell, FrameRingConsumer, FrameRingProducer, createFrameRing, type FrameRingSpec } from './frame-ring.js';
import type { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import type { NetSwitch, SwitchMonitor, SwitchPort } from './switch.js';

/** Frames a node drains from one ring before it looks at the next (and at its event loop). */
export const MESH_DRAIN_BUDGET = 64;
/** A sleeping node looks at its rings at least this often (a bound, not the wake-up path). */
const MESH_IDLE_MS = 1000;

/** The rings of a mesh of `nodes` switches (structured-cloneable: the buffers are shared). */
export interface SwitchMeshSpec {
  /** Switches (threads) in the mesh. */
  readonly nodes: number;
  /** The ring from node f to node t at f * nodes + t (null where f === t). */
  readonly rings: readonly (FrameRingSpec | null)[];
  /** Each node's doorbell (its rings' consumer wakes there). */
  readonly doorbells: readonly SharedArrayBuffer[];
  /** The node writing the capture, and the capture ring from each other node (null: no capture). */
  readonly capture: { readonly node: number; readonly rings: readonly (FrameRingSpec | null)[] } | null;
}

/** How big the rings of a mesh are. */
export interface SwitchMeshOptions {
  /** Slots per ring (a power of two). */
  readonly slots: number;
  /** Largest frame, bytes (the MTU plus the Ethernet header and one VLAN tag). */
  readonly frameBytes: number;
  /** The node that writes the capture (--pcap), or null for none. */
  readonly captureNode: number | null;
}

/** Makes the rings of a mesh of `nodes` switches. */
export function createSwitchMesh(nodes: number, o: SwitchMeshOptions): SwitchMeshSpec {
  if (!Number.isInteger(nodes) || nodes < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `mesh of ${nodes} switches`);
  const doorbells = Array.from({ length: nodes }, () => Doorbell.create());
  const rings: (FrameRingSpec | null)[] = [];
  for (let f = 0; f < nodes; f++) for (let t = 0; t < nodes; t++) rings.push(f === t ? null : createFrameRing(o.slots, o.frameBytes, doorbells[t]!));
  let capture: SwitchMeshSpec['capture'] = null;
  if (o.captureNode !== null) {
    const c = o.captureNode;
    capture = { node: c, rings: Array.from({ length: nodes }, (_, f) => (f === c ? null : createFrameRing(o.slots, o.frameBytes, doorbells[c]!))) };
  }
  return { nodes, rings, doorbells, capture };
}

/** Counters of one link, as its node sees them. */
export interface MeshLinkCounters {
  /** The other node. */
  readonly node: number;
  /** Frames this node pushed into the ring to it. */
  readonly sent: number;
  /** Frames dropped because that ring was full. */
  readonly dropped: number;
  /** Frames dropped because they did not fit a slot. */
  readonly oversize: number;
}

/** A link port: frames the local switch sends to another node go into the ring to it. */
class MeshLinkPort implements NetPort {
  readonly takesGso = false;
  constructor(
    readonly name: string,
    readonly ring: FrameRingProducer,
  ) {}

  deliver(packet: NetPacket): void {
    this.ring.push(packet);
  }
}

/** A monitor that sends what it sees to the capture node. */
class CaptureLinkPort implements NetPort {
  constructor(
    readonly name: string,
    private readonly ring: FrameRingProducer,
  ) {}

  deliver(packet: NetPacket): void {
    this.ring.push(packet);
  }
}

/** One thread's part of a mesh: its links, the drain loop of the rings to it. */
export class SwitchMeshNode {
  private readonly links: (SwitchPort | null)[] = [];
  private readonly outgoing: (FrameRingProducer | null)[] = [];
  private readonly incoming: { ring: FrameRingConsumer; take: (p: NetPacket) => void }[] = [];
  private readonly captureOut: FrameRingProducer | null = null;
  private readonly bell: Doorbell;
  private captureMonitor: SwitchMonitor | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  /**
   * Joins node `index` of `spec` to `sw`: one link port per other node. On the capture node,
   * `capture` receives the frames the other nodes captured (their own monitors see the rest).
   */
  constructor(
    private readonly spec: SwitchMeshSpec,
    /** This node's index in the mesh (its thread). */
    readonly index: number,
    private readonly sw: NetSwitch,
    capture?: NetPort,
  ) {
    if (!Number.isInteger(index) || index < 0 || index >= spec.nodes) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `mesh node ${index} of ${spec.nodes}`);
    this.bell = new Doorbell(spec.doorbells[index]!);
    for (let other = 0; other < spec.nodes; other++) {
      if (other === index) {
        this.links.push(null);
        this.outgoing.push(null);
        continue;
      }
      const out = new FrameRingProducer(spec.rings[index * spec.nodes + other]!);
      const link = sw.attach(new MeshLinkPort(`thread link ${index}->${other}`, out), { link: true });
      this.links.push(link);
      this.outgoing.push(out);
      this.incoming.push({ ring: new FrameRingConsumer(spec.rings[other * spec.nodes + index]!), take: (p) => link.send(p) });
    }
    const c = spec.capture;
    if (c !== null && c.node !== index) {
      this.captureOut = new FrameRingProducer(c.rings[index]!);
      this.captureMonitor = sw.monitor(new CaptureLinkPort(`capture link ${index}->${c.node}`, this.captureOut));
    }
    if (c !== null && c.node === index && capture !== undefined) {
      for (let f = 0; f < spec.nodes; f++) {
        if (f !== index) this.incoming.push({ ring: new FrameRingConsumer(c.rings[f]!), take: (p) => capture.deliver(p) });
      }
    }
  }

  /** Starts draining the rings to this node on the calling thread's event loop. */
  start(): void {
    this.running ??= this.run();
  }

  /** Frames waiting in the rings to this node. */
  get pending(): number {
    let n = 0;
    for (const i of this.incoming) n += i.ring.pending;
    return n;
  }

  /** Per link: frames sent, dropped on a full ring, dropped too large. */
  get linkCounters(): MeshLinkCounters[] {
    const out: MeshLinkCounters[] = [];
    for (let n = 0; n < this.outgoing.length; n++) {
      const r = this.outgoing[n];
      if (r) out.push({ node: n, sent: r.pushed, dropped: r.dropped, oversize: r.oversize });
    }
    return out;
  }

  /** Frames the capture ring dropped (full or too large), 0 without one. */
  get captureDropped(): number {
    return this.captureOut === null ? 0 : this.captureOut.dropped + this.captureOut.oversize;
  }

  /** Drains what is waiting once (tests; the loop does this on its own). Returns frames taken. */
  drainOnce(): number {
    let n = 0;
    for (const i of this.incoming) n += i.ring.drain(i.take, MESH_DRAIN_BUDGET);
    return n;
  }

  /** Stops the drain loop and leaves the switch (links and capture monitor detached). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.bell.wake();
    await this.running;
    this.captureMonitor?.detach();
    this.captureMonitor = null;
    for (const l of this.links) l?.detach();
  }

  private async run(): Promise<void> {
    const hasWork = (): boolean => this.stopped || this.pending > 0;
    while (!this.stopped) {
      // One budget per ring per turn, then the event loop: the devices' rings (kicks, guest
      // buffers) and the vhost-user socket run between two batches.
      if (this.drainOnce() > 0) await nextTurn();
      else await this.bell.sleep(hasWork, MESH_IDLE_MS);
    }
  }

  /** The switch this node belongs to. */
  get switch(): NetSwitch {
    return this.sw;
  }
}
