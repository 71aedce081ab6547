/**
 * The virtio-net transmit drain in process, without the load generator: the device side of
 * `bench/net-pps.sh`'s sink scenario (a front-end transmitting into a port whose switch has
 * nowhere to send the frames). A NetDevice on the real DeviceCore and in-process transport; its
 * only switch port; the driver side the bare ring (a batch of one-descriptor chains, the
 * virtio_net_hdr and the frame together as testpmd's net_virtio_user puts them, added, one
 * kick, the used entries taken back). Features as testpmd negotiates them: no EVENT_IDX, a
 * 12-byte header (no HASH_REPORT).
 *
 * Prints CPU ns per packet (the minimum of `trials` runs of `packets` packets: the machine is
 * shared) for 64 and 1500-byte frames, split and packed rings, and the per-packet figure of the
 * driver side alone (the same ring work against a device that only returns each chain), so the
 * difference is the net device's own cost per frame.
 *
 *   node dist/bench/net-sink-bench.js [packets, default 2e6] [trials, default 5] [batch, default 256] [only: e.g. split-64]
 */
import type { DeviceContext, VirtioDevice } from '../src/device/types.js';
import { QueueServer, type QueueRequest } from '../src/device/queue-server.js';
import { NetDevice } from '../src/devices/net/net-device.js';
import { buildIpFrame } from '../src/devices/net/ip-frames.js';
import { NetSwitch } from '../src/devices/net/switch.js';
import type { Segment } from '../src/queue/types.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { NetF, netHeaderSize } from '../src/spec/net.js';
import { createLoopback } from '../src/testing/loopback.js';

const packets = Number(process.argv[2] ?? 2e6);
const trials = Number(process.argv[3] ?? 5);
const batch = Number(process.argv[4] ?? 256);
/** One case only (`split-64`, `packed-1500`...), for profiling. */
const only = process.argv[5];
const QUEUE = 1024;
const PEER = Uint8Array.of(2, 0x76, 0x74, 0, 0, 2);
const SRC = Uint8Array.of(2, 0, 0, 0, 0, 0x10);

/** A device with one transmit-like queue (index 1 of 3) that only returns each chain: the ring's share. */
class NullTxDevice implements VirtioDevice {
  readonly deviceId = DeviceId.NET;
  readonly offeredFeatures = F.VERSION_1 | F.RING_PACKED | F.INDIRECT_DESC;
  readonly queueMaxSizes = [QUEUE, QUEUE, QUEUE];
  readonly configSize = 0;
  private readonly server = new QueueServer({ name: 'null', numQueues: 3, handler: (i) => (i === 1 ? (_r: QueueRequest) => 0 : null) });
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

async function run(device: VirtioDevice, packed: boolean, frameBytes: number): Promise<number> {
  const lb = await createLoopback(device, { queueSize: QUEUE, packed, eventIdx: false, refuseFeatures: NetF.HASH_REPORT | NetF.RSS, interrupts: 'sync' });
  const ctx = lb.context;
  ctx.onUsed(1, () => {});
  const hl = device instanceof NetDevice ? netHeaderSize(ctx.features) : 12;
  const frame = buildIpFrame({ dst: PEER, src: SRC, udp: true, payload: Math.max(0, frameBytes - 42) });
  // One buffer per ring slot, as a front-end's mbufs (the data is not rewritten per packet).
  const chains: Segment[][] = [];
  for (let i = 0; i < QUEUE; i++) {
    const addr = ctx.dma.alloc(hl + frame.length, 64);
    ctx.memory.write(addr, new Uint8Array(hl));
    ctx.memory.write(addr + hl, frame);
    chains.push([{ addr, len: hl + frame.length }]);
  }
  const NONE: Segment[] = [];
  const q = ctx.queue(1);
  let next = 0;
  const pump = (n: number): void => {
    for (let sent = 0; sent < n; ) {
      const k = Math.min(batch, n - sent);
      for (let i = 0; i < k; i++) {
        q.add(chains[next]!, NONE, next);
        next = (next + 1) % QUEUE;
      }
      ctx.kick(1);
      while (q.takeUsed() !== undefined);
      sent += k;
    }
  };
  pump(200_000); // warm-up: JIT, chains made once per slot
  let best = Infinity;
  for (let t = 0; t < trials; t++) {
    const c0 = process.cpuUsage();
    pump(packets);
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1000) / packets);
  }
  if (device instanceof NetDevice && device.stats.txFrames < packets) throw new Error(`only ${device.stats.txFrames} frames sent`);
  await lb.close();
  return best;
}

console.log(`net-sink-bench: ${packets} packets x ${trials} trials (minimum), batch ${batch}, queue ${QUEUE}, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('ring    frame  device ns/pkt  ring-only ns/pkt  net device share');
for (const packed of [false, true]) {
  for (const size of [64, 1500]) {
    if (only !== undefined && only !== `${packed ? 'packed' : 'split'}-${size}`) continue;
    const dev = new NetDevice({ queueSize: QUEUE, name: 'sink' });
    dev.attachTo(new NetSwitch());
    const ns = await run(dev, packed, size);
    const ring = await run(new NullTxDevice(), packed, size);
    console.log(`${(packed ? 'packed' : 'split').padEnd(7)} ${String(size).padStart(5)}  ${ns.toFixed(0).padStart(13)}  ${ring.toFixed(0).padStart(16)}  ${(ns - ring).toFixed(0).padStart(16)}`);
  }
}
