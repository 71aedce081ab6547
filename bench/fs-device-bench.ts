/**
 * virtio-fs small requests in process, without a guest or a load generator: the device side of
 * `bench/fs-ops.mjs`'s lookup+getattr and 4 KiB random read rows, measured so that a 1 µs change
 * shows on a loaded machine. The real FsDevice on the real DeviceCore and in-process transport,
 * over a temporary shared directory (a 64 MiB file, 64 names); the driver side the bare ring:
 * requests made once in guest memory, 16 chains added per kick, the used entries taken back.
 *
 * Mixes:
 *   lookup: LOOKUP of an existing name, GETATTR of its nodeid (request queue), FORGET 1 (hiprio
 *           queue, no reply): the 3 requests of one fs-ops "lookup+getattr" operation.
 *   read:   READ of 4 KiB at a random page-aligned offset of an open 64 MiB file (page cache).
 *
 * Prints CPU ns per request (process.cpuUsage, the minimum of `trials` runs: the machine is
 * shared) for split and packed rings, and the same ring work against a device that returns each
 * chain without looking at it (the floor), so the difference is FsDevice's own cost.
 *
 *   node dist/bench/fs-device-bench.js [requests, default 5e4] [trials, default 21] [only: e.g. split-read]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueServer, type QueueRequest } from '../src/device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../src/device/types.js';
import type { DriverContext } from '../src/driver/types.js';
import { FsDevice } from '../src/devices/fs/fs-device.js';
import type { Segment } from '../src/queue/types.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { FuseOpcode } from '../src/spec/fs.js';
import { createLoopback } from '../src/testing/loopback.js';

const requests = Number(process.argv[2] ?? 5e4);
const trials = Number(process.argv[3] ?? 21);
/** One case only (`split-lookup`, `packed-read`...), for profiling. */
const only = process.argv[4];
const QUEUE = 1024;
const BATCH = 16;
const NAMES = 64;
const FILE_BYTES = 64 << 20;
const READ_BYTES = 4096;
/** Distinct READ requests made up front (random offsets), cycled through. */
const READ_SLOTS = 4096;
const REQUEST_QUEUE = 1;
const HIPRIO_QUEUE = 0;

/** A device with the fs queue layout that returns each chain unread: the ring's share. */
class NullFsDevice implements VirtioDevice {
  readonly deviceId = DeviceId.FS;
  readonly offeredFeatures = F.VERSION_1 | F.RING_PACKED | F.INDIRECT_DESC | F.EVENT_IDX;
  readonly queueMaxSizes = [QUEUE, QUEUE];
  readonly configSize = 0;
  private readonly server = new QueueServer({ name: 'null-fs', numQueues: 2, handler: () => (_r: QueueRequest) => 0 });
  readConfig(): void {}
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }
  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }
  reset(): void {
    this.server.reset();
  }
}

let unique = 1;
function fuseRequest(opcode: number, nodeid: number, args: Uint8Array): Buffer {
  const b = Buffer.alloc(40 + args.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(BigInt(unique++), 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.set(args, 40);
  return b;
}

/** One chain made once: its request in guest memory, its reply buffer (none for FORGET). */
interface Chain {
  readonly out: Segment[];
  readonly inn: Segment[];
}

function place(ctx: DriverContext, req: Uint8Array, replyBytes: number): Chain {
  const addr = ctx.dma.alloc(req.length, 64);
  ctx.memory.write(addr, req);
  return { out: [{ addr, len: req.length }], inn: replyBytes > 0 ? [{ addr: ctx.dma.alloc(replyBytes, 64), len: replyBytes }] : [] };
}

/** Adds `chains` on queue `qi` (BATCH per kick), returns every used entry; the used lengths summed. */
function submit(ctx: DriverContext, qi: number, chains: readonly Chain[], from: number, n: number): number {
  const q = ctx.queue(qi);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = chains[(from + i) % chains.length]!;
    q.add(c.out, c.inn, i);
  }
  ctx.kick(qi);
  for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) sum += q.lastUsedLen;
  return sum;
}

/** A synchronous round trip of one request on queue 1 (setup only): the reply's bytes. */
function call(ctx: DriverContext, req: Uint8Array, replyBytes: number): Buffer {
  const c = place(ctx, req, replyBytes);
  const q = ctx.queue(REQUEST_QUEUE);
  q.add(c.out, c.inn, 0);
  ctx.kick(REQUEST_QUEUE);
  if (q.takeUsed() === undefined) throw new Error('no reply');
  const reply = Buffer.alloc(q.lastUsedLen);
  ctx.memory.read(c.inn[0]!.addr, reply);
  return reply;
}

function u64(x: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(x));
  return b;
}

async function run(device: VirtioDevice, fs: boolean, packed: boolean, mix: 'lookup' | 'read'): Promise<number> {
  const lb = await createLoopback(device, { queueSize: QUEUE, packed, interrupts: 'sync', memorySize: 64 << 20 });
  const ctx = lb.context;
  ctx.onUsed(0, () => {});
  ctx.onUsed(1, () => {});
  // Setup on the real device: INIT, one held LOOKUP per name (stable nodeids), OPEN of the file.
  const nodeids: number[] = [];
  let fh = 0;
  let fileNode = 0;
  if (fs) {
    const init = Buffer.alloc(16);
    init.writeUInt32LE(7, 0);
    init.writeUInt32LE(31, 4);
    if (call(ctx, fuseRequest(FuseOpcode.INIT, 0, init), 16 + 64).readInt32LE(4) !== 0) throw new Error('INIT failed');
    for (let i = 0; i < NAMES; i++) {
      const r = call(ctx, fuseRequest(FuseOpcode.LOOKUP, 1, Buffer.from(`f${i}\0`)), 16 + 128);
      if (r.readInt32LE(4) !== 0) throw new Error(`LOOKUP f${i} failed`);
      nodeids.push(Number(r.readBigUInt64LE(16)));
    }
    const big = call(ctx, fuseRequest(FuseOpcode.LOOKUP, 1, Buffer.from('big.bin\0')), 16 + 128);
    fileNode = Number(big.readBigUInt64LE(16));
    const open = call(ctx, fuseRequest(FuseOpcode.OPEN, fileNode, Buffer.alloc(8)), 16 + 16);
    if (open.readInt32LE(4) !== 0) throw new Error('OPEN failed');
    fh = Number(open.readBigUInt64LE(16));
  } else for (let i = 0; i < NAMES; i++) nodeids.push(2 + i);
  const requestChains: Chain[] = [];
  const forgetChains: Chain[] = [];
  if (mix === 'lookup') {
    for (let i = 0; i < NAMES; i++) {
      requestChains.push(place(ctx, fuseRequest(FuseOpcode.LOOKUP, 1, Buffer.from(`f${i}\0`)), 16 + 128));
      requestChains.push(place(ctx, fuseRequest(FuseOpcode.GETATTR, nodeids[i]!, Buffer.alloc(16)), 16 + 104));
      forgetChains.push(place(ctx, fuseRequest(FuseOpcode.FORGET, nodeids[i]!, u64(1)), 0));
    }
  } else {
    let x = 0x9e3779b9;
    for (let i = 0; i < READ_SLOTS; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const args = Buffer.alloc(40); // fuse_read_in
      args.writeBigUInt64LE(BigInt(fh), 0);
      args.writeBigUInt64LE(BigInt(((x >>> 0) % (FILE_BYTES / READ_BYTES)) * READ_BYTES), 8);
      args.writeUInt32LE(READ_BYTES, 16);
      requestChains.push(place(ctx, fuseRequest(FuseOpcode.READ, fileNode, args), 16 + READ_BYTES));
    }
  }
  let next = 0;
  /** `n` requests of the mix; the reply bytes (checked for the real device). */
  const pump = (n: number): number => {
    let bytes = 0;
    if (mix === 'lookup') {
      // Per kick: 8 LOOKUP + 8 GETATTR on the request queue, then the 8 FORGETs on hiprio.
      const perRound = BATCH + BATCH / 2;
      for (let done = 0; done < n; done += perRound) {
        bytes += submit(ctx, REQUEST_QUEUE, requestChains, 2 * next, BATCH);
        bytes += submit(ctx, HIPRIO_QUEUE, forgetChains, next, BATCH / 2);
        next = (next + BATCH / 2) % NAMES;
      }
    } else {
      for (let done = 0; done < n; done += BATCH) {
        bytes += submit(ctx, REQUEST_QUEUE, requestChains, next, BATCH);
        next = (next + BATCH) % READ_SLOTS;
      }
    }
    return bytes;
  };
  const perRequest = mix === 'lookup' ? (16 + 128 + 16 + 104) / 3 : 16 + READ_BYTES;
  const check = (n: number): void => {
    const bytes = pump(n);
    const rounded = mix === 'lookup' ? Math.ceil(n / 24) * 24 : Math.ceil(n / BATCH) * BATCH;
    if (fs && bytes !== Math.round(perRequest * rounded)) throw new Error(`${mix}: ${bytes} reply bytes, expected ${perRequest * rounded}`);
  };
  check(Math.min(requests, 50_000)); // warm-up: JIT; every reply whole
  let best = Infinity;
  for (let t = 0; t < trials; t++) {
    const c0 = process.cpuUsage();
    pump(requests);
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1000) / requests);
  }
  check(BATCH * 3);
  await lb.close();
  return best;
}

const share = mkdtempSync(join(tmpdir(), 'vts-fsbench-'));
try {
  const big = Buffer.alloc(FILE_BYTES);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  writeFileSync(join(share, 'big.bin'), big);
  for (let i = 0; i < NAMES; i++) writeFileSync(join(share, `f${i}`), `file ${i}\n`);
  console.log(`fs-device-bench: ${requests} requests x ${trials} trials (minimum), ${BATCH} per kick, queue ${QUEUE}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log('ring    mix     device ns/req  ring-only ns/req  fs device share');
  for (const packed of [false, true]) {
    for (const mix of ['lookup', 'read'] as const) {
      const name = `${packed ? 'packed' : 'split'}-${mix}`;
      if (only !== undefined && only !== name) continue;
      const dev = new FsDevice({ sharedDir: share, tag: 'bench', queueSize: QUEUE });
      const ns = await run(dev, true, packed, mix);
      dev.close();
      const ring = await run(new NullFsDevice(), false, packed, mix);
      console.log(`${(packed ? 'packed' : 'split').padEnd(7)} ${mix.padEnd(6)}  ${ns.toFixed(0).padStart(13)}  ${ring.toFixed(0).padStart(16)}  ${(ns - ring).toFixed(0).padStart(15)}`);
    }
  }
} finally {
  rmSync(share, { recursive: true, force: true });
}
