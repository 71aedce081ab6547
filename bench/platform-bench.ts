/**
 * Platform micro-benchmark: what one crossing into the OS costs through the addon (eventfd
 * write+read, sendmsg/recvmsg round trips with and without an fd, a libuv poll wake-up), and
 * the same eventfd calls through koffi when it can be loaded (`npm install --no-save koffi`),
 * for the addon-versus-FFI note in docs/design-notes.md. Not a test: it prints figures.
 *
 *   node dist/bench/platform-bench.js [iterations]
 */
import { createRequire } from 'node:module';
import { NativePlatform, nativePlatformAvailable } from '../src/platform/native-platform.js';

const N = Number(process.argv[2] ?? 1_000_000);

function time(label: string, n: number, fn: (n: number) => void): number {
  fn(Math.min(n, 10_000)); // warm up the JIT and the kernel paths
  const t0 = process.hrtime.bigint();
  fn(n);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${label.padEnd(52)} ${ns.toFixed(1).padStart(8)} ns`);
  return ns;
}

interface RawAddon {
  eventfdWrite(fd: number, v: number): void;
  eventfdRead(fd: number): number;
}

interface Koffi {
  load(path: string): { func(decl: string): (...args: unknown[]) => unknown };
}

function loadKoffi(): Koffi | null {
  for (const base of [`${process.cwd()}/`, import.meta.url]) {
    try {
      return createRequire(base)('koffi') as Koffi;
    } catch {
      // try the next place
    }
  }
  return null;
}

async function main(): Promise<void> {
  if (!nativePlatformAvailable()) {
    console.log('native addon not built (npm install): nothing to measure');
    return;
  }
  const p = new NativePlatform();
  console.log(`platform micro-benchmark, ${N} iterations, Node ${process.version}`);

  const e = p.eventfd();
  time('eventfd write+read (Platform wrapper)', N, (n) => {
    for (let i = 0; i < n; i++) {
      p.eventfdWrite(e, 1);
      p.eventfdRead(e);
    }
  });
  const raw = createRequire(import.meta.url)('../../build/Release/virtio_ts_platform.node') as RawAddon;
  const addonNs = time('eventfd write+read (addon, raw)', N, (n) => {
    for (let i = 0; i < n; i++) {
      raw.eventfdWrite(e, 1);
      raw.eventfdRead(e);
    }
  });

  const koffi = loadKoffi();
  if (koffi) {
    const libc = koffi.load('libc.so.6');
    const efdWrite = libc.func('int eventfd_write(int fd, uint64_t value)');
    const efdRead = libc.func('int eventfd_read(int fd, _Out_ uint64_t *value)');
    const out = [0];
    const koffiNs = time('eventfd write+read (koffi, raw)', N, (n) => {
      for (let i = 0; i < n; i++) {
        efdWrite(e, 1);
        efdRead(e, out);
      }
    });
    console.log(`  koffi / addon: ${(koffiNs / addonNs).toFixed(2)}x`);
  } else {
    console.log('eventfd write+read (koffi): koffi not installed (npm install --no-save koffi)');
  }

  const [a, b] = p.socketpair();
  const msg = new Uint8Array(12);
  const rbuf = new Uint8Array(64);
  const rounds = Math.max(1, Math.floor(N / 5));
  time('sendmsg+recvmsg 12 bytes (one thread)', rounds, (n) => {
    for (let i = 0; i < n; i++) {
      p.sendmsg(a, msg, 0, 12);
      p.recvmsg(b, rbuf, 0, 12, 8);
    }
  });
  const mem = p.memfd('bench', 4096);
  time('sendmsg+recvmsg 12 bytes + 1 fd, close it', Math.max(1, Math.floor(rounds / 2)), (n) => {
    for (let i = 0; i < n; i++) {
      p.sendmsg(a, msg, 0, 12, [mem]);
      const r = p.recvmsg(b, rbuf, 0, 12, 8);
      for (const fd of r.fds) p.close(fd);
    }
  });

  // Wake-up: eventfd write -> libuv poll -> JS callback, ping-ponged through the loop.
  const wakes = Math.max(1, Math.floor(N / 50));
  await new Promise<void>((resolve) => {
    let left = wakes;
    let t0 = 0n;
    const w = p.watchReadable(e, () => {
      p.eventfdRead(e);
      if (--left === 0) {
        w.stop();
        const ns = Number(process.hrtime.bigint() - t0) / wakes;
        console.log(`${'eventfd -> uv_poll -> JS callback (wake-up)'.padEnd(52)} ${ns.toFixed(1).padStart(8)} ns`);
        resolve();
        return;
      }
      p.eventfdWrite(e, 1);
    });
    t0 = process.hrtime.bigint();
    p.eventfdWrite(e, 1);
  });

  for (const fd of [a, b, e, mem]) p.close(fd);
}

await main();
