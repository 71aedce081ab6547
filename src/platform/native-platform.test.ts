/**
 * What only the real addon can show: close-on-exec fds, detaching of views callers hold,
 * unaligned offsets, collection of never-unmapped mappings, fd passing to another process and
 * teardown of a worker with a watcher still running. The shared behaviour is in
 * platform-contract.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { ErrorCode } from '../errors.js';
import { MAX_MAPPING, NativePlatform, loadNativePlatform, nativePlatformAvailable } from './native-platform.js';
import { PlatformError } from './platform-error.js';

const available = nativePlatformAvailable();
const ADDON = fileURLToPath(new URL('../../../build/Release/virtio_ts_platform.node', import.meta.url));
const TIMEOUT = 10000;

function isCloexec(fd: number): boolean {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = /flags:\s*([0-7]+)/.exec(info)?.[1];
  assert.ok(flags !== undefined);
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: timed out`)), TIMEOUT);
    }),
  ]).finally(() => clearTimeout(t));
}

// CI builds the addon (npm install): there a missing addon fails instead of skipping.
const skip = available || process.env.CI ? false : 'native addon not built (npm install)';

describe('native platform', { skip, timeout: 60000 }, () => {
  it('loads once and is the default shape', () => {
    assert.equal(loadNativePlatform(), loadNativePlatform());
    assert.ok(loadNativePlatform() instanceof NativePlatform);
  });

  it('every fd it creates or receives is close-on-exec', () => {
    const p = new NativePlatform();
    const [a, b] = p.socketpair();
    const e = p.eventfd();
    const m = p.memfd('cloexec', 4096);
    const d = p.dup(e);
    p.sendmsg(a, new Uint8Array(1), 0, 1, [m]);
    const r = p.recvmsg(b, new Uint8Array(1), 0, 1, 1);
    const got = r.fds[0]!;
    try {
      for (const fd of [a, b, e, m, d, got]) assert.ok(isCloexec(fd), `fd ${fd} lacks FD_CLOEXEC`);
    } finally {
      for (const fd of [a, b, e, m, d, got]) p.close(fd);
    }
  });

  it('unmap detaches every view callers hold; unaligned offsets map the right bytes', () => {
    const p = new NativePlatform();
    const m = p.memfd('unaligned', 3 * 4096);
    try {
      const whole = p.mmap(m, 0, 3 * 4096);
      for (let i = 0; i < whole.bytes.length; i++) whole.bytes[i] = i % 251;
      const part = p.mmap(m, 4096 + 123, 1000);
      const held = part.bytes.subarray(10, 20);
      assert.equal(part.bytes[0], (4096 + 123) % 251);
      assert.equal(held[0], (4096 + 133) % 251);
      part.unmap();
      assert.equal(held.byteLength, 0);
      assert.equal(held[0], undefined);
      assert.equal(part.length, 0);
      whole.unmap();
    } finally {
      p.close(m);
    }
  });

  it('refuses single mappings above the 4 GiB buffer cap (use mapChunked)', () => {
    const p = new NativePlatform();
    assert.throws(
      () => p.mmap(0, 0, MAX_MAPPING + 4096),
      (e: unknown) => e instanceof PlatformError && e.code === ErrorCode.PLATFORM && e.errno === 'EINVAL',
    );
  });

  it('a mapping never unmapped is unmapped when its buffer is collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const p = new NativePlatform();
    const name = `vts-gc-${process.pid}`;
    const count = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(name)).length;
    const m = p.memfd(name, 4096);
    (() => {
      for (let i = 0; i < 4; i++) p.mmap(m, 0, 4096).bytes[0] = i;
    })();
    p.close(m);
    assert.equal(count(), 4);
    // Finalizers run on the JS thread after collection: go round the loop, bounded.
    for (let i = 0; i < 200 && count() > 0; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(count(), 0);
  });

  it('passes a memfd to another process, which writes through its own mapping', async () => {
    const p = new NativePlatform();
    const dir = mkdtempSync(join(tmpdir(), 'vts-native-'));
    const path = join(dir, 'sock');
    const l = p.listenUnix(path);
    const mem = p.memfd('child', 4096);
    const map = p.mmap(mem, 0, 4096);
    const fds: number[] = [];
    // The child is plain CommonJS using the addon directly: connect, take the fd, map, write, ack.
    const child = spawn(process.execPath, [
      '-e',
      `const a = require(${JSON.stringify(ADDON)});
       const s = a.connectUnix(${JSON.stringify(path)});
       const buf = new Uint8Array(1);
       const w = a.watchReadable(s, () => {
         const r = a.recvmsg(s, buf, 0, 1, 1);
         if (r.bytes !== 1) return;
         a.stopWatch(w);
         const [ab, h] = a.mmap(r.fds[0], 0, 4096);
         new Uint8Array(ab)[100] = 0x77;
         a.munmap(ab, h);
         a.close(r.fds[0]);
         a.sendmsg(s, buf, 0, 1);
         a.close(s);
       });`,
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const conn = await withTimeout(
        new Promise<number>((resolve) => {
          const w = p.watchReadable(l, () => {
            const c = p.accept(l);
            if (c < 0) return;
            w.stop();
            resolve(c);
          });
        }),
        'accept',
      );
      fds.push(conn);
      assert.equal(p.sendmsg(conn, new Uint8Array([1]), 0, 1, [mem]), 1);
      await withTimeout(
        new Promise<void>((resolve) => {
          const w = p.watchReadable(conn, () => {
            w.stop();
            resolve();
          });
        }),
        'ack',
      );
      assert.equal(p.recvmsg(conn, new Uint8Array(1), 0, 1, 0).bytes, 1);
      assert.equal(map.bytes[100], 0x77);
      assert.equal(await withTimeout(exited, 'child exit'), 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      map.unmap();
      for (const fd of [...fds, mem, l]) p.close(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pollReadable with a timeout blocks this thread until another thread sends', async () => {
    const p = loadNativePlatform() as NativePlatform;
    const [a, b] = p.socketpair();
    // The worker writes once the main thread has (very likely) started blocking; either order
    // must give true, and the wait must end well before its 10 s bound.
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const a = require(${JSON.stringify(ADDON)});
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
       a.sendmsg(workerData, new Uint8Array([7]), 0, 1);`,
      { eval: true, workerData: a },
    );
    try {
      const t0 = Date.now();
      assert.equal(p.pollReadable(b, 10_000), true);
      assert.ok(Date.now() - t0 < 9000, 'woke by the send, not by the timeout');
      const buf = new Uint8Array(1);
      assert.equal(p.recvmsg(b, buf, 0, 1, 0).bytes, 1);
      assert.equal(buf[0], 7);
      const t1 = Date.now();
      assert.equal(p.pollReadable(b, 60), false);
      assert.ok(Date.now() - t1 >= 50, 'an empty wait lasts its timeout');
    } finally {
      await worker.terminate();
      p.close(a);
      p.close(b);
    }
  });

  it('a worker ending with a watcher still running tears down cleanly', async () => {
    const require = createRequire(import.meta.url);
    assert.ok(require.resolve(ADDON));
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const a = require(${JSON.stringify(ADDON)});
       const e = a.eventfd();
       a.watchReadable(e, () => { a.eventfdRead(e); parentPort.postMessage('fired'); process.exit(0); });
       a.eventfdWrite(e, 1);`,
      { eval: true },
    );
    const messages: unknown[] = [];
    worker.on('message', (m) => messages.push(m));
    try {
      const code = await withTimeout(new Promise<number>((resolve, reject) => {
        worker.on('exit', resolve);
        worker.on('error', reject);
      }), 'worker');
      assert.equal(code, 0);
      assert.deepEqual(messages, ['fired']);
    } finally {
      await worker.terminate();
    }
  });
});
