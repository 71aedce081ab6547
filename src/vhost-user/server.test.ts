import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackPlatform, LoopbackPlatform as FakePlatform } from './loopback-platform.js';
import type { Platform } from '../platform/types.js';
import { VhostUserServer, serveVhostUser, type ConnectEvent, type DisconnectEvent } from './server.js';
import { VhostUserFrontend } from './frontend.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq } from './messages.js';
import { EchoDevice, RING, TinyDriver, makeGuest, waitEventfd, type Guest } from './test-helpers.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { F } from '../spec/features.js';

function withTimeout<T>(p: Promise<T>, ms = 3000): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}

async function reconnectScenario(
  p: Platform,
  listen: { socketPath?: string; listenFd?: number },
  connect: () => number,
  before = p.openFdCount(),
): Promise<void> {
  const devices: EchoDevice[] = [];
  const server = new VhostUserServer({
    ...listen,
    platform: p,
    device: () => {
      const d = new EchoDevice();
      devices.push(d);
      return d;
    },
  });
  await server.start();
  assert.ok(server.listening);

  const connected = once(server, 'connect');
  const f1 = new VhostUserFrontend(p, connect(), 3000);
  const [ev1] = (await withTimeout(connected)) as [ConnectEvent];
  assert.equal(ev1.id, 1);
  assert.ok(((await f1.getFeatures()) & F_PROTOCOL_FEATURES) !== 0n);

  // A second front-end waits while the first is served.
  const f2fd = connect();
  const gone = once(server, 'disconnect');
  const reconnected = once(server, 'connect');
  f1.close();
  const [d1] = (await withTimeout(gone)) as [DisconnectEvent];
  assert.equal(d1.reason, 'eof');
  const [ev2] = (await withTimeout(reconnected)) as [ConnectEvent];
  assert.equal(ev2.id, 2);
  const f2 = new VhostUserFrontend(p, f2fd, 3000);
  assert.ok((await f2.getFeatures()) !== 0n);
  assert.equal(devices.length, 2);

  const closed = once(server, 'disconnect');
  await server.close();
  const [d2] = (await withTimeout(closed)) as [DisconnectEvent];
  assert.equal(d2.reason, 'close');
  f2.close();
  assert.equal(p.openFdCount(), before);
}

describe('VhostUserServer', () => {
  it('serves one front-end at a time and accepts the next after a disconnect (socket path)', async () => {
    const p = new FakePlatform();
    const path = join(tmpdir(), `virtio-ts-vu-${process.pid}-${Date.now()}.sock`);
    await reconnectScenario(p, { socketPath: path }, () => p.connectUnix(path));
  });

  it('serves on an inherited listening fd (--fd)', async () => {
    const p = new FakePlatform();
    const path = join(tmpdir(), `virtio-ts-vu-fd-${process.pid}-${Date.now()}.sock`);
    // The server owns the inherited fd and closes it: count from before it existed.
    const before = p.openFdCount();
    const lfd = p.listenUnix(path);
    await reconnectScenario(p, { listenFd: lfd }, () => p.connectUnix(path), before);
  });

  it('refuses both or neither of socketPath and listenFd', () => {
    const p = new FakePlatform();
    assert.throws(() => new VhostUserServer({ platform: p, device: () => new EchoDevice() }));
    assert.throws(() => new VhostUserServer({ platform: p, device: () => new EchoDevice(), socketPath: '/x', listenFd: 3 }));
  });
});

describe('serveVhostUser', () => {
  /** A full session as QEMU starts one: memory, ring 0 with kick/call/err, log, inflight; one request served. */
  async function fullSession(p: LoopbackPlatform, f: VhostUserFrontend, guest: Guest): Promise<number[]> {
    const drv = new TinyDriver(guest.map.bytes, 8);
    await f.getFeatures();
    await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
    f.needReply = true;
    const { fd: infFd } = await f.getInflightFd(1, 8);
    assert.equal(await f.setOwner(), 0);
    assert.equal(await f.setFeatures(F.VERSION_1 | F_PROTOCOL_FEATURES | F_LOG_ALL), 0);
    assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
    const logFd = p.memfd('log', 64);
    const lr = await f.call(FrontendReq.SET_LOG_BASE, new Uint8Array(new BigUint64Array([64n, 0n]).buffer), [logFd]);
    assert.equal(lr.payload.length, 8);
    assert.equal(await f.setVringNum(0, 8), 0);
    assert.equal(await f.setVringBase(0, 0), 0);
    assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
    const kick = p.eventfd();
    const call = p.eventfd();
    const err = p.eventfd();
    assert.equal(await f.setVringKick(0, kick), 0);
    assert.equal(await f.setVringCall(0, call), 0);
    assert.equal(await f.setVringErr(0, err), 0);
    assert.equal(await f.setVringEnable(0, true), 0);
    const [mine, theirs] = p.socketpair();
    assert.equal(await f.ack(FrontendReq.SET_BACKEND_REQ_FD, undefined, [theirs]), 0);
    p.close(theirs);
    const called = waitEventfd(p, call);
    drv.add(new TextEncoder().encode('ping'), 8, RING.data);
    p.eventfdWrite(kick, 1);
    await withTimeout(called);
    assert.equal(drv.usedIdx(), 1);
    return [infFd, logFd, kick, call, err, mine];
  }

  it('serves one device object to successive front-ends, reset between them, leaking no fd or mapping', async () => {
    const p = new LoopbackPlatform();
    const path = join(tmpdir(), `virtio-ts-vu-serve-${process.pid}-${Date.now()}.sock`);
    const before = p.openFdCount();
    const guest = makeGuest(p);
    const dev = new EchoDevice();
    const server = await serveVhostUser({ device: dev, platform: p, socketPath: path });
    const withServer = p.openFdCount();
    const backends: unknown[] = [];
    server.on('connect', (ev: ConnectEvent) => backends.push(ev.backend));
    for (let round = 0; round < 3; round++) {
      const f = new VhostUserFrontend(p, p.connectUnix(path), 3000);
        guest.map.bytes.fill(0, 0, RING.data); // the guest rebooted: fresh rings
      const mine = await fullSession(p, f, guest);
      assert.equal(dev.activations, round + 1);
      const ended = server.nextDisconnect();
      f.close();
      assert.equal((await withTimeout(ended)).reason, 'eof');
      for (const fd of mine) p.close(fd);
      // Everything the connection received was closed or unmapped with it.
      assert.equal(p.openFdCount(), withServer, `round ${round}: fds leaked`);
      assert.equal(p.mappings, 1, `round ${round}: only the test's own guest mapping remains`);
    }
    assert.equal(backends.length, 3);
    assert.notEqual(backends[0], backends[1], 'a fresh back-end state per connection');
    assert.ok(dev.resets >= 3, 'the same device, reset for each new front-end');
    await server.close();
    await server.closed;
    guest.free();
    assert.equal(p.openFdCount(), before);
    assert.equal(p.mappings, 0);
  });

  it('--fd with a connected socket serves that one front-end, then the server closes', async () => {
    const p = new LoopbackPlatform();
    const before = p.openFdCount();
    const [be, fe] = p.socketpair();
    const server = await serveVhostUser({ device: () => new EchoDevice(), platform: p, fd: be });
    assert.ok(server.connected);
    const f = new VhostUserFrontend(p, fe, 3000);
    assert.ok((await f.getFeatures()) & F_PROTOCOL_FEATURES);
    f.close();
    await withTimeout(server.closed);
    assert.equal(server.listening, false);
    assert.equal(p.openFdCount(), before);
  });

  it('--fd with a listening socket that already has a pending front-end serves it', async () => {
    const p = new LoopbackPlatform();
    const path = join(tmpdir(), `virtio-ts-vu-pend-${process.pid}-${Date.now()}.sock`);
    const before = p.openFdCount();
    const lfd = p.listenUnix(path);
    const cfd = p.connectUnix(path);
    const server = await serveVhostUser({ device: () => new EchoDevice(), platform: p, fd: lfd });
    assert.ok(server.connected);
    const f = new VhostUserFrontend(p, cfd, 3000);
    assert.ok((await f.getFeatures()) !== 0n);
    const ended = server.nextDisconnect();
    await server.close();
    assert.equal((await withTimeout(ended)).reason, 'close');
    f.close();
    assert.equal(p.openFdCount(), before);
  });

  it('an AbortSignal closes the server; exactly one of socketPath and fd is required', async () => {
    const p = new LoopbackPlatform();
    const path = join(tmpdir(), `virtio-ts-vu-abort-${process.pid}-${Date.now()}.sock`);
    const before = p.openFdCount();
    const ac = new AbortController();
    const server = await serveVhostUser({ device: new EchoDevice(), platform: p, socketPath: path, signal: ac.signal });
    assert.ok(server.listening);
    ac.abort();
    await withTimeout(server.closed);
    assert.equal(p.openFdCount(), before);
    await assert.rejects(serveVhostUser({ device: new EchoDevice(), platform: p }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(serveVhostUser({ device: new EchoDevice(), platform: p, socketPath: path, fd: 3 }), { code: 'INVALID_ARGUMENT' });
  });
});
