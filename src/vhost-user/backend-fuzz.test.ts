/**
 * Property test: any sequence of front-end messages (well-formed, truncated, out of range,
 * with missing, extra or wrong kinds of fds, over guest memory full of garbage) never makes the
 * back-end throw (except a refused GET_VRING_BASE, which has no error reply and ends the session),
 * always answers requests with an explicit reply, and leaves no fd or mapping behind once the
 * session closes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LoopbackPlatform } from './loopback-platform.js';
import { F } from '../spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES, VhostUserBackend } from './backend.js';
import { SessionEndingError } from './dispatcher.js';
import {
  encodeConfig,
  encodeInflight,
  encodeLog,
  encodeMemRegMsg,
  encodeMemoryTable,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
} from './codec.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag } from './messages.js';
import { EchoDevice, GUEST_BASE, MEM_SIZE, USER_BASE } from './test-helpers.js';

/** Requests whose reply is part of the protocol (always answered). */
const GETS = new Set<number>([
  FrontendReq.GET_FEATURES,
  FrontendReq.GET_PROTOCOL_FEATURES,
  FrontendReq.GET_VRING_BASE,
  FrontendReq.GET_QUEUE_NUM,
  FrontendReq.GET_CONFIG,
  FrontendReq.GET_INFLIGHT_FD,
  FrontendReq.GET_MAX_MEM_SLOTS,
  FrontendReq.GET_STATUS,
]);

type FdKind = 'event' | 'mem' | 'socket';

interface Step {
  request: number;
  payload: Uint8Array;
  fds: FdKind[];
  needReply: boolean;
  /** Let kicks and scheduled ring checks run before the next message. */
  yieldAfter: boolean;
}

const small = fc.integer({ min: 0, max: 20 });
const ringIdx = fc.oneof(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 0x1ff }));
const userAddr = fc.oneof(
  fc.integer({ min: 0, max: MEM_SIZE - 1 }).map((o) => USER_BASE + o),
  fc.integer({ min: 0, max: 2 ** 48 }),
);
const region = fc.record({
  guestAddr: fc.oneof(fc.constant(GUEST_BASE), fc.integer({ min: 0, max: 2 ** 40 })),
  size: fc.oneof(fc.constant(MEM_SIZE), fc.integer({ min: 0, max: MEM_SIZE })),
  userAddr: fc.oneof(fc.constant(USER_BASE), fc.integer({ min: 0, max: 2 ** 48 })),
  mmapOffset: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: MEM_SIZE })),
});

/** A payload that decodes for `request` most of the time, with hostile values. */
function payloadFor(request: number): fc.Arbitrary<Uint8Array> {
  const random = fc.uint8Array({ maxLength: 80 });
  let typed: fc.Arbitrary<Uint8Array>;
  switch (request) {
    case FrontendReq.SET_FEATURES:
      typed = fc.constantFrom(F.VERSION_1, F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC, 0n, F.VERSION_1 | F.RING_PACKED, 1n << 63n).chain((f) =>
        fc.constantFrom(f, f | F_PROTOCOL_FEATURES, f | F_PROTOCOL_FEATURES | F_LOG_ALL).map((v) => encodeU64(v)),
      );
      break;
    case FrontendReq.SET_PROTOCOL_FEATURES:
      typed = fc.constantFrom(SUPPORTED_PROTOCOL_FEATURES, 0n, 1n << 40n).map((v) => encodeU64(v));
      break;
    case FrontendReq.SET_VRING_NUM:
    case FrontendReq.SET_VRING_BASE:
    case FrontendReq.GET_VRING_BASE:
    case FrontendReq.SET_VRING_ENABLE:
    case FrontendReq.SET_VRING_ENDIAN:
      typed = fc
        .record({ index: ringIdx, num: fc.oneof(fc.constantFrom(0, 1, 2, 4, 8, 16, 0x8000_8000), fc.nat()) })
        .map((s) => encodeVringState(s));
      break;
    case FrontendReq.SET_VRING_ADDR:
      typed = fc
        .record({ index: ringIdx, flags: fc.constantFrom(0, 1, 7), descUser: userAddr, availUser: userAddr, usedUser: userAddr, logGuest: userAddr })
        .map((a) => encodeVringAddr(a));
      break;
    case FrontendReq.SET_VRING_KICK:
    case FrontendReq.SET_VRING_CALL:
    case FrontendReq.SET_VRING_ERR:
      typed = fc.oneof(ringIdx, ringIdx.map((i) => i | 0x100), fc.nat()).map((v) => encodeU64(v));
      break;
    case FrontendReq.SET_MEM_TABLE:
      typed = fc.array(region, { minLength: 0, maxLength: 3 }).map((r) => encodeMemoryTable(r));
      break;
    case FrontendReq.ADD_MEM_REG:
    case FrontendReq.REM_MEM_REG:
      typed = region.map((r) => encodeMemRegMsg(r));
      break;
    case FrontendReq.SET_LOG_BASE:
      typed = fc.record({ size: fc.integer({ min: 0, max: 4096 }), offset: fc.integer({ min: 0, max: 8192 }) }).map((l) => encodeLog({ size: l.size, offset: l.offset }));
      break;
    case FrontendReq.GET_INFLIGHT_FD:
    case FrontendReq.SET_INFLIGHT_FD:
      typed = fc
        .record({ mmapSize: fc.integer({ min: 0, max: 1 << 16 }), mmapOffset: fc.integer({ min: 0, max: 4096 }), numQueues: small, queueSize: fc.constantFrom(0, 8, 16, 65535) })
        .map((d) => encodeInflight(d));
      break;
    case FrontendReq.GET_CONFIG:
    case FrontendReq.SET_CONFIG:
      typed = fc
        .record({ offset: fc.integer({ min: 0, max: 300 }), size: fc.integer({ min: 0, max: 32 }), flags: fc.constantFrom(0, 1, 5) })
        .map((c) => encodeConfig({ ...c, data: new Uint8Array(c.size) }));
      break;
    case FrontendReq.SET_STATUS:
      typed = fc.integer({ min: 0, max: 0x1ff }).map((v) => encodeU64(v));
      break;
    default:
      typed = fc.constant(new Uint8Array(0));
  }
  return fc.oneof({ weight: 4, arbitrary: typed }, { weight: 1, arbitrary: random });
}

const stepArb: fc.Arbitrary<Step> = fc
  .oneof(fc.integer({ min: 0, max: 45 }), fc.constantFrom(FrontendReq.SET_VRING_KICK, FrontendReq.SET_MEM_TABLE, FrontendReq.SET_VRING_ADDR), fc.nat())
  .chain((request) =>
    fc.record({
      request: fc.constant(request),
      payload: payloadFor(request),
      fds: fc.array(fc.constantFrom<FdKind>('event', 'mem', 'socket'), { maxLength: 3 }),
      needReply: fc.boolean(),
      yieldAfter: fc.boolean(),
    }),
  );

function step(request: number, payload: Uint8Array, fds: FdKind[] = []): Step {
  return { request, payload, fds, needReply: true, yieldAfter: false };
}
const SET_UP: Step[] = [
  step(FrontendReq.SET_PROTOCOL_FEATURES, encodeU64(SUPPORTED_PROTOCOL_FEATURES)),
  step(FrontendReq.SET_FEATURES, encodeU64(F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC | F_PROTOCOL_FEATURES)),
  step(FrontendReq.SET_MEM_TABLE, encodeMemoryTable([{ guestAddr: GUEST_BASE, size: MEM_SIZE, userAddr: USER_BASE, mmapOffset: 0 }]), ['mem']),
  step(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 0, num: 8 })),
  step(FrontendReq.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, descUser: USER_BASE, availUser: USER_BASE + 0x1000, usedUser: USER_BASE + 0x2000, logGuest: 0 })),
  step(FrontendReq.SET_VRING_CALL, encodeU64(0), ['event']),
  step(FrontendReq.SET_VRING_KICK, encodeU64(0), ['event']),
  { ...step(FrontendReq.SET_VRING_ENABLE, encodeVringState({ index: 0, num: 1 })), yieldAfter: true },
];

describe('VhostUserBackend under arbitrary message sequences', () => {
  it('never throws, answers every GET, and closes every fd and mapping', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(stepArb, { minLength: 1, maxLength: 40 }), async (prefix, tail) => {
        // Half the runs start from a served ring (over garbage descriptors), then go wild.
        const steps = prefix ? [...SET_UP, ...tail] : tail;
        const p = new LoopbackPlatform();
        const before = p.openFdCount();
        const dev = new EchoDevice();
        const backend = new VhostUserBackend({ device: dev, platform: p, pollIntervalMs: 1 });
        const replies: number[] = [];
        backend.attach((request) => replies.push(request));
        // Guest memory the fd-carrying messages point at: garbage rings, random descriptors.
        const guestFd = p.memfd('guest', MEM_SIZE);
        const guestMap = p.mmap(guestFd, 0, MEM_SIZE);
        for (let i = 0; i < MEM_SIZE; i += 97) guestMap.bytes[i] = (i * 31) & 0xff;
        const created: number[] = [];
        try {
          for (let i = 0; i < steps.length; i++) {
            const s = steps[i]!;
            const fds = s.fds.map((k) => {
              let fd: number;
              if (k === 'event') fd = p.eventfd(1);
              else if (k === 'mem') fd = p.dup(guestFd);
              else {
                const [a, b] = p.socketpair();
                created.push(b);
                fd = a;
              }
              return fd;
            });
            const n = replies.length;
            const flags = HeaderFlag.VERSION | (s.needReply ? HeaderFlag.NEED_REPLY : 0);
            try {
              backend.handleMessage({ request: s.request, flags, payload: s.payload, fds });
            } catch (e) {
              // Only a refused request without an error reply may end the session, closing it.
              assert.ok(e instanceof SessionEndingError, String(e));
              assert.equal(s.request, FrontendReq.GET_VRING_BASE);
              assert.ok(backend.closed, 'the back-end closed itself');
              break;
            }
            if (GETS.has(s.request)) assert.equal(replies.length, n + 1, `request ${s.request} answered`);
            else assert.ok(replies.length <= n + 1);
            if (s.yieldAfter) await new Promise((r) => setImmediate(r));
            if (prefix && i === SET_UP.length - 1) {
              assert.equal(backend.errorCount, 0, String(backend.lastError));
              assert.ok(backend.ringInfo(0)!.started && dev.activations === 1, 'the set-up prefix starts ring 0 and the device');
            }
          }
        } finally {
          backend.close();
          for (const fd of created) p.close(fd);
          guestMap.unmap();
          p.close(guestFd);
        }
        assert.equal(p.openFdCount(), before, 'fds leaked');
        assert.equal(p.mappings, 0, 'mappings leaked');
        // The device saw nothing after the session ended.
        const served = dev.served;
        await new Promise((r) => setTimeout(r, 2));
        assert.equal(dev.served, served);
      }),
      { numRuns: 150 },
    );
  });
});
