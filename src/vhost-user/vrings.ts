/**
 * The vring state machine of a session (vhost-user.rst "Starting and stopping rings"): the ring
 * messages (SET_VRING_NUM / ADDR / BASE / KICK / CALL / ERR / ENABLE / ENDIAN, GET_VRING_BASE,
 * GET_QUEUE_NUM), building each started ring's queue from the front-end's addresses and base,
 * rebuilding it when memory or addresses change (keeping its position), and stopping it.
 */
import type { QueueError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Platform } from '../platform/types.js';
import type { DeviceQueue, QueueConfig, QueueState } from '../queue/types.js';
import { F } from '../spec/features.js';
import { MAX_QUEUE_SIZE, SplitLayout } from '../spec/ring.js';
import { VhostUserError, VhostUserFault, decodeVringAddr, decodeVringState, encodeU64, encodeVringState } from './codec.js';
import { type MessageDispatcher, noFds, vringFd } from './dispatcher.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, PF, type VringAddr, type MemRegion } from './messages.js';
import type { RingScheduler } from './ring-scheduler.js';
import type { SessionInflight } from './session-inflight.js';
import type { SessionMemory } from './session-memory.js';
import { VhostQueue } from './vhost-queue.js';
import { type Vring, encodeVringBase, newVring, stateFromBase } from './vring.js';

/**
 * Builds the device-side queue of a started ring (a SplitQueue or PackedQueue by default; tests
 * substitute their own).
 */
export type QueueFactory = (memory: GuestMemory, config: QueueConfig) => DeviceQueue;

export interface VringHost {
  /** Features of SET_FEATURES (device bits and VHOST_USER_F_PROTOCOL_FEATURES / LOG_ALL). */
  readonly features: bigint;
  requireProto(req: number, mask: bigint): void;
  /** A ring was started, stopped, enabled or disabled: lend it to the core or take it back. */
  ringChanged(r: Vring): void;
  /** A ring's queue changed: dirty logging is applied to it. */
  queueBuilt(r: Vring): void;
  /** A ring stopped (the device stops once none runs). */
  ringStopped(r: Vring): void;
  /** Ring 0's endianness changed (a legacy guest's config and context follow it). */
  endianChanged(r: Vring): void;
  /** The ring reported a driver error (2.1.2: the ring breaks, the device needs a reset). */
  ringError(index: number, e: QueueError): void;
}

/** SET_FEATURES bits that are the back-end's, not the device's. */
const VHOST_ONLY_BITS = F_PROTOCOL_FEATURES | F_LOG_ALL;

export class VringSet {
  readonly rings: Vring[] = [];

  constructor(
    queueMaxSizes: readonly number[],
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly memory: SessionMemory,
    private readonly inflight: SessionInflight,
    private readonly scheduler: () => RingScheduler,
    private readonly queueFactory: QueueFactory,
    private readonly host: VringHost,
  ) {
    for (let i = 0; i < queueMaxSizes.length; i++) this.rings.push(newVring(i, queueMaxSizes[i]!));
  }

  private get packed(): boolean {
    return (this.host.features & F.RING_PACKED) !== 0n;
  }

  private get protocolNegotiated(): boolean {
    return (this.host.features & F_PROTOCOL_FEATURES) !== 0n;
  }

  ring(req: number, index: number): Vring {
    const r = this.rings[index];
    if (!r) throw new VhostUserError(VhostUserFault.BAD_INDEX, `ring ${index} (device has ${this.rings.length})`, req);
    return r;
  }

  register(d: MessageDispatcher): void {
    d.on(FrontendReq.SET_VRING_NUM, (msg) => {
      noFds(msg);
      const s = decodeVringState(msg.request, msg.payload);
      const r = this.ring(msg.request, s.index);
      if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, msg.request);
      // The front-end, not the back-end, chooses the ring size (QEMU's vhost-user-rng asks for
      // 1024 over virtio-mmio whatever the device would advertise): any size a ring can have.
      if (s.num === 0 || s.num > MAX_QUEUE_SIZE) throw new VhostUserError(VhostUserFault.BAD_VALUE, `ring size ${s.num} (1 to ${MAX_QUEUE_SIZE})`, msg.request);
      // Refused here, where the value arrives, not later at SET_VRING_KICK (2.7: a split ring's
      // size is a power of 2). Before SET_FEATURES the ring format is unknown: start() checks.
      if (this.host.features !== 0n && !this.packed && (s.num & (s.num - 1)) !== 0) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `split ring size ${s.num} is not a power of 2`, msg.request);
      }
      if (s.num > r.maxSize) this.logger.debug(`ring ${s.index}: size ${s.num} above the device's ${r.maxSize}`);
      r.num = s.num;
      return null;
    });
    d.on(FrontendReq.SET_VRING_ADDR, (msg) => {
      noFds(msg);
      const a = decodeVringAddr(msg.request, msg.payload);
      const r = this.ring(msg.request, a.index);
      if (this.memory.memory && r.num > 0) this.checkAlignment(msg.request, r, this.translate(msg.request, r, a));
      r.addr = a;
      if (r.started) this.restart(r);
      return null;
    });
    d.on(FrontendReq.SET_VRING_BASE, (msg) => {
      noFds(msg);
      const s = decodeVringState(msg.request, msg.payload);
      const r = this.ring(msg.request, s.index);
      if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, msg.request);
      // Split: the 16-bit avail index. Packed: see encodeVringBase.
      if (!this.packed && s.num > 0xffff) throw new VhostUserError(VhostUserFault.BAD_VALUE, `split ring base ${s.num}`, msg.request);
      // Packed: both 15-bit positions (avail low half, used high half) must lie in the ring.
      if (this.packed && r.num > 0 && ((s.num & 0x7fff) >= r.num || ((s.num >>> 16) & 0x7fff) >= r.num)) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `packed ring base 0x${s.num.toString(16)} beyond size ${r.num}`, msg.request);
      }
      r.base = s.num;
      return null;
    });
    d.on(FrontendReq.GET_VRING_BASE, (msg) => {
      noFds(msg);
      const s = decodeVringState(msg.request, msg.payload);
      const r = this.ring(msg.request, s.index);
      this.stop(r);
      return { payload: encodeVringState({ index: s.index, num: r.base }) };
    });
    d.on(FrontendReq.SET_VRING_KICK, (msg) => {
      const { index, fd } = vringFd(msg, (i) => this.ring(msg.request, i));
      const r = this.rings[index]!;
      const sched = this.scheduler();
      sched.stopWatching(r);
      if (r.kickFd >= 0) this.platform.close(r.kickFd);
      r.kickFd = fd;
      r.polling = fd < 0;
      if (r.started) sched.watch(r);
      else this.start(msg.request, r);
      return null;
    });
    d.on(FrontendReq.SET_VRING_CALL, (msg) => {
      const { index, fd } = vringFd(msg, (i) => this.ring(msg.request, i));
      const r = this.rings[index]!;
      if (r.callFd >= 0) this.platform.close(r.callFd);
      r.callFd = fd;
      return null;
    });
    d.on(FrontendReq.SET_VRING_ERR, (msg) => {
      const { index, fd } = vringFd(msg, (i) => this.ring(msg.request, i));
      const r = this.rings[index]!;
      if (r.errFd >= 0) this.platform.close(r.errFd);
      r.errFd = fd;
      return null;
    });
    d.on(FrontendReq.GET_QUEUE_NUM, (msg) => {
      noFds(msg);
      this.host.requireProto(msg.request, PF.MQ);
      return { payload: encodeU64(this.rings.length) };
    });
    d.on(FrontendReq.SET_VRING_ENABLE, (msg) => {
      noFds(msg);
      const s = decodeVringState(msg.request, msg.payload);
      const r = this.ring(msg.request, s.index);
      if (s.num > 1) throw new VhostUserError(VhostUserFault.BAD_VALUE, `enable ${s.num}`, msg.request);
      const was = r.enabled;
      r.enabled = s.num === 1;
      if (was !== r.enabled) this.host.ringChanged(r);
      if (!was && r.enabled && r.started) this.scheduler().scheduleCheck(r);
      return null;
    });
    d.on(FrontendReq.SET_VRING_ENDIAN, (msg) => {
      noFds(msg);
      this.host.requireProto(msg.request, PF.CROSS_ENDIAN);
      const s = decodeVringState(msg.request, msg.payload);
      const r = this.ring(msg.request, s.index);
      if (s.num > 1) throw new VhostUserError(VhostUserFault.BAD_VALUE, `endianness ${s.num}`, msg.request);
      if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, msg.request);
      const le = s.num === 0;
      if (r.littleEndian !== le) {
        r.littleEndian = le;
        this.host.endianChanged(r);
      }
      return null;
    });
  }

  /** Refuses a memory table that would leave a started ring's parts outside it. */
  checkCovered(req: number, regions: readonly MemRegion[]): void {
    const inside = (ua: number, len: number): boolean => regions.some((g) => ua >= g.userAddr && ua + len <= g.userAddr + g.size);
    for (const r of this.rings) {
      if (!r.started || !r.addr) continue;
      const l = this.ringLengths(r.num);
      if (!inside(r.addr.descUser, l.desc) || !inside(r.addr.availUser, l.avail) || !inside(r.addr.usedUser, l.used)) {
        throw new VhostUserError(VhostUserFault.UNMAPPED, `ring ${r.index} would be outside the new memory table (refused; the old one stays)`, req);
      }
    }
  }

  private ringLengths(n: number): { desc: number; avail: number; used: number } {
    const packed = this.packed;
    return { desc: 16 * n, avail: packed ? 4 : SplitLayout.availSize(n), used: packed ? 4 : SplitLayout.usedSize(n) };
  }

  /**
   * 2.7 / 2.8 alignment of the ring parts: descriptors 16, split avail 2 and used 4, packed
   * event structures 4. Refused at SET_VRING_ADDR rather than when the ring starts.
   */
  private checkAlignment(req: number, r: Vring, t: { desc: number; avail: number; used: number }): void {
    const availAlign = this.packed ? 4 : 2;
    if (t.desc % 16 !== 0 || t.avail % availAlign !== 0 || t.used % 4 !== 0) {
      throw new VhostUserError(
        VhostUserFault.BAD_VALUE,
        `ring ${r.index} parts misaligned (desc 0x${t.desc.toString(16)}, avail 0x${t.avail.toString(16)}, used 0x${t.used.toString(16)})`,
        req,
      );
    }
  }

  /** Guest addresses of a ring's parts (refused when outside the memory table). */
  private translate(req: number, r: Vring, a: VringAddr): { desc: number; avail: number; used: number } {
    const l = this.ringLengths(r.num);
    const desc = this.memory.userToGuest(a.descUser, l.desc);
    const avail = this.memory.userToGuest(a.availUser, l.avail);
    const used = this.memory.userToGuest(a.usedUser, l.used);
    if (desc < 0 || avail < 0 || used < 0) {
      throw new VhostUserError(VhostUserFault.UNMAPPED, `ring ${r.index} addresses are outside the memory table`, req);
    }
    return { desc, avail, used };
  }

  /**
   * Starts a ring (SET_VRING_KICK): builds its queue from num, base (or `state`) and addresses.
   * `reuse`: the ring's queue, rebuilt in place over the current memory (see `restart`).
   */
  private start(req: number, r: Vring, state?: QueueState, reuse?: VhostQueue): void {
    const memory = this.memory.memory;
    if (!memory) throw new VhostUserError(VhostUserFault.BAD_STATE, 'no memory table', req);
    if (!r.addr || r.num === 0) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${r.index} has no size or addresses`, req);
    const t = this.translate(req, r, r.addr);
    const features = this.host.features & ~VHOST_ONLY_BITS;
    const packed = (features & F.RING_PACKED) !== 0n;
    if (!packed && (r.num & (r.num - 1)) !== 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, `split ring size ${r.num} is not a power of 2`, req);
    const le = r.littleEndian;
    let inner: DeviceQueue;
    try {
      inner = this.queueFactory(memory, {
        size: r.num,
        descAddr: t.desc,
        driverAddr: t.avail,
        deviceAddr: t.used,
        features,
        littleEndian: le,
        index: r.index,
      });
      inner.setState(state ?? stateFromBase(r.base, packed, () => memory.readU16(t.used + SplitLayout.USED_IDX, le)));
    } catch (e) {
      if (e instanceof VhostUserError) throw e;
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `ring ${r.index}: ${(e as Error).message}`, req, { cause: e });
    }
    let q: VhostQueue;
    if (reuse) {
      // Same object, new ring views: the device's buffers in flight still come back to it.
      reuse.rebuild(inner, memory, t.desc);
      q = reuse;
    } else {
      q = new VhostQueue(inner, {
        index: r.index,
        memory,
        packed,
        indirect: (features & F.INDIRECT_DESC) !== 0n,
        littleEndian: le,
        descGuest: t.desc,
        onError: (i, err) => this.host.ringError(i, err),
      });
    }
    r.descGuest = t.desc;
    r.usedGuest = t.used;
    if (reuse) {
      // inflight tracking (if any) stays with the queue
    } else if (state && r.queue) q.adoptTracking(r.queue);
    else this.inflight.attach(req, r, q, memory, packed);
    r.queue = q;
    r.broken = null;
    r.started = true;
    // "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring is initialized in an enabled state."
    if (!this.protocolNegotiated) r.enabled = true;
    this.host.queueBuilt(r);
    this.host.ringChanged(r);
    const sched = this.scheduler();
    sched.watch(r);
    if (r.enabled) sched.scheduleCheck(r);
  }

  /**
   * Rebuilds a started ring over the current memory table or addresses (they changed), keeping
   * its position and its queue object: buffers popped before the change and used after it are
   * returned to the ring at its new place (docs/vhost-user-memory-changes.md).
   */
  restart(r: Vring): void {
    const old = r.queue;
    if (!old) return;
    const state = old.state();
    this.scheduler().stopWatching(r);
    r.started = false;
    this.host.ringChanged(r);
    try {
      this.start(FrontendReq.SET_MEM_TABLE, r, state, old);
    } catch (e) {
      old.detach();
      r.queue = null;
      r.base = encodeVringBase(state, old.packed);
      this.host.ringStopped(r);
      throw e;
    }
  }

  /** Stops a ring (GET_VRING_BASE, reset, close): its state becomes the base to report. */
  stop(r: Vring): void {
    this.scheduler().stopWatching(r);
    const q = r.queue;
    if (q) {
      try {
        r.base = encodeVringBase(q.state(), q.packed);
      } catch {
        // a broken queue still reports its indices; keep the last base otherwise
      }
      q.detach();
      // Per-ring totals: how a user (or a test) sees which queues carried requests.
      if (q.served > 0) this.logger.info(`ring ${r.index} stopped: ${q.served} buffers served`);
    }
    const was = r.started;
    r.queue = null;
    r.started = false;
    this.host.ringChanged(r);
    if (was || q) this.host.ringStopped(r);
  }

  /**
   * Stops every ring; `disable` also disables them (RESET_OWNER, RESET_DEVICE), `forget` also
   * forgets their set-up (RESET_DEVICE).
   */
  stopAll(disable: boolean, forget: boolean): void {
    for (const r of this.rings) {
      this.stop(r);
      if (disable) r.enabled = false;
      if (!forget) continue;
      r.num = 0;
      r.addr = null;
      r.base = 0;
      r.broken = null;
      r.littleEndian = true;
    }
  }

  /** Whether no ring is started. */
  get idle(): boolean {
    return this.rings.every((r) => !r.started);
  }

  /** Stops every ring and closes every ring fd (end of session). */
  close(): void {
    for (const r of this.rings) {
      this.stop(r);
      for (const fd of [r.kickFd, r.callFd, r.errFd]) if (fd >= 0) this.platform.close(fd);
      r.kickFd = r.callFd = r.errFd = -1;
    }
  }
}
