import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackPlatform as FakePlatform } from './loopback-platform.js';
import type { Platform } from '../platform/types.js';
import { VhostUserServer, type ConnectEvent, type DisconnectEvent } from './server.js';
import { VhostUserFrontend } from './frontend.js';
import { F_PROTOCOL_FEATURES } from './messages.js';
import { EchoDevice } from './test-helpers.js';

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
