/**
 * The back-end runner in process, over the in-process loopback platform: it serves front-ends
 * one after another, ends on request with exit code 0, releases what the command opened exactly
 * once, and turns a listen failure into a clear error after releasing it too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, LogLevel } from '../log.js';
import { VhostUserFrontend } from '../vhost-user/frontend.js';
import { LoopbackPlatform } from '../vhost-user/loopback-platform.js';
import { F_PROTOCOL_FEATURES } from '../vhost-user/messages.js';
import { EchoDevice } from '../vhost-user/test-helpers.js';
import type { Platform } from '../platform/types.js';
import { EXIT, type BackendOptions } from './args.js';
import { runBackend } from './serve.js';

const opts = (socketPath: string): BackendOptions => ({ socketPath, fd: null, verbosity: LogLevel.INFO });

/** Resolves when `cond()` holds, polling each macrotask; rejects after `ms`. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setImmediate(r));
  }
}

describe('runBackend', { timeout: 30_000 }, () => {
  it('serves one front-end after another, then stops with exit code 0 and cleans up once', async () => {
    const p = new LoopbackPlatform();
    const fdsBefore = p.openFdCount();
    const lines: string[] = [];
    const logger = createLogger(LogLevel.INFO, 'test', (l) => lines.push(l));
    let devices = 0;
    let cleanups = 0;
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const done = runBackend({
      options: opts('/virtual/a.sock'),
      logger,
      description: 'an echo device',
      platform: p,
      device: () => {
        devices++;
        return new EchoDevice();
      },
      cleanup: () => {
        cleanups++;
      },
      stop: stopped,
    });
    await until(() => lines.some((l) => l.includes('serving an echo device on /virtual/a.sock')));
    for (let i = 1; i <= 2; i++) {
      const fe = new VhostUserFrontend(p, p.connectUnix('/virtual/a.sock'), 2000);
      const features = await fe.getFeatures();
      assert.ok((features & F_PROTOCOL_FEATURES) !== 0n, 'the back-end answers');
      fe.close();
      await until(() => lines.some((l) => l.includes(`front-end ${i} disconnected`)));
    }
    assert.equal(devices, 2, 'a fresh device per front-end');
    stop();
    assert.equal(await done, EXIT.OK);
    assert.equal(cleanups, 1);
    assert.ok(lines.some((l) => / stop: shutting down/.test(l)), lines.join(''));
    assert.equal(p.openFdCount(), fdsBefore, 'every fd closed');
  });

  it('a listen failure is a PLATFORM error naming the socket; what the command opened is released', async () => {
    const p = new LoopbackPlatform();
    const failing: Platform = Object.assign(Object.create(p) as Platform, {
      listenUnix: (path: string): number => {
        throw new Error(`EACCES: ${path}`);
      },
    });
    let cleanups = 0;
    await assert.rejects(
      runBackend({
        options: opts('/virtual/b.sock'),
        logger: createLogger(LogLevel.ERROR, 'test', () => undefined),
        description: 'x',
        platform: failing,
        device: () => new EchoDevice(),
        cleanup: () => {
          cleanups++;
        },
      }),
      (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'PLATFORM');
        assert.match((e as Error).message, /cannot listen on \/virtual\/b\.sock: EACCES/);
        return true;
      },
    );
    assert.equal(cleanups, 1);
  });
});
