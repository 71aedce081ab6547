import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { encodeU64, encodeVringState } from './codec.js';
import { FrontendReq, type VhostUserMessage } from './messages.js';
import { Route, routeOf } from './worker-protocol.js';
import { WorkerCallChannel, serveWorkerCalls } from './worker-call-channel.js';

const msg = (request: number, payload: Uint8Array): VhostUserMessage => ({ request, flags: 1, payload, fds: [] });

describe('ring worker routing (worker-protocol.ts)', () => {
  it('ring requests go to the ring named in their payload', () => {
    assert.deepEqual(routeOf(msg(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 1, num: 64 })), 2), { route: Route.RING, ring: 1 });
    assert.deepEqual(routeOf(msg(FrontendReq.GET_VRING_BASE, encodeVringState({ index: 0, num: 0 })), 2), { route: Route.RING, ring: 0 });
    // KICK / CALL / ERR: the index in the low byte, bit 8 the no-fd flag.
    assert.deepEqual(routeOf(msg(FrontendReq.SET_VRING_KICK, encodeU64(0x101)), 2), { route: Route.RING, ring: 1 });
    assert.deepEqual(routeOf(msg(FrontendReq.SET_VRING_CALL, encodeU64(0)), 2), { route: Route.RING, ring: 0 });
  });

  it('a ring request naming no ring of the device, or too short, stays on the main thread (which refuses it)', () => {
    assert.equal(routeOf(msg(FrontendReq.SET_VRING_NUM, encodeVringState({ index: 2, num: 64 })), 2).route, Route.MAIN);
    assert.equal(routeOf(msg(FrontendReq.SET_VRING_BASE, new Uint8Array(3)), 2).route, Route.MAIN);
    assert.equal(routeOf(msg(FrontendReq.SET_VRING_KICK, new Uint8Array(4)), 2).route, Route.MAIN);
    assert.equal(routeOf(msg(FrontendReq.SET_VRING_ERR, encodeU64(0xff)), 2).route, Route.MAIN);
  });

  it('session set-up goes to every thread; queries and the back-end channel stay on the main thread', () => {
    for (const r of [FrontendReq.SET_FEATURES, FrontendReq.SET_MEM_TABLE, FrontendReq.ADD_MEM_REG, FrontendReq.SET_CONFIG, FrontendReq.RESET_DEVICE, FrontendReq.SET_STATUS]) {
      assert.equal(routeOf(msg(r, new Uint8Array(8)), 2).route, Route.ALL, `request ${r}`);
    }
    for (const r of [FrontendReq.GET_FEATURES, FrontendReq.GET_CONFIG, FrontendReq.GET_QUEUE_NUM, FrontendReq.SET_BACKEND_REQ_FD, FrontendReq.GET_STATUS]) {
      assert.equal(routeOf(msg(r, new Uint8Array(8)), 2).route, Route.MAIN, `request ${r}`);
    }
  });
});

describe('synchronous calls to another thread (worker-call-channel.ts)', () => {
  it('answers in order; a peer that never answers fails the call after the bound', async () => {
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    // The serving side on this thread's loop cannot answer while this thread blocks: it is
    // the "worker that never answers".
    serveWorkerCalls<number, number>(port2, signal, (x) => x * 2);
    const c = new WorkerCallChannel<number, number>(port1, signal, 'peer', 100);
    const t0 = Date.now();
    assert.throws(() => c.call(21), /did not answer within 100 ms/);
    assert.ok(Date.now() - t0 >= 100);
    c.close();
    port2.close();
  });
});
