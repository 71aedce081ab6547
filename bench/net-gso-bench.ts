/**
 * virtio-net segmentation offload, in process:
 *  1. the segmenter alone: 64 KiB TCPv4 GSO packets cut into 1448-byte segments with complete
 *     checksums (segments/s, MB/s of payload, heap delta over the run: no allocation per
 *     segment);
 *  2. end to end: a NetDriver sends 64 KiB TSO frames through the NetDevice to a switch port
 *     that does not take GSO (the switch segments), and to a second device whose driver
 *     negotiated GUEST_TSO4 (the frame goes whole): payload MB/s and CPU per 64 KiB frame.
 *
 *   node --expose-gc dist/bench/net-gso-bench.js [packets]
 */
import { GsoSegmenter } from '../src/devices/net/gso-segmenter.js';
import { buildIpFrame, makeChecksumPartial } from '../src/devices/net/ip-frames.js';
import { NetDevice } from '../src/devices/net/net-device.js';
import { NetDriver } from '../src/devices/net/net-driver.js';
import { NetPacket } from '../src/devices/net/packet.js';
import { NetSwitch } from '../src/devices/net/switch.js';
import { NetF, NetGsoType } from '../src/spec/net.js';
import { createLoopback } from '../src/testing/loopback.js';

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  return true;
}

const A = Uint8Array.of(2, 0, 0, 0, 0, 1);
const B = Uint8Array.of(2, 0, 0, 0, 0, 2);
const PAYLOAD = 65000;

function segmenterAlone(packets: number): void {
  const p = new NetPacket(70000);
  p.set(buildIpFrame({ dst: B, src: A, payload: PAYLOAD }));
  const c = makeChecksumPartial(p.data.subarray(0, p.length));
  p.needsCsum = true;
  p.csumStart = c.start;
  p.csumOffset = c.offset;
  p.gsoType = NetGsoType.TCPV4;
  p.gsoSize = 1448;
  const s = new GsoSegmenter();
  let bytes = 0;
  const sink = { deliver: (seg: NetPacket): void => void (bytes += seg.length) };
  for (let i = 0; i < Math.min(200, packets); i++) s.segment(p, sink);
  const hadGc = gc();
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const seg0 = s.segments;
  for (let i = 0; i < packets; i++) s.segment(p, sink);
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const segments = s.segments - seg0;
  console.log(
    JSON.stringify({
      case: 'segmenter 64 KiB TCPv4 -> 1448-byte segments',
      segmentsPerSec: Math.round((segments / ns) * 1e9),
      payloadMBps: Math.round(((packets * PAYLOAD) / ns) * 1e3),
      cpuUsPerPacket: Math.round((cpu.user + cpu.system) / packets),
      heapDeltaKiB: hadGc ? Math.round((heap1 - heap0) / 1024) : null,
    }),
  );
}

async function endToEnd(packets: number, whole: boolean): Promise<void> {
  const sw = new NetSwitch();
  const tx = new NetDevice({ mac: A, queueSize: 256 });
  tx.attachTo(sw);
  const rx = new NetDevice({ mac: B, queueSize: 256 });
  rx.attachTo(sw);
  const lbTx = await createLoopback(tx, { queueSize: 256 });
  // The receiver without GUEST_TSO4 gets the switch-delivered frame as segments from its device.
  const lbRx = await createLoopback(rx, { queueSize: 256, ...(whole ? {} : { refuseFeatures: NetF.GUEST_TSO4 | NetF.GUEST_ECN }) });
  const sender = new NetDriver(lbTx.context);
  const receiver = new NetDriver(lbRx.context, { rxBuffers: 128 });
  const f = buildIpFrame({ dst: B, src: A, payload: PAYLOAD });
  const perFrame = whole ? 1 : Math.ceil(PAYLOAD / 1448);
  const run = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const got: Promise<unknown>[] = [];
      for (let k = 0; k < perFrame; k++) got.push(receiver.receive());
      await Promise.all([sender.send(f, { gso: { size: 1448 } }), ...got]);
    }
  };
  await run(Math.min(50, packets));
  const hadGc = gc();
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await run(packets);
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  console.log(
    JSON.stringify({
      case: whole ? 'TSO 64 KiB to a GUEST_TSO4 driver (whole)' : 'TSO 64 KiB to a driver without GUEST_TSO4 (segmented by the device)',
      payloadMBps: Math.round(((packets * PAYLOAD) / ns) * 1e3),
      cpuUsPerFrame: Math.round((cpu.user + cpu.system) / packets),
      heapDeltaKiB: hadGc ? Math.round((heap1 - heap0) / 1024) : null,
      rxDropped: rx.stats.rxNoBuffer,
    }),
  );
  sender.detach();
  receiver.detach();
  await lbTx.close();
  await lbRx.close();
}

const packets = Number(process.argv[2] ?? 2000);
segmenterAlone(packets * 5);
await endToEnd(packets, true);
await endToEnd(packets, false);
