/**
 * In-process virtio-net: frames through the real NetDriver, VirtioDriver, InProcessTransport,
 * DeviceCore and NetDevice to a reflector port on the switch and back (each frame crosses the
 * transmit and the receive path once), 64-byte and 1514-byte frames, split and packed rings,
 * mergeable receive buffers. Prints round trips per second, CPU ns per round trip, and the heap
 * delta over the run (after a GC at both ends: retained memory, not garbage). The driver side
 * allocates per frame (promises, copies); the device side does not.
 *
 *   node --expose-gc dist/bench/net-inprocess-bench.js [frames per run]
 */
import { NetDevice } from '../src/devices/net/net-device.js';
import { NetDriver } from '../src/devices/net/net-driver.js';
import { NetPacket } from '../src/devices/net/packet.js';
import { ReflectorPort } from '../src/devices/net/reflector-port.js';
import { NetSwitch } from '../src/devices/net/switch.js';
import { createLoopback } from '../src/testing/loopback.js';

const REFLECTOR = Uint8Array.of(2, 0, 0, 0, 0, 0xee);
const WINDOW = 32;

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  return true;
}

async function run(packed: boolean, size: number, frames: number): Promise<void> {
  const device = new NetDevice({ queueSize: 256 });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const r = new ReflectorPort('reflector', REFLECTOR, () => new NetPacket(1518 + 4));
  r.link = sw.attach(r);
  const lb = await createLoopback(device, { packed, queueSize: 256 });
  const net = new NetDriver(lb.context, { rxBuffers: 128 });
  const f = new Uint8Array(size);
  f.set(REFLECTOR, 0);
  f.set(net.mac, 6);
  f[12] = 0x08;
  const loop = async (n: number): Promise<void> => {
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < n) {
        sent++;
        await Promise.all([net.send(f), net.receive()]);
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
  };
  await loop(Math.min(2000, frames)); // warm-up
  const hadGc = gc();
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await loop(frames);
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const line = {
    ring: packed ? 'packed' : 'split',
    frameBytes: size,
    roundTripsPerSec: Math.round((frames / ns) * 1e9),
    cpuNsPerRoundTrip: Math.round(((cpu.user + cpu.system) * 1000) / frames),
    heapDeltaKiB: hadGc ? Math.round((heap1 - heap0) / 1024) : null,
    deviceRxNoBuffer: device.stats.rxNoBuffer,
  };
  console.log(JSON.stringify(line));
  net.detach();
  await lb.close();
}

const frames = Number(process.argv[2] ?? 50_000);
for (const packed of [false, true]) for (const size of [64, 1514]) await run(packed, size, frames);
