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
 */
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { memoryBlk } from '../harness/blk-rig.js';
import { EntropyDevice } from '../../src/devices/entropy/entropy-device.js';
import { FakePlatform } from '../../src/platform/fake-platform.js';
import { F } from '../../src/spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES, VhostUserBackend } from '../../src/vhost-user/backend.js';
import {
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

/** A payload that decodes for `request`, with values drawn from the input. */
function typedPayload(request: number, r: ByteReader): Uint8Array {
  switch (request) {
    case FrontendReq.SET_FEATURES: {
      const f = r.pick([F.VERSION_1, F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC, 0n, F.VERSION_1 | F.RING_PACKED, 1n << 63n, BigInt(r.u32()) << 16n]);
      return encodeU64(r.pick([f, f | F_PROTOCOL_FEATURES, f | F_PROTOCOL_FEATURES | F_LOG_ALL]));
    }
    case FrontendReq.SET_PROTOCOL_FEATURES:
      return encodeU64(r.pick([SUPPORTED_PROTOCOL_FEATURES, 0n, 1n << 40n, BigInt(r.u32())]));
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

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const p = new FakePlatform();
  const before = p.openFdCount();
  const device = r.bool() ? memoryBlk(64).device : new EntropyDevice();
  const backend = new VhostUserBackend({ device, platform: p, pollIntervalMs: 1 });
  const replies: number[] = [];
  backend.attach((request) => replies.push(request));
  const guestFd = p.memfd('guest', MEM_SIZE);
  const guestMap = p.mmap(guestFd, 0, MEM_SIZE);
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
          guestMap.bytes.set(bytes.subarray(0, Math.min(bytes.length, MEM_SIZE - off)), off);
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
      const n = replies.length;
      const flags = HeaderFlag.VERSION | ((op & 0x08) !== 0 ? HeaderFlag.NEED_REPLY : 0);
      try {
        backend.handleMessage({ request, flags, payload, fds });
      } catch (e) {
        check(e instanceof SessionEndingError, 'exception-escaped', `request ${request}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        check(SESSION_ENDING.has(request), 'protocol', `request ${request} ended the session: ${String(e)}`);
        check(backend.closed, 'protocol', 'a session-ending refusal left the back-end open');
        break;
      }
      if (GETS.has(request)) check(replies.length === n + 1, 'protocol', `request ${request} not answered`);
      else check(replies.length <= n + 1, 'protocol', `request ${request} answered ${replies.length - n} times`);
    }
  } finally {
    backend.close();
    for (const fd of created) p.close(fd);
    guestMap.unmap();
    p.close(guestFd);
  }
  await new Promise<void>((res) => setImmediate(res));
  check(p.openFdCount() === before, 'memory-growth', `${p.openFdCount() - before} fds left open after close`);
  check(p.mappings === 0, 'memory-growth', `${p.mappings} mappings left after close`);
}

/** The front-end's usual set-up of ring 0 (as QEMU sends it), then kicks over descriptors. */
function seeds(): Uint8Array[] {
  const msg = (w: ByteWriter, request: number, typed: (w: ByteWriter) => void): void => {
    w.u8(0).u8(REQUESTS.indexOf(request)).u8(2);
    typed(w);
  };
  const make = (blk: boolean, packed: boolean): Uint8Array => {
    const w = new ByteWriter().u8(blk ? 1 : 0);
    msg(w, FrontendReq.GET_FEATURES, () => {});
    msg(w, FrontendReq.SET_PROTOCOL_FEATURES, (x) => x.u8(0));
    msg(w, FrontendReq.SET_FEATURES, (x) => x.u8(packed ? 3 : 1).u8(1));
    msg(w, FrontendReq.SET_MEM_TABLE, (x) => x.u8(1).u8(0));
    msg(w, FrontendReq.SET_VRING_NUM, (x) => x.u8(1).u8(0).u8(1).u8(4));
    msg(w, FrontendReq.SET_VRING_ADDR, (x) => x.u8(1).u8(0).u8(0).u8(1).u16(0).u8(1).u16(0x1000).u8(1).u16(0x2000).u8(1).u16(0));
    msg(w, FrontendReq.SET_VRING_CALL, (x) => x.u8(1).u8(0).u8(0));
    msg(w, FrontendReq.SET_VRING_KICK, (x) => x.u8(1).u8(0).u8(0));
    msg(w, FrontendReq.SET_VRING_ENABLE, (x) => x.u8(1).u8(0).u8(0).u8(1).u8(1));
    // A descriptor and an avail entry in guest memory, then a kick.
    w.u8(0x60).u16(0).u8(15).bytes([0, 0x80, 0x10, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0]);
    w.u8(0x60).u16(0x1000).u8(5).bytes([0, 0, 1, 0, 0, 0]);
    w.u8(0x61).u8(0x62);
    msg(w, FrontendReq.GET_VRING_BASE, (x) => x.u8(1).u8(0).u8(1).u8(0));
    return w.finish();
  };
  return [make(true, false), make(false, false), make(true, true)];
}

export const target: FuzzTarget = { name: 'vhost-user-messages', maxLen: 2048, seeds, run };
