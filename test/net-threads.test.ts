/**
 * `virtio-ts net --threads 2` (runNet in this process): two socket ports, port 0 served on ring
 * thread 0 and port 1 on ring thread 1, each thread with its own switch, the switches joined by
 * SharedArrayBuffer rings. Two front-ends (the library's vhost-user front-end and NetDriver, on
 * this thread) exchange frames: unicast both ways after learning, broadcast, the per-port queue
 * counters written by the threads; a thread that dies makes its port's device NEEDS_RESET while
 * the other port goes on (frames towards the dead thread are dropped and counted, nothing
 * blocks); shutdown is bounded. The mesh itself (learning, VLANs, full rings):
 * src/devices/net/switch-mesh.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { NetDriver } from '../src/devices/net/net-driver.js';
import type { NetOptions } from '../src/devices/net/cli.js';
import { runNet } from '../src/devices/net/net-command.js';
import { meshRingCounters } from '../src/devices/net/net-threads-command.js';
import type { SwitchMeshSpec } from '../src/devices/net/switch-mesh.js';
import type { QueueStats } from '../src/device/queue-stats.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { NetF } from '../src/spec/net.js';
import { Status } from '../src/spec/status.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import type { VhostUserServer } from '../src/vhost-user/server.js';
import type { WorkerPool } from '../src/vhost-user/worker-pool.js';
import { isSocket, makeTempDir, type TempDir } from './support/guest.js';
import { parseCommandLine } from '../src/cli/args.js';
import { expectCliFault } from '../src/cli/cli-test-helpers.js';
import { CliFault } from '../src/cli/options.js';
import { ErrorCode, VirtioError } from '../src/errors.js';

const skip = nativePlatformAvailable() ? false : 'native addon not built';
if (skip !== false && process.env['CI'] === 'true') throw new Error(`CI=true: ${skip}`);

const WANT = NetF.MRG_RXBUF | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX;
const BROADCAST = new Uint8Array(6).fill(0xff);

function frame(dst: Uint8Array, src: Uint8Array, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // IEEE 802 local experimental
  for (let i = 14; i < len; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('virtio-ts net --threads 2: socket ports on ring threads, switches joined by shared-memory rings', { skip, timeout: 180_000 }, () => {
  let dir: TempDir;
  let stop: () => void = () => undefined;
  let running: Promise<number>;
  let pool: WorkerPool;
  let mesh: SwitchMeshSpec;
  let stats: readonly QueueStats[];
  const servers: VhostUserServer[] = [];
  const log: string[] = [];
  const socks: string[] = [];
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-net-threads-');
    socks.push(dir.file('a.sock'), dir.file('b.sock'));
    const options: NetOptions = {
      socketPath: socks[0]!,
      fd: null,
      verbosity: 2,
      socketPaths: socks,
      mac: Uint8Array.of(2, 0x76, 0x74, 0, 0, 1),
      mtu: 1500,
      queueSize: 256,
      threads: 2,
      // The capture makes the main thread a third node of the mesh: each thread's switch sends
      // what enters it to the main thread's capture ring.
      pcap: dir.file('cap.pcap'),
    };
    const stopped = new Promise<void>((r) => (stop = r));
    running = runNet(
      options,
      { stdout: () => undefined, stderr: (l) => void log.push(l) },
      {
        stop: stopped,
        onPool: (p, m, s) => {
          pool = p;
          mesh = m;
          stats = s;
        },
        onServer: (s) => servers.push(s),
      },
    );
    for (const end = Date.now() + 20_000; !socks.every(isSocket); ) {
      if (Date.now() > end) throw new Error(`the back-end did not listen: ${log.join('')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    for (const t of transports) t.close();
    stop();
    await running?.catch(() => undefined);
    await dir?.remove();
  });

  async function attach(port: number): Promise<{ net: NetDriver; t: VhostUserDriverTransport }> {
    const t = await VhostUserDriverTransport.connect(socks[port]!, { deviceId: DeviceId.NET, timeoutMs: 20_000, memorySize: 16 << 20 });
    transports.push(t);
    const vd = await startVhostUserDriver(t, { wantedFeatures: WANT, driverType: NetDriver.type, queueSizes: [256, 256] });
    return { net: new NetDriver(vd.context), t };
  }

  let a: NetDriver;
  let b: NetDriver;
  let tb: VhostUserDriverTransport;

  it('frames between ports on different threads: broadcast, then unicast both ways once learned; bytes intact; counters from the threads', { timeout: 60_000 }, async () => {
    ({ net: a } = await attach(0));
    ({ net: b, t: tb } = await attach(1));
    const macA = Uint8Array.of(2, 0, 0, 0, 0xa, 1);
    const macB = Uint8Array.of(2, 0, 0, 0, 0xb, 1);
    // Broadcast from A (thread 0) reaches B (thread 1); both threads learn A.
    const hello = frame(BROADCAST, macA, 60, 1);
    const [, got] = await withTimeout(Promise.all([a.send(hello), b.receive()]), 10_000, 'broadcast');
    assert.deepEqual(got.data, hello);
    for (let i = 0; i < 200; i++) {
      const len = 60 + ((i * 97) % (1514 - 60 + 1));
      const ab = frame(macB, macA, len, i);
      const [, r1] = await withTimeout(Promise.all([a.send(ab), b.receive()]), 10_000, `frame ${i} A->B`);
      assert.deepEqual(r1.data, ab, `frame ${i} A->B (${len} bytes)`);
      const ba = frame(macA, macB, len, i + 1);
      const [, r2] = await withTimeout(Promise.all([b.send(ba), a.receive()]), 10_000, `frame ${i} B->A`);
      assert.deepEqual(r2.data, ba, `frame ${i} B->A (${len} bytes)`);
    }
    assert.equal(a.pendingFrames, 0, 'A saw no copies of its own frames');
    const rings = meshRingCounters(mesh);
    assert.equal(rings.find((r) => r.from === 0 && r.to === 1)!.sent, 201);
    assert.equal(rings.find((r) => r.from === 1 && r.to === 0)!.sent, 200);
    assert.ok(rings.every((r) => r.dropped === 0 && r.oversize === 0));
    // Queue counters, written by each port's thread into shared storage: receiveq1 0, transmitq1 1.
    for (const port of [0, 1]) {
      assert.ok(stats[port]!.value(1, 'kicks') >= 200, `port ${port} transmitq kicked on its thread`);
      assert.ok(stats[port]!.value(0, 'completed') >= 200, `port ${port} receive buffers used on its thread`);
    }
  });

  it('a thread that dies: its port\'s device reports DEVICE_NEEDS_RESET, the other port goes on, frames towards it are dropped and counted', { timeout: 60_000 }, async () => {
    const macA = Uint8Array.of(2, 0, 0, 0, 0xa, 1);
    await pool.crashThread(1);
    const core = servers[1]!.backend!.core;
    for (const end = Date.now() + 10_000; (core.status & Status.DEVICE_NEEDS_RESET) === 0; ) {
      if (Date.now() > end) assert.fail('port 1 never reported DEVICE_NEEDS_RESET');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Port 0 keeps sending: nobody drains the ring to thread 1 any more; it fills and drops.
    const before = meshRingCounters(mesh).find((r) => r.from === 0 && r.to === 1)!;
    for (let i = 0; i < 600; i++) await a.send(frame(BROADCAST, macA, 60, i));
    for (const end = Date.now() + 10_000; ; ) {
      const now = meshRingCounters(mesh).find((r) => r.from === 0 && r.to === 1)!;
      if (now.dropped - before.dropped + (now.sent - before.sent) >= 600) {
        assert.ok(now.dropped > before.dropped, 'a full ring drops');
        break;
      }
      if (Date.now() > end) assert.fail(`port 0's frames did not all reach its switch: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The session on the dead thread fails fast (no hang): a request on it ends the connection.
    tb.close();
  });

  it('shutdown ends the threads and the sockets within a bound', { timeout: 30_000 }, async () => {
    for (const t of transports) t.close();
    const t0 = Date.now();
    stop();
    assert.equal(await withTimeout(running, 15_000, 'shutdown'), 0);
    assert.ok(Date.now() - t0 < 15_000);
    assert.ok(!socks.some(isSocket), 'the sockets are removed');
    assert.match(log.join(''), /thread links: 0->1 sent \d+ dropped [1-9]/);
    // Every frame of the first test entered the mesh once and was captured once: 1 broadcast and
    // 200 frames each way (the crash test's 600 come after them; a full capture ring may drop some).
    const cap = readFileSync(dir.file('cap.pcap'));
    const lengths: number[] = [];
    for (let at = 24; at + 16 <= cap.length; at += 16 + cap.readUInt32LE(at + 8)) lengths.push(cap.readUInt32LE(at + 12));
    assert.ok(lengths.length >= 401, `captured ${lengths.length} frames`);
    // The threads' capture rings are drained in turn: frames of the two directions may interleave.
    assert.deepEqual(
      lengths.slice(0, 4).sort((x, y) => x - y),
      [60, 60, 60, 60 + 97],
      'the broadcast, frame 0 both ways, frame 1 A->B',
    );
    const m = /pcap \S+: (\d+) frames/.exec(log.join(''));
    assert.equal(Number(m?.[1]), lengths.length);
  });
});

describe('virtio-ts net --threads: options and refusals', () => {
  function parseNet(argv: string[]): NetOptions {
    const p = parseCommandLine(['net', ...argv]);
    assert.equal(p.kind, 'device');
    return (p as unknown as { options: NetOptions }).options;
  }

  it('parses --threads 1..the number of sockets; refuses more threads than sockets (a port is served by one thread) and 0', () => {
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock', '--socket-path', '/tmp/b.sock', '--threads', '2']).threads, 2);
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock']).threads, undefined);
    expectCliFault('net', ['--socket-path', '/tmp/b.sock', '--threads', '3'], CliFault.BAD_NUMBER);
    expectCliFault('net', ['--threads', '0'], CliFault.BAD_NUMBER);
  });

  it('refuses, with a typed error, test hooks that would have to reach the devices and switches on the worker threads', async () => {
    const options: NetOptions = { socketPath: '/tmp/vts-never.sock', fd: null, verbosity: 0, socketPaths: ['/tmp/vts-never.sock'], mac: Uint8Array.of(2, 0, 0, 0, 0, 1), mtu: 1500, queueSize: 256, threads: 1 };
    await assert.rejects(
      runNet(options, { stdout: () => undefined, stderr: () => undefined }, { onDevice: () => undefined }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT && /hooks do not reach/.test(e.message),
    );
  });
});
