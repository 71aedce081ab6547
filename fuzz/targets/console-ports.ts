/**
 * virtio-console (5.3) with VIRTIO_CONSOLE_F_MULTIPORT: struct virtio_console_control (id among
 * the ports - 0, 1 named, 2 absent, 3 with its host side closed - or past max_nr_ports, or any
 * u32; event among DEVICE_READY .. PORT_NAME and one past them mostly, any u16 sometimes; value
 * 1, 0, 2 or 0xffff mostly, any sometimes) then raw bytes on the control transmitq (c_ovq);
 * data as raw bytes on every port's transmitq; buffers on every port's receiveq and on the
 * control receiveq (c_ivq). Without MULTIPORT negotiated (the input's feature choice) the same
 * chains reach a single-port device whose control queues are not in use.
 *
 * The configuration is the device's other driver-written field (5.3.4): before a receive
 * buffer, sometimes, the input writes emerg_wr (4 bytes, its low byte alone, or bytes at any
 * offset) or reads any part of the configuration, through the core's config access as a
 * transport does (device/console/1, device/console/2).
 *
 * Ports are backed in memory: port 0 (the console, 100x40) and port 1 (named) have a greeting
 * the host wrote before the driver came (delivered once the guest opens the port and posts
 * receive buffers, in pieces when the buffers are small); their Readable sides take what the
 * guest sends (64 KiB high-water mark, more than an input can send, so transmit buffers never
 * wait on a reader); port 3's host side is closed (its output is dropped and counted). What the
 * host got (every port's bytes, hashed) and the device's counters are the reuse fingerprint's
 * host state.
 *
 * Checks (device-chains): no throw, every transmitq and c_ovq chain completed, used.len within
 * the writable bytes, guards. Receive queues and c_ivq are held (buffers wait for data). A new
 * device per input (freshDevice): the ports are Node streams whose state (the greeting
 * delivered or not, bytes read) a device reset does not restore.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { ConsoleDevice } from '../../src/devices/console/console-device.js';
import { ConsoleConfig, ConsoleEvent, ConsoleQueue, consoleQueueCount, consoleReceiveQueue, consoleTransmitQueue } from '../../src/spec/console.js';

const MAX_PORTS = 4;
const QUEUES = consoleQueueCount(MAX_PORTS, true);
const RECEIVEQS = Array.from({ length: MAX_PORTS }, (_, p) => consoleReceiveQueue(p));
const TRANSMITQS = Array.from({ length: MAX_PORTS }, (_, p) => consoleTransmitQueue(p));
const PORT_IDS = [0, 1, 2, 3, 4, 1023];
const EVENTS = [...Object.values(ConsoleEvent), 8];
const VALUES = [1, 0, 2, 0xffff];
const GREETINGS = [new TextEncoder().encode('virtio-ts fuzz console\r\nlogin: '), Uint8Array.from({ length: 300 }, (_, i) => 0x20 + (i % 95))];

/** A value among `choices` (by a byte's index) mostly, any u32 when the byte is 0xf0 or more. */
function choose(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u32();
}

const configBytes = new Uint8Array(8);

/** emerg_wr written (whole, low byte, or any bytes at any offset) or the configuration read. */
function configStep(r: ByteReader, core: DeviceCore): void {
  const form = r.below(4);
  if (form === 0) core.writeConfig(ConsoleConfig.EMERG_WR, 4, r.u8());
  else if (form === 1) core.writeConfig(ConsoleConfig.EMERG_WR, 1, r.u8());
  else if (form === 2) core.writeConfigBytes(r.below(ConsoleConfig.SIZE + 4), r.bytes(r.below(8)));
  else core.readConfigBytes(r.below(ConsoleConfig.SIZE + 4), configBytes.subarray(0, 1 + r.below(8)));
}

function header(queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  if (queue === ConsoleQueue.CONTROL_TRANSMITQ) return new ByteWriter().u32(choose(r, PORT_IDS)).u16(choose(r, EVENTS)).u16(choose(r, VALUES)).finish();
  if (TRANSMITQS.includes(queue)) return new Uint8Array(0); // the data is the raw rest
  if ((r.u8() & 3) === 0) configStep(r, core);
  return new Uint8Array(0);
}

/** Per port: bytes the host read from it and their hash; then the device's counters. */
const hostLog = new Uint32Array(2 * MAX_PORTS + 6);

function readPorts(d: ConsoleDevice): void {
  for (let p = 0; p < MAX_PORTS; p++) {
    const port = d.port(p);
    if (port === null) continue;
    for (let chunk = port.read() as Buffer | null; chunk !== null; chunk = port.read() as Buffer | null) {
      let h = hostLog[2 * p + 1]!;
      for (const b of chunk) h = (Math.imul(h, 31) + b) >>> 0;
      hostLog[2 * p + 1] = h;
      hostLog[2 * p] = hostLog[2 * p]! + chunk.length;
    }
  }
  const s = d.stats;
  hostLog.set([s.badControl, s.unknownPort, s.badBuffers, s.droppedControl, s.droppedEmergency, s.droppedOutput], 2 * MAX_PORTS);
}

const spec: DeviceChainsSpec = {
  device: () => {
    const hwm = 64 * 1024;
    const d = new ConsoleDevice({
      ports: [
        { readableHighWaterMark: hwm },
        { name: 'org.virtio-ts.fuzz.1', readableHighWaterMark: hwm },
        null,
        { name: 'org.virtio-ts.fuzz.closed', console: true, size: { cols: 80, rows: 24 }, hostOpen: false, readableHighWaterMark: hwm },
      ],
      maxNrPorts: MAX_PORTS,
      multiport: true,
      size: { cols: 100, rows: 40 },
      queueSize: 16,
    });
    d.port(0)!.write(GREETINGS[0]!);
    d.port(1)!.write(GREETINGS[1]!);
    return {
      device: d,
      resetHost: () => hostLog.fill(0),
      hostState: () => {
        readPorts(d);
        return [new Uint8Array(hostLog.buffer)];
      },
    };
  },
  queues: QUEUES,
  heldQueues: [...RECEIVEQS, ConsoleQueue.CONTROL_RECEIVEQ],
  queueSize: 16,
  header,
  freshDevice: {
    dispose: (d) => {
      const c = d as ConsoleDevice;
      c.reset();
      for (let p = 0; p < MAX_PORTS; p++) c.port(p)?.destroy();
    },
  },
};

// ---- seeds (choice bytes are indexes into the lists above) ----

const control = (id: number, event: number, value: number): SeedChain => ({
  queue: ConsoleQueue.CONTROL_TRANSMITQ,
  header: (w) => w.u8(PORT_IDS.indexOf(id)).u8(EVENTS.indexOf(event as never)).u8(VALUES.indexOf(value)),
  writable: 0,
});
const ivq = (): SeedChain => ({ queue: ConsoleQueue.CONTROL_RECEIVEQ, header: (w) => w.u8(1), writable: 64, emptyMessage: true });
const rx = (port: number, writable: SeedChain['writable'] = 64): SeedChain => ({ queue: consoleReceiveQueue(port), header: (w) => w.u8(1), writable, emptyMessage: true });
const tx = (port: number, text: string): SeedChain => ({ queue: consoleTransmitQueue(port), rest: new TextEncoder().encode(text), writable: 0 });
const E = ConsoleEvent;

function seeds(): Uint8Array[] {
  return [
    // Linux's bring-up: c_ivq buffers, DEVICE_READY (ports 0, 1, 3 announced), PORT_READY 0
    // (CONSOLE_PORT, RESIZE, PORT_OPEN from the host), the guest opens port 0: greeting in, a line out.
    deviceChainsSeed(true, [
      [ivq(), ivq(), ivq(), ivq()],
      [control(0, E.DEVICE_READY, 1)],
      [ivq(), ivq(), control(0, E.PORT_READY, 1), control(0, E.PORT_OPEN, 1)],
      [rx(0), tx(0, 'root\n')],
    ], spec),
    // Port 1 (named): PORT_READY then PORT_OPEN; its 300-byte greeting into 64-byte buffers; data out.
    deviceChainsSeed(true, [
      [ivq(), ivq(), ivq(), control(0, E.DEVICE_READY, 1)],
      [ivq(), ivq(), control(1, E.PORT_READY, 1), control(1, E.PORT_OPEN, 1)],
      [rx(1), rx(1), tx(1, '{"execute":"guest-ping"}\n')],
    ], spec),
    // No MULTIPORT: port 0 runs open; its greeting in, output out; a control message is refused.
    deviceChainsSeed(false, [[rx(0, 512), tx(0, 'echo hello\n'), control(0, E.DEVICE_READY, 1)]], spec),
    // Port 3 (host side closed): output dropped; messages the driver must not send, an absent port, DEVICE_READY 0.
    deviceChainsSeed(true, [
      [ivq(), ivq(), control(0, E.DEVICE_READY, 0), control(0, E.DEVICE_READY, 1)],
      [control(3, E.PORT_READY, 1), control(2, E.PORT_OPEN, 1), control(0, E.RESIZE, 1), control(4, E.PORT_NAME, 1)],
      [control(3, E.PORT_OPEN, 1), tx(3, 'lost\n')],
    ], spec),
  ];
}

/**
 * An event-loop turn before each input: the port streams of the inputs before queue
 * process.nextTick callbacks (their destroy, readable and write bookkeeping) that hold the old
 * device and ports. The engine's loop runs on promise continuations, which nextTick callbacks
 * wait behind, so without a turn they pile up across a batch: about 9 KB an input, 800 MB of
 * heap after 4 minutes.
 */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const target: FuzzTarget = {
  name: 'console-ports',
  maxLen: 1024,
  seeds,
  run: async (d) => {
    await turn();
    await runDeviceChains(spec, d);
  },
  outcome: () => deviceChainsOutcome(spec),
};
