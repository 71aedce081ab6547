/**
 * The vhost-user server over real Unix sockets, eventfds and memfd mappings (the native addon):
 * a front-end connects by path, sets up memory and a ring, is served, disconnects; a second
 * one is served the same way by the same device; no fd is left behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { loadNativePlatform, nativePlatformAvailable } from '../platform/native-platform.js';
import { F } from '../spec/features.js';
import { SUPPORTED_PROTOCOL_FEATURES } from './backend.js';
import { serveVhostUser } from './server.js';
import { VhostUserFrontend } from './frontend.js';
import { F_PROTOCOL_FEATURES } from './messages.js';
import { EchoDevice, RING, TinyDriver, makeGuest, waitEventfd } from './test-helpers.js';

function withTimeout<T>(p: Promise<T>, ms = 5000): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}

describe('vhost-user over the native platform', { skip: !nativePlatformAvailable() && 'native addon not built' }, () => {
  it('serves successive front-ends on a Unix socket path and leaks no fd', { timeout: 20_000 }, async () => {
    const p = loadNativePlatform();
    const path = join(tmpdir(), `virtio-ts-vu-native-${process.pid}-${Date.now()}.sock`);
    const before = p.openFdCount();
    const dev = new EchoDevice();
    const server = await serveVhostUser({ device: dev, platform: p, socketPath: path });
    try {
      assert.ok(existsSync(path));
      for (let round = 0; round < 2; round++) {
        const guest = makeGuest(p);
        const f = new VhostUserFrontend(p, p.connectUnix(path), 5000);
        const drv = new TinyDriver(guest.map.bytes, 8);
        assert.ok(((await f.getFeatures()) & F_PROTOCOL_FEATURES) !== 0n);
        await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
        f.needReply = true;
        assert.equal(await f.setOwner(), 0);
        assert.equal(await f.setFeatures(F.VERSION_1 | F.EVENT_IDX | F_PROTOCOL_FEATURES), 0);
        assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
        assert.equal(await f.setVringNum(0, 8), 0);
        assert.equal(await f.setVringBase(0, 0), 0);
        assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
        const kick = p.eventfd();
        const call = p.eventfd();
        assert.equal(await f.setVringKick(0, kick), 0);
        assert.equal(await f.setVringCall(0, call), 0);
        assert.equal(await f.setVringEnable(0, true), 0);
        const called = waitEventfd(p, call, 5000);
        const head = drv.add(new TextEncoder().encode(`native ${round}`), 32, RING.data);
        p.eventfdWrite(kick, 1);
        await called;
        assert.deepEqual(drv.used(0), { id: head, len: 8 });
        assert.equal(await f.getVringBase(0), 1);
        const ended = server.nextDisconnect();
        f.close();
        assert.equal((await withTimeout(ended)).reason, 'eof');
        p.close(kick);
        p.close(call);
        guest.free();
      }
      assert.equal(dev.activations, 2);
    } finally {
      await server.close();
    }
    assert.equal(existsSync(path), false, 'the socket file is removed on close');
    assert.equal(p.openFdCount(), before, 'fds leaked');
  });
});
