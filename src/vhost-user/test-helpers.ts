/**
 * Test helpers for the vhost-user tests: an echo device, a tiny split-ring driver over shared
 * memory, and a session (back-end + connection + front-end over a socketpair).
 */
import type { DeviceContext, VirtioDevice } from '../device/types.js';
import { DescriptorChain, ChainCursor } from '../queue/chain.js';
import type { Mapping, Platform } from '../platform/types.js';
import { F } from '../spec/features.js';
import assert from 'node:assert/strict';
import { afterEach, beforeEach } from 'node:test';
import { LoopbackPlatform } from './loopback-platform.js';
import { SUPPORTED_PROTOCOL_FEATURES, VhostUserBackend, type VhostUserBackendOptions } from './backend.js';
import { encodeVringState } from './codec.js';
import { VhostUserConnection, type DisconnectEvent } from './server.js';
import { VhostUserFrontend } from './frontend.js';
import { F_PROTOCOL_FEATURES, FrontendReq, PF, type MemRegion, type VringAddr } from './messages.js';
import { ErrorCode, VirtioError } from '../errors.js';

/** Echoes each request's readable bytes into its writable part; can hold requests instead. */
export class EchoDevice implements VirtioDevice {
  readonly deviceId = 0x7e57;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 8;
  readonly config = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  ctx: DeviceContext | null = null;
  activations = 0;
  resets = 0;
  /** When true, popped chains are kept (in flight) instead of completed. */
  hold = false;
  held: DescriptorChain[] = [];
  /** Throws this from onQueueNotify (device failure test). */
  throwOnNotify: Error | null = null;
  served = 0;
  private waiters: { n: number; resolve: () => void }[] = [];
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly tmp = new Uint8Array(4096);

  constructor(offered: bigint = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX, queues = [8, 8]) {
    this.offeredFeatures = offered;
    this.queueMaxSizes = queues;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    dst.set(this.config.subarray(offset, offset + dst.length));
  }
  writeConfig(offset: number, src: Uint8Array): void {
    this.config.set(src, offset);
  }
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.activations++;
  }
  reset(): void {
    this.ctx = null;
    this.held = [];
    this.resets++;
  }

  /** Resolves once `n` requests were served or held in total. */
  waitFor(n: number): Promise<void> {
    if (this.served + this.held.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
  private wake(): void {
    const total = this.served + this.held.length;
    this.waiters = this.waiters.filter((w) => {
      if (total >= w.n) w.resolve();
      return total < w.n;
    });
  }

  onQueueNotify(index: number): void {
    if (this.throwOnNotify) throw this.throwOnNotify;
    const ctx = this.ctx!;
    const q = ctx.queue(index);
    if (!q) return;
    for (let guard = 0; guard < 1024; guard++) {
      const chain = new DescriptorChain(ctx.memory, 64);
      if (!q.pop(chain)) break;
      if (this.hold) {
        this.held.push(chain);
        continue;
      }
      this.complete(index, chain);
    }
    ctx.notifyUsed(index);
    this.wake();
  }

  complete(index: number, chain: DescriptorChain): void {
    const ctx = this.ctx!;
    const n = this.reader.reset(chain).read(this.tmp, 0, Math.min(chain.readableBytes, this.tmp.length));
    const w = this.writer.reset(chain).write(this.tmp, 0, n);
    ctx.queue(index)!.push(chain, w);
    this.served++;
  }
}

/** Guest layout used by the tests: one memfd region. */
export const GUEST_BASE = 0x10_0000;
export const USER_BASE = 0x7f00_0000_0000;
export const MEM_SIZE = 0x10_0000;
export const RING = { desc: 0x0, avail: 0x1000, used: 0x2000, data: 0x8000 } as const;

/** A driver-side split ring writer over the front-end's own mapping of guest memory. */
export class TinyDriver {
  readonly dv: DataView;
  private availIdx = 0;
  private nextDesc = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly size: number,
    readonly ringOffset = 0,
    /** False for a legacy big-endian guest (ring fields in guest endian). */
    readonly le = true,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  g(off: number): number {
    return GUEST_BASE + off;
  }
  get descOff(): number {
    return this.ringOffset + RING.desc;
  }
  get availOff(): number {
    return this.ringOffset + RING.avail;
  }
  get usedOff(): number {
    return this.ringOffset + RING.used;
  }
  /** vring address payload (user addresses) for ring `index`. */
  vringAddr(index: number, flags = 0, logGuest = 0): VringAddr {
    return {
      index,
      flags,
      descUser: USER_BASE + this.descOff,
      availUser: USER_BASE + this.availOff,
      usedUser: USER_BASE + this.usedOff,
      logGuest,
    };
  }
  /** Adds a request: `out` bytes at data offset `at`, then a writable buffer of `inLen`. Returns the head. */
  add(out: Uint8Array, inLen: number, at: number): number {
    const head = this.nextDesc % this.size;
    const d0 = head;
    const d1 = (head + 1) % this.size;
    this.nextDesc += 2;
    this.bytes.set(out, at);
    this.writeDesc(this.descOff + 16 * d0, GUEST_BASE + at, out.length, 1, d1); // NEXT
    this.writeDesc(this.descOff + 16 * d1, GUEST_BASE + at + 0x100, inLen, 2, 0); // WRITE
    this.publish(head);
    return head;
  }
  /**
   * Adds a request through an indirect table (2.7.5.3) at data offset `table`: one ring
   * descriptor pointing to [readable `out` at `at`, writable `inLen` at `at` + 0x100].
   */
  addIndirect(out: Uint8Array, inLen: number, at: number, table: number): number {
    const head = this.nextDesc % this.size;
    this.nextDesc += 1;
    this.bytes.set(out, at);
    this.writeDesc(table, GUEST_BASE + at, out.length, 1, 1);
    this.writeDesc(table + 16, GUEST_BASE + at + 0x100, inLen, 2, 0);
    this.writeDesc(this.descOff + 16 * head, GUEST_BASE + table, 32, 4, 0); // INDIRECT
    this.publish(head);
    return head;
  }
  writeDesc(off: number, addr: number, len: number, flags: number, next: number): void {
    const dv = this.dv;
    const le = this.le;
    dv.setBigUint64(off, BigInt(addr), le);
    dv.setUint32(off + 8, len, le);
    dv.setUint16(off + 12, flags, le);
    dv.setUint16(off + 14, next, le);
  }
  private publish(head: number): void {
    this.dv.setUint16(this.availOff + 4 + 2 * (this.availIdx % this.size), head, this.le);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.availOff + 2, this.availIdx, this.le);
  }
  /** 2.7.7: avail flags (1 = VIRTQ_AVAIL_F_NO_INTERRUPT). */
  setAvailFlags(v: number): void {
    this.dv.setUint16(this.availOff, v, this.le);
  }
  /** 2.7.10: used_event, after the avail ring (EVENT_IDX). */
  setUsedEvent(v: number): void {
    this.dv.setUint16(this.availOff + 4 + 2 * this.size, v & 0xffff, this.le);
  }
  /** avail_event, after the used ring (EVENT_IDX): where the device wants the next kick. */
  availEvent(): number {
    return this.dv.getUint16(this.usedOff + 4 + 8 * this.size, this.le);
  }
  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.dv.setUint16(this.availOff + 2, this.availIdx, this.le);
  }
  usedIdx(): number {
    return this.dv.getUint16(this.usedOff + 2, this.le);
  }
  used(i: number): { id: number; len: number } {
    const o = this.usedOff + 4 + 8 * (i % this.size);
    return { id: this.dv.getUint32(o, this.le), len: this.dv.getUint32(o + 4, this.le) };
  }
}

/**
 * A driver-side packed ring writer (2.8) over the front-end's mapping: descriptor ring at
 * RING.desc, driver event suppression at RING.avail, device event suppression at RING.used.
 * Each request takes two ring descriptors (readable, then writable).
 */
export class TinyPackedDriver {
  readonly dv: DataView;
  private availPos = 0;
  private availWrap = true;
  private usedPos = 0;
  private usedWrap = true;
  private nextId = 0;
  private readonly descsOf = new Map<number, number>();
  constructor(
    readonly bytes: Uint8Array,
    readonly size: number,
    readonly ringOffset = 0,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  vringAddr(index: number, flags = 0, logGuest = 0): VringAddr {
    return {
      index,
      flags,
      descUser: USER_BASE + this.ringOffset + RING.desc,
      availUser: USER_BASE + this.ringOffset + RING.avail,
      usedUser: USER_BASE + this.ringOffset + RING.used,
      logGuest,
    };
  }
  private flagsFor(write: boolean): number {
    // 2.8.1: AVAIL = wrap counter, USED = its inverse.
    return (write ? 2 : 0) | (this.availWrap ? 1 << 7 : 1 << 15);
  }
  private advance(): void {
    if (++this.availPos === this.size) {
      this.availPos = 0;
      this.availWrap = !this.availWrap;
    }
  }
  /** Makes a request available; returns its buffer id. */
  add(out: Uint8Array, inLen: number, at: number): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) % this.size;
    this.descsOf.set(id, 2);
    this.bytes.set(out, at);
    const dv = this.dv;
    const headOff = this.ringOffset + RING.desc + 16 * this.availPos;
    const headFlags = this.flagsFor(false) | 1; // NEXT
    dv.setBigUint64(headOff, BigInt(GUEST_BASE + at), true);
    dv.setUint32(headOff + 8, out.length, true);
    dv.setUint16(headOff + 12, id, true);
    this.advance();
    const o = this.ringOffset + RING.desc + 16 * this.availPos;
    dv.setBigUint64(o, BigInt(GUEST_BASE + at + 0x100), true);
    dv.setUint32(o + 8, inLen, true);
    dv.setUint16(o + 12, id, true);
    dv.setUint16(o + 14, this.flagsFor(true), true);
    this.advance();
    // The head's flags last: the whole chain becomes available at once (2.8.6).
    dv.setUint16(headOff + 14, headFlags, true);
    return id;
  }
  /** The next used buffer, or null. */
  takeUsed(): { id: number; len: number } | null {
    const o = this.ringOffset + RING.desc + 16 * this.usedPos;
    const f = this.dv.getUint16(o + 14, true);
    const avail = (f & (1 << 7)) !== 0;
    const used = (f & (1 << 15)) !== 0;
    if (avail !== this.usedWrap || used !== this.usedWrap) return null;
    const id = this.dv.getUint16(o + 12, true);
    const len = this.dv.getUint32(o + 8, true);
    const n = this.descsOf.get(id) ?? 1;
    this.descsOf.delete(id);
    this.usedPos += n;
    if (this.usedPos >= this.size) {
      this.usedPos -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    return { id, len };
  }
}

export interface Session {
  platform: Platform;
  backend: VhostUserBackend;
  conn: VhostUserConnection;
  front: VhostUserFrontend;
  ended: Promise<DisconnectEvent>;
  close(): void;
}

export function openSession(platform: Platform, device: VirtioDevice, opts: Partial<VhostUserBackendOptions> = {}): Session {
  const [be, fe] = platform.socketpair();
  const backend = new VhostUserBackend({ ...opts, device, platform });
  let endResolve: (ev: DisconnectEvent) => void = () => {};
  const ended = new Promise<DisconnectEvent>((r) => (endResolve = r));
  const conn = new VhostUserConnection({ fd: be, platform, backend, onEnd: (ev) => endResolve(ev) });
  conn.begin();
  const front = new VhostUserFrontend(platform, fe, 3000);
  return {
    platform,
    backend,
    conn,
    front,
    ended,
    close() {
      front.close();
      conn.end('close');
    },
  };
}

/** Guest memory: a memfd the front-end maps too. */
export interface Guest {
  fd: number;
  map: Mapping;
  region: MemRegion;
  free(): void;
}
export function makeGuest(platform: Platform, size = MEM_SIZE): Guest {
  const fd = platform.memfd('guest', size);
  const map = platform.mmap(fd, 0, size);
  return {
    fd,
    map,
    region: { guestAddr: GUEST_BASE, size, userAddr: USER_BASE, mmapOffset: 0 },
    free() {
      map.unmap();
      platform.close(fd);
    },
  };
}

/** Resolves when `fd` (an eventfd) becomes readable, with its counter; bounded. */
export function waitEventfd(platform: Platform, fd: number, ms = 3000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const w = platform.watchReadable(fd, () => {
      const v = platform.eventfdRead(fd);
      if (v > 0 && !done) {
        done = true;
        clearTimeout(t);
        w.stop();
        resolve(v);
      }
    });
    const t = setTimeout(() => {
      if (done) return;
      done = true;
      w.stop();
      reject(new VirtioError(ErrorCode.TIMEOUT, `eventfd ${fd} not signalled within ${ms} ms`));
    }, ms);
  });
}

/** How setUpRing negotiates and which ring it starts. */
export interface SetUpOptions {
  protocol?: bigint | null;
  features?: bigint;
  ring?: number;
  enable?: boolean;
  bigEndian?: boolean;
}

/**
 * Negotiates (protocol features with REPLY_ACK unless `protocol` is null), maps `guest`, and
 * starts ring `ring` for `drv` with fresh kick and call eventfds (the caller closes them).
 */
export async function setUpRing(s: Session, guest: Guest, drv: TinyDriver, o: SetUpOptions = {}): Promise<{ kick: number; call: number }> {
  const p = s.platform;
  const f = s.front;
  const ring = o.ring ?? 0;
  await f.getFeatures();
  if (o.protocol !== null) {
    const proto = o.protocol ?? SUPPORTED_PROTOCOL_FEATURES;
    await f.setProtocolFeatures(proto);
    if ((proto & PF.REPLY_ACK) !== 0n) f.needReply = true;
  }
  await f.setOwner();
  await f.setFeatures((o.features ?? F.VERSION_1) | (o.protocol !== null ? F_PROTOCOL_FEATURES : 0n));
  await f.setMemTable([guest.region], [guest.fd]);
  if (o.bigEndian) assert.equal(await f.ack(FrontendReq.SET_VRING_ENDIAN, encodeVringState({ index: ring, num: 1 })), 0);
  await f.setVringNum(ring, drv.size);
  await f.setVringBase(ring, 0);
  await f.setVringAddr(drv.vringAddr(ring));
  const kick = p.eventfd();
  const call = p.eventfd();
  await f.setVringKick(ring, kick);
  await f.setVringCall(ring, call);
  if (o.protocol !== null && o.enable !== false) await f.setVringEnable(ring, true);
  // A reply orders everything before it: the set-up was handled.
  await f.getFeatures();
  return { kick, call };
}

/** What a back-end test opened on a LoopbackPlatform, closed and checked for leaks after it. */
export interface LoopbackTestBed {
  /** The platform of the running test (a new one per test). */
  readonly p: LoopbackPlatform;
  /** Guest memory of the running test. */
  readonly guest: Guest;
  /** Sessions the test opened: closed after it. */
  readonly sessions: Session[];
  /** Descriptors the test made (kick and call eventfds): closed after it. */
  readonly fds: number[];
}

/**
 * Registers, in the calling describe, a new LoopbackPlatform and guest before each test, and
 * after it closes the test's sessions and descriptors, frees the guest and asserts that no
 * descriptor or mapping leaked.
 */
export function useLoopbackTestBed(): LoopbackTestBed {
  let p: LoopbackPlatform | null = null;
  let guest: Guest | null = null;
  let fdsBefore = 0;
  const sessions: Session[] = [];
  const fds: number[] = [];
  beforeEach(() => {
    p = new LoopbackPlatform();
    fdsBefore = p.openFdCount();
    guest = makeGuest(p);
  });
  afterEach(() => {
    const platform = p!;
    for (const s of sessions.splice(0)) s.close();
    for (const fd of fds.splice(0)) platform.close(fd);
    guest!.free();
    assert.equal(platform.openFdCount(), fdsBefore, 'fds leaked');
    assert.equal(platform.mappings, 0, 'mappings leaked');
  });
  return {
    get p() {
      return p!;
    },
    get guest() {
      return guest!;
    },
    sessions,
    fds,
  };
}
