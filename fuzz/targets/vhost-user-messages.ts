/**
 * The vhost-user message stream into VhostUserBackend (vhost-user.rst): any request (defined
 * ones mostly), payloads that decode for the request with hostile values or raw bytes, fds
 * attached or missing (eventfds, memory fds, sockets), NEED_REPLY or not, in any order, with
 * kicks of the ring's eventfd and event-loop turns between messages and guest memory (a memfd
 * of the fake platform) holding whatever the input writes there. A blk device on the memory
 * backend or an entropy device is behind it.
 *
 * Invariants: handleMessage never throws, except the SessionEndingError of a refused request that
 * has no error reply (then the back-end has closed itself); every request whose reply is part
 * of the protocol is answered; after close no fd and no mapping is left open (bounded resources).
 *
 * Reuse between inputs (fuzz/README.md): the platform, the guest memfd and its mapping, both
 * devices and the RAM disk are kept and put back before each input (VhostUserParts); each input
 * gets a new back-end, closed at its end. `outcome` fingerprints what the back-end answered,
 * its state, guest memory, the disk and what was left open, for test/fuzz-reuse.test.ts.
 */
import { createHash } from 'node:crypto';
import { isMainThread } from 'node:worker_threads';
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { memoryBlk } from '../harness/blk-rig.js';
import { PageZeroer } from '../harness/page-zeroer.js';
import { Reusable } from '../harness/reuse.js';
import { EntropyDevice } from '../../src/devices/entropy/entropy-device.js';
import { FakePlatform } from '../../src/platform/fake-platform.js';
import type { Mapping } from '../../src/platform/types.js';
import { F } from '../../src/spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES, VhostUserBackend } from '../../src/vhost-user/backend.js';
import {
  VhostUserError,
  encodeConfig,
  encodeInflight,
  encodeLog,
  encodeMemRegMsg,
  encodeMemoryTable,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
} from '../../src/vhost-user/codec.js';
import { SessionEndingError } from '../../src/vhost-user/dispatcher.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag } from '../../src/vhost-user/messages.js';

const MEM_SIZE = 0x10000;
const GUEST_BASE = 0x10_0000;
const USER_BASE = 0x7f00_0000_0000;
const MAX_STEPS = 40;

/** Requests whose reply is part of the protocol (always answered). */
const GETS = new Set<number>([
  FrontendReq.GET_FEATURES,
  FrontendReq.GET_PROTOCOL_FEATURES,
  FrontendReq.GET_QUEUE_NUM,
  FrontendReq.GET_CONFIG,
  FrontendReq.GET_INFLIGHT_FD,
  FrontendReq.GET_MAX_MEM_SLOTS,
  FrontendReq.GET_STATUS,
]);
/** Refused without an error reply form: the back-end ends the session (vhost-user.rst). */
const SESSION_ENDING = new Set<number>([FrontendReq.GET_VRING_BASE]);
const REQUESTS: readonly number[] = Object.values(FrontendReq);

const Fd = { EVENT: 0, MEM: 1, SOCKET: 2 } as const;

function ringIndex(r: ByteReader): number {
  return r.below(4) === 0 ? r.u16() & 0x1ff : r.below(3);
}
function userAddr(r: ByteReader): number {
  return r.below(4) === 0 ? r.u64() % 2 ** 53 : USER_BASE + (r.u16() % MEM_SIZE);
}
function region(r: ByteReader): { guestAddr: number; size: number; userAddr: number; mmapOffset: number } {
  const odd = r.u8();
  return {
    guestAddr: (odd & 1) !== 0 ? r.u64() % 2 ** 53 : GUEST_BASE,
    size: (odd & 2) !== 0 ? r.u32() : MEM_SIZE,
    userAddr: (odd & 4) !== 0 ? r.u64() % 2 ** 53 : USER_BASE,
    mmapOffset: (odd & 8) !== 0 ? r.u32() : 0,
  };
}

/** SET_FEATURES values a byte picks (or a u32 of the input, shifted past the device bits). */
const FEATURE_CHOICES: readonly bigint[] = [F.VERSION_1, F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC, 0n, F.VERSION_1 | F.RING_PACKED, 1n << 63n];
/** SET_PROTOCOL_FEATURES values a byte picks (or a u32 of the input). */
const PROTOCOL_CHOICES: readonly bigint[] = [SUPPORTED_PROTOCOL_FEATURES, 0n, 1n << 40n];

/** A payload that decodes for `request`, with values drawn from the input. */
function typedPayload(request: number, r: ByteReader): Uint8Array {
  switch (request) {
    case FrontendReq.SET_FEATURES: {
      // The choice is read first, the u32 only when chosen (an argument list would read it
      // before the choice and shift every later field).
      const k = r.below(FEATURE_CHOICES.length + 1);
      const f = k < FEATURE_CHOICES.length ? FEATURE_CHOICES[k]! : BigInt(r.u32()) << 16n;
      return encodeU64(r.pick([f, f | F_PROTOCOL_FEATURES, f | F_PROTOCOL_FEATURES | F_LOG_ALL]));
    }
    case FrontendReq.SET_PROTOCOL_FEATURES: {
      const k = r.below(PROTOCOL_CHOICES.length + 1);
      return encodeU64(k < PROTOCOL_CHOICES.length ? PROTOCOL_CHOICES[k]! : BigInt(r.u32()));
    }
    case FrontendReq.SET_VRING_NUM:
    case FrontendReq.SET_VRING_BASE:
    case FrontendReq.GET_VRING_BASE:
    case FrontendReq.SET_VRING_ENABLE:
    case FrontendReq.SET_VRING_ENDIAN:
      return encodeVringState({ index: ringIndex(r), num: r.bool() ? r.pick([0, 1, 2, 4, 8, 16, 100, 0x8000, 0x8000_8000]) : r.u32() });
    case FrontendReq.SET_VRING_ADDR:
      return encodeVringAddr({ index: ringIndex(r), flags: r.pick([0, 1, 7]), descUser: userAddr(r), availUser: userAddr(r), usedUser: userAddr(r), logGuest: userAddr(r) });
    case FrontendReq.SET_VRING_KICK:
    case FrontendReq.SET_VRING_CALL:
    case FrontendReq.SET_VRING_ERR:
      return encodeU64(ringIndex(r) | (r.bool() ? 0x100 : 0));
    case FrontendReq.SET_MEM_TABLE: {
      const n = r.below(4);
      return encodeMemoryTable(Array.from({ length: n }, () => region(r)));
    }
    case FrontendReq.ADD_MEM_REG:
    case FrontendReq.REM_MEM_REG:
      return encodeMemRegMsg(region(r));
    case FrontendReq.SET_LOG_BASE:
      return encodeLog({ size: r.u16() % 8192, offset: r.u16() % 8192 });
    case FrontendReq.GET_INFLIGHT_FD:
    case FrontendReq.SET_INFLIGHT_FD:
      return encodeInflight({ mmapSize: r.u16() * 2, mmapOffset: r.u16() % 8192, numQueues: r.below(20), queueSize: r.pick([0, 8, 16, 65535]) });
    case FrontendReq.GET_CONFIG:
    case FrontendReq.SET_CONFIG: {
      const size = r.below(40);
      return encodeConfig({ offset: r.bool() ? r.below(300) : r.u32(), size, flags: r.pick([0, 1, 5]), data: r.bytes(size) });
    }
    case FrontendReq.SET_STATUS:
      return encodeU64(r.u16() & 0x1ff);
    default:
      return new Uint8Array(0);
  }
}

/**
 * Polling period of rings without a kick fd: longer than any input runs, so what a run does
 * never depends on when a timer fires (inputs compare equal, fresh or reused); a polling ring
 * is still served by the pass scheduled when it starts or is enabled.
 */
const POLL_INTERVAL_MS = 3_600_000;

/** The entropy device's source: fixed bytes, so what lands in guest memory is reproducible. */
function patternFill(dst: Uint8Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] = (i * 151 + 17) & 0xff;
}

/** FNV-1a step over a 32-bit value (the reply fingerprint, no allocation). */
function mix(h: number, v: number): number {
  return Math.imul(h ^ v, 0x01000193) >>> 0;
}

/** What one session left: the back-end's answers and state, and what it left open. */
class SessionOutcome {
  blk = false;
  replies = 0;
  replyHash = 0;
  status = 0;
  features = 0n;
  protocolFeatures = 0n;
  errors = 0;
  lastError = '';
  endedItself = false;
  calls = 0;
  fdsLeft = 0;
  mappingsLeft = 0;

  start(blk: boolean): void {
    this.blk = blk;
    this.replies = 0;
    this.replyHash = 0x811c9dc5;
  }

  /** A reply or back-end request: its request, flags, payload bytes and fd count. */
  reply(request: number, flags: number, payload: Uint8Array | undefined, fds: readonly number[] | undefined): void {
    this.replies++;
    let h = mix(mix(mix(this.replyHash, request), flags), fds?.length ?? 0);
    if (payload) for (let i = 0; i < payload.length; i++) h = mix(h, payload[i]!);
    this.replyHash = h;
  }

  /** The back-end's state before close. */
  session(b: VhostUserBackend): void {
    this.status = b.status;
    this.features = b.features;
    this.protocolFeatures = b.protocolFeatures;
    this.errors = b.errorCount;
    // The code, not the message: messages name fd numbers, which a reused platform counts on.
    const e = b.lastError;
    this.lastError = e === null ? '' : e instanceof VhostUserError ? `${e.code}/${e.reason}/${e.request}` : e.code;
    this.endedItself = b.closed;
    this.calls = b.callsSent;
  }

  fingerprint(guest: Uint8Array, disk: Uint8Array): string {
    const digest = createHash('sha1').update(guest).update(this.blk ? disk : new Uint8Array(0)).digest('hex');
    return `${digest} ${this.blk ? 'blk' : 'entropy'} replies ${this.replies}/${this.replyHash} status ${this.status} features ${this.features} protocol ${this.protocolFeatures} errors ${this.errors} ${this.lastError} ended ${this.endedItself} calls ${this.calls} left fds ${this.fdsLeft} mappings ${this.mappingsLeft}`;
  }
}

/**
 * What the inputs run on, built once and kept (harness/reuse.ts): the fake platform, the guest
 * memfd and the harness's own mapping of it, a blk device on a RAM disk and an entropy device.
 * `prepare` puts them back before each input: guest memory and disk zeroed (the pages written),
 * both devices reset. The back-end is built per input (its session is what the input drives)
 * and closed after it, which unmaps and closes everything it took; the platform then holds the
 * harness's memfd and mapping again, and nothing else.
 */
class VhostUserParts {
  readonly platform = new FakePlatform();
  readonly guestFd: number;
  readonly guestMap: Mapping;
  private readonly guestPages: PageZeroer;
  readonly blk = memoryBlk(64);
  private readonly diskPages: PageZeroer;
  readonly entropy = new EntropyDevice({ source: patternFill });
  /** What the last input left (the reuse test's fingerprint). */
  readonly last = new SessionOutcome();

  constructor() {
    this.guestFd = this.platform.memfd('guest', MEM_SIZE);
    this.guestMap = this.platform.mmap(this.guestFd, 0, MEM_SIZE);
    this.guestPages = new PageZeroer(this.guestMap.bytes);
    this.diskPages = new PageZeroer(this.blk.backend.data);
  }

  prepare(): void {
    this.guestPages.clear();
    this.diskPages.clear();
    // Device state a session can change without activating the device (blk's writeback field
    // by SET_CONFIG) stays after close: reset puts it back, as on a fresh device.
    this.blk.device.reset();
    this.entropy.reset();
  }
}

const reusedParts = new Reusable(() => new VhostUserParts());

/**
 * Stack traces while an input runs in the fuzz worker: none. Most messages of a mutated session
 * are refused, each refusal builds a VhostUserError, and capturing its stack was a third of an
 * execution. A finding still names the invariant and its message, and saves the input;
 * `--reproduce` and the tests run in the main thread, with stacks.
 */
const STACK_TRACES_DURING_RUN = isMainThread ? Error.stackTraceLimit : 0;

async function run(data: Uint8Array): Promise<void> {
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = STACK_TRACES_DURING_RUN;
  try {
    await runSession(data);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

async function runSession(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const parts = reusedParts.get();
  parts.prepare();
  const p = parts.platform;
  const fdsBefore = p.openFdCount();
  const mappingsBefore = p.mappings;
  const blk = r.bool();
  const out = parts.last;
  out.start(blk);
  const backend = new VhostUserBackend({ device: blk ? parts.blk.device : parts.entropy, platform: p, pollIntervalMs: POLL_INTERVAL_MS });
  backend.attach((request, flags, payload, fds) => out.reply(request, flags, payload, fds));
  const guestFd = parts.guestFd;
  const guest = parts.guestMap.bytes;
  const created: number[] = [];
  let lastEvent = -1;
  try {
    for (let s = 0; s < MAX_STEPS && !r.done && !backend.closed; s++) {
      const op = r.u8();
      if ((op & 0x60) === 0x60) {
        // Not a message: guest memory contents, a kick, or an event-loop turn.
        const what = op & 3;
        if (what === 0) {
          const off = r.u16() % MEM_SIZE;
          const bytes = r.bytes(1 + r.below(32));
          guest.set(bytes.subarray(0, Math.min(bytes.length, MEM_SIZE - off)), off);
        } else if (what === 1 && lastEvent >= 0) {
          // The back-end owns the fds it was handed and closes those it does not keep (fd
          // numbers of the fake platform are never reused): a kick on a closed one is dropped.
          try {
            p.eventfdWrite(lastEvent, 1);
          } catch {
            lastEvent = -1;
          }
          await new Promise<void>((res) => setImmediate(res));
        } else await new Promise<void>((res) => setImmediate(res));
        continue;
      }
      const request = (op & 0x80) !== 0 ? r.u8() : r.pick(REQUESTS);
      const pk = r.below(8);
      const payload = pk === 0 ? r.bytes(r.below(80)) : pk === 1 ? new Uint8Array(0) : typedPayload(request, r);
      const nFds = (op & 0x10) !== 0 ? r.below(4) : request === FrontendReq.SET_MEM_TABLE || request === FrontendReq.ADD_MEM_REG ? 1 : [FrontendReq.SET_VRING_KICK, FrontendReq.SET_VRING_CALL, FrontendReq.SET_VRING_ERR].includes(request as never) ? 1 : 0;
      const fds: number[] = [];
      for (let i = 0; i < nFds; i++) {
        const kind = (op & 0x10) !== 0 ? r.below(3) : request === FrontendReq.SET_MEM_TABLE || request === FrontendReq.ADD_MEM_REG ? Fd.MEM : Fd.EVENT;
        if (kind === Fd.EVENT) fds.push((lastEvent = p.eventfd(0)));
        else if (kind === Fd.MEM) fds.push(p.dup(guestFd));
        else {
          const [a, b] = p.socketpair();
          created.push(b);
          fds.push(a);
        }
      }
      const n = out.replies;
      const flags = HeaderFlag.VERSION | ((op & 0x08) !== 0 ? HeaderFlag.NEED_REPLY : 0);
      try {
        backend.handleMessage({ request, flags, payload, fds });
      } catch (e) {
        check(e instanceof SessionEndingError, 'exception-escaped', `request ${request}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        check(SESSION_ENDING.has(request), 'protocol', `request ${request} ended the session: ${String(e)}`);
        check(backend.closed, 'protocol', 'a session-ending refusal left the back-end open');
        break;
      }
      if (GETS.has(request)) check(out.replies === n + 1, 'protocol', `request ${request} not answered`);
      else check(out.replies <= n + 1, 'protocol', `request ${request} answered ${out.replies - n} times`);
    }
  } finally {
    out.session(backend);
    backend.close();
    for (const fd of created) p.close(fd);
  }
  // What the closed session scheduled (watch callbacks, promise continuations of the device)
  // runs now, before the next input zeroes guest memory.
  await new Promise<void>((res) => setImmediate(res));
  out.fdsLeft = p.openFdCount() - fdsBefore;
  out.mappingsLeft = p.mappings - mappingsBefore;
  check(out.fdsLeft === 0, 'memory-growth', `${out.fdsLeft} fds left open after close`);
  check(out.mappingsLeft === 0, 'memory-growth', `${out.mappingsLeft} mappings left after close`);
}

/** What the last input left (test/fuzz-reuse.test.ts compares it, fresh parts against reused). */
function outcome(): string {
  const parts = reusedParts.last!;
  return parts.last.fingerprint(parts.guestMap.bytes, parts.blk.backend.data);
}

/** The front-end's usual set-up of ring 0 (as QEMU sends it), then kicks over descriptors. */
function seeds(): Uint8Array[] {
  const msg = (w: ByteWriter, request: number, typed: (w: ByteWriter) => void): void => {
    w.u8(0).u8(REQUESTS.indexOf(request)).u8(2);
    typed(w);
  };
  /** Guest memory contents at `off`, in steps of at most 32 bytes. */
  const put = (w: ByteWriter, off: number, bytes: readonly number[]): void => {
    for (let i = 0; i < bytes.length; i += 32) {
      const part = bytes.slice(i, i + 32);
      w.u8(0x60).u16(off + i).u8(part.length - 1).bytes(part);
    }
  };
  /** A split descriptor (addr, len, flags, next), little-endian. */
  const desc = (addr: number, len: number, flags: number, next: number): number[] => [
    ...[0, 8, 16, 24].map((sh) => (addr >>> sh) & 0xff), 0, 0, 0, 0,
    ...[0, 8, 16, 24].map((sh) => (len >>> sh) & 0xff),
    flags & 0xff, flags >> 8, next & 0xff, next >> 8,
  ];
  const make = (blk: boolean, packed: boolean, diskWrite = false): Uint8Array => {
    const w = new ByteWriter().u8(blk ? 1 : 0);
    msg(w, FrontendReq.GET_FEATURES, () => {});
    msg(w, FrontendReq.SET_PROTOCOL_FEATURES, (x) => x.u8(0));
    msg(w, FrontendReq.SET_FEATURES, (x) => x.u8(packed ? 3 : 1).u8(1));
    msg(w, FrontendReq.SET_MEM_TABLE, (x) => x.u8(1).u8(0));
    msg(w, FrontendReq.SET_VRING_NUM, (x) => x.u8(1).u8(0).u8(1).u8(4));
    msg(w, FrontendReq.SET_VRING_ADDR, (x) => x.u8(1).u8(0).u8(0).u8(1).u16(0).u8(1).u16(0x1000).u8(1).u16(0x2000).u8(1).u16(0));
    msg(w, FrontendReq.SET_VRING_CALL, (x) => x.u8(1).u8(0).u8(0));
    msg(w, FrontendReq.SET_VRING_KICK, (x) => x.u8(1).u8(0).u8(0));
    msg(w, FrontendReq.SET_VRING_ENABLE, (x) => x.u8(1).u8(0).u8(1).u8(1)); // ring 0, num 1
    if (diskWrite) {
      // A blk write of sector 1 (header, 512 data bytes starting with a pattern, status).
      put(w, 0, [...desc(GUEST_BASE + 0x8000, 16, 1, 1), ...desc(GUEST_BASE + 0x8100, 512, 1, 2), ...desc(GUEST_BASE + 0x8400, 1, 2, 0)]);
      put(w, 0x8000, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
      put(w, 0x8100, Array.from({ length: 32 }, (_, i) => 0x40 + i));
    } else put(w, 0, desc(GUEST_BASE + 0x8000, 16, 2, 0)); // one writable buffer
    // The avail entry, then a kick.
    put(w, 0x1000, [0, 0, 1, 0, 0, 0]);
    w.u8(0x61).u8(0x62);
    msg(w, FrontendReq.GET_VRING_BASE, (x) => x.u8(1).u8(0).u8(1).u8(0));
    return w.finish();
  };
  return [make(true, false), make(false, false), make(true, true), make(true, false, true)];
}

export const target: FuzzTarget = { name: 'vhost-user-messages', maxLen: 2048, seeds, run, outcome };
