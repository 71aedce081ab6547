import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { DeviceCore } from '../../device/device-core.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { ConsoleControl, ConsoleEvent, ConsoleF, ConsoleQueue } from '../../spec/console.js';
import { Status } from '../../spec/status.js';
import { createLoopback } from '../../testing/loopback.js';
import { decodeControl, encodeControl } from './console-control.js';
import { CONSOLE_TX_PIECE, ConsoleDevice } from './console-device.js';
import { ConsoleDriver } from './console-driver.js';
import { readPort } from './console-type.js';

const T = { timeout: 10_000 };
const NO_STATS = { badControl: 0, unknownPort: 0, badBuffers: 0, droppedControl: 0, droppedEmergency: 0, droppedOutput: 0 };

interface Msg {
  id: number;
  event: number;
  value: number;
  payload: Uint8Array;
}

/** A hand-driven control queue pair: the driver side of 5.3.6.2 without ConsoleDriver's rules. */
class RawControl {
  private readonly rx: RequestQueue;
  private readonly tx: RequestQueue;
  private readonly got: Msg[] = [];
  private readonly waiting: ((m: Msg) => void)[] = [];

  constructor(private readonly ctx: DriverContext) {
    this.rx = new RequestQueue(ctx, ConsoleQueue.CONTROL_RECEIVEQ);
    this.tx = new RequestQueue(ctx, ConsoleQueue.CONTROL_TRANSMITQ);
    for (let i = 0; i < 8; i++) this.post(ctx.dma.alloc(512));
  }

  private post(addr: number): void {
    this.rx.submit([], [{ addr, len: 512 }]).then(
      (used) => {
        const b = new Uint8Array(used);
        this.ctx.memory.read(addr, b);
        const h = decodeControl(b, true, { id: 0, event: 0, value: 0 });
        const m = { ...h, payload: b.subarray(ConsoleControl.SIZE) };
        const w = this.waiting.shift();
        if (w) w(m);
        else this.got.push(m);
        this.post(addr);
      },
      () => {},
    );
  }

  /** Sends raw bytes on the control transmitq. */
  async sendBytes(bytes: Uint8Array): Promise<void> {
    const addr = this.ctx.dma.alloc(Math.max(1, bytes.length));
    this.ctx.memory.write(addr, bytes);
    await this.tx.submit([{ addr, len: bytes.length }], []);
    this.ctx.dma.free(addr);
  }

  send(id: number, event: number, value: number): Promise<void> {
    return this.sendBytes(encodeControl(id, event, value, null, true));
  }

  next(): Promise<Msg> {
    const m = this.got.shift();
    return m ? Promise.resolve(m) : new Promise((r) => this.waiting.push(r));
  }

  /** Messages already received and not taken. */
  get pending(): number {
    return this.got.length;
  }

  detach(): void {
    this.rx.detach();
    this.tx.detach();
  }
}

function twoPorts(): ConsoleDevice {
  return new ConsoleDevice({ ports: [{ console: true }, { name: 'org.test.one' }], maxNrPorts: 4, size: { cols: 80, rows: 24 }, queueSize: 64 });
}

describe('console device (5.3)', () => {
  it('single port without MULTIPORT: data both ways, two queues, SIZE in the configuration', T, async () => {
    const device = new ConsoleDevice({ size: { cols: 132, rows: 43 } });
    assert.equal(device.queueMaxSizes.length, 2, '5.3.2: only port 0 queues without MULTIPORT');
    assert.equal(device.offeredFeatures & ConsoleF.MULTIPORT, 0n);
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context, { receiveBuffers: 2, receiveBufferSize: 64 });
    assert.equal(con.multiport, false);
    assert.deepEqual(con.configSize(), { cols: 132, rows: 43 });
    const p0 = con.port(0)!;
    await p0.write('out of the guest');
    assert.equal((await readPort(device.port(0)!, 16)).toString(), 'out of the guest');
    device.port(0)!.write('x'.repeat(300)); // more than the two 64-byte buffers: reposted as read
    assert.equal(new TextDecoder().decode(await p0.readBytes(300)), 'x'.repeat(300));
    assert.deepEqual(device.stats, NO_STATS);
    con.detach();
    await lb.close();
  });

  it('device/console/1, device/console/2: emerg_wr works on an unconfigured device, its lower byte is output', T, async () => {
    const device = new ConsoleDevice();
    const core = new DeviceCore(device, { memory: GuestMemory.allocate(1 << 16), interrupts: { usedBuffer() {}, configChange() {} } });
    assert.equal(core.status, 0);
    core.writeConfig(8, 4, 0x1234_5641); // lower byte 0x41
    core.writeConfigBytes(8, Uint8Array.of(0x42)); // a byte write of the low byte
    assert.equal((await readPort(device.port(0)!, 2)).toString(), 'AB');
    // Reading it gives 0; max_nr_ports and the size are absent without their features.
    assert.equal(core.readConfig(8, 4), 0);
    assert.equal(core.readConfig(4, 4), 0);
    assert.equal(core.readConfig(0, 4), 0);
    // Without EMERG_WRITE offered nothing comes out.
    const quiet = new ConsoleDevice({ emergencyWrite: false });
    const core2 = new DeviceCore(quiet, { memory: GuestMemory.allocate(1 << 16), interrupts: { usedBuffer() {}, configChange() {} } });
    core2.writeConfig(8, 4, 0x41);
    assert.equal(quiet.port(0)!.readableLength, 0);
  });

  it('emergency writes cannot grow port 0 without bound when nobody reads', T, () => {
    const device = new ConsoleDevice();
    const core = new DeviceCore(device, { memory: GuestMemory.allocate(1 << 16), interrupts: { usedBuffer() {}, configChange() {} } });
    const port = device.port(0)!;
    for (let i = 0; i < port.readableHighWaterMark + 100; i++) core.writeConfig(8, 4, 0x2e);
    assert.equal(port.readableLength, port.readableHighWaterMark);
    assert.equal(device.stats.droppedEmergency, 100);
  });

  it('driver/console/3, driver/console/4: the driver sends DEVICE_READY and answers CONSOLE_PORT with PORT_OPEN 1', T, async () => {
    const device = twoPorts();
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const [p0, p1] = await Promise.all([con.waitForPort(0), con.waitForPort(1)]);
    await Promise.all([p0.whenHostOpen(), p1.whenHostOpen()]);
    assert.ok(device.ready, 'DEVICE_READY reached the device');
    assert.ok(p0.isConsole && !p1.isConsole);
    assert.equal(p1.name, 'org.test.one');
    assert.deepEqual(p0.size, { cols: 80, rows: 24 });
    // The PORT_OPEN went out when CONSOLE_PORT arrived, before the host end opened here.
    assert.ok(device.port(0)!.guestOpen, 'the console port is open (PORT_OPEN value 1)');
    assert.equal(device.port(1)!.guestOpen, false, 'a generic port stays closed until the guest opens it');
    assert.equal(con.port(2), undefined);
    assert.deepEqual(device.stats, NO_STATS);
    assert.deepEqual(con.stats, { badControl: 0, unknownPort: 0 });
    con.detach();
    await lb.close();
  });

  it('host data for a generic port waits until the guest opens it; the write callback is the backpressure', T, async () => {
    const device = twoPorts();
    const host1 = device.port(1)!;
    let written = false;
    host1.write('early bytes', () => (written = true));
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const p1 = await con.waitForPort(1);
    await p1.whenHostOpen();
    assert.equal(written, false, 'nothing delivered while the guest has the port closed');
    assert.equal(host1.pendingBytes, 11);
    await p1.setOpen(true);
    assert.equal(new TextDecoder().decode(await p1.readBytes(11)), 'early bytes');
    assert.equal(host1.pendingBytes, 0);
    await p1.setOpen(false);
    assert.equal(host1.guestOpen, false);
    con.detach();
    await lb.close();
  });

  it('guest -> host: a transmit buffer is read piece by piece while the port Readable wants more', T, async () => {
    const device = new ConsoleDevice({ ports: [{ readableHighWaterMark: 1024 }] });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const big = new Uint8Array(4 * CONSOLE_TX_PIECE).map((_, i) => (i * 7) & 0xff);
    let done = false;
    const w = con.port(0)!.write(big).then(() => (done = true));
    const host = device.port(0)!;
    // The in-process kick served the buffer synchronously: one piece is in the Readable, the
    // rest stays in guest memory until the reader takes it.
    assert.equal(host.readableLength, CONSOLE_TX_PIECE);
    await Promise.resolve();
    assert.equal(done, false, 'the buffer is not used while the host does not read');
    const got = await readPort(host, big.length);
    assert.deepEqual(new Uint8Array(got), big);
    await w;
    con.detach();
    await lb.close();
  });

  it('beforeHostAccess runs before host-initiated guest memory access (a host write), not before driver-initiated work', T, async () => {
    let calls = 0;
    const device = new ConsoleDevice({ queueSize: 64, beforeHostAccess: () => calls++ });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const w = con.port(0)!.write('from the driver'); // served inside the driver's kick
    assert.equal(calls, 0, 'a driver notification is already an access with live memory');
    await w;
    const before = calls; // the Readable may ask for more meanwhile: that is host-initiated too
    device.port(0)!.write('from the host');
    assert.equal(calls, before + 1, 'the host write refreshed first, synchronously');
    assert.equal(new TextDecoder().decode(await con.port(0)!.readBytes(13)), 'from the host');
    con.detach();
    await lb.close();
  });

  it('device reset drops held buffers; pending host data survives and reaches the next driver', T, async () => {
    const device = new ConsoleDevice({ queueSize: 64 });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    con.detach();
    await lb.close(); // the device held 8 receive buffers: dropped without touching memory
    assert.equal(device.port(0)!.guestOpen, false);
    device.port(0)!.write('after reset');
    const lb2 = await createLoopback(device, { queueSize: 64 });
    const con2 = new ConsoleDriver(lb2.context);
    assert.equal(new TextDecoder().decode(await con2.port(0)!.readBytes(11)), 'after reset');
    con2.detach();
    await lb2.close();
  });

  it('resize: port 0 size in the configuration with a change notification, and RESIZE on the console port', T, async () => {
    const device = twoPorts();
    const lb = await createLoopback(device, { queueSize: 64 });
    let changes = 0;
    const con = new ConsoleDriver(lb.context);
    lb.context.onConfigChange(() => changes++);
    const p0 = await con.waitForPort(0);
    await p0.whenHostOpen();
    device.resize(200, 60);
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(changes, 1);
    assert.deepEqual(con.configSize(), { cols: 200, rows: 60 });
    // The RESIZE control message follows the same path as every other: wait for it by reading
    // port data sent after it (control messages are in order; data arrives after).
    device.port(0)!.write('z');
    await p0.readBytes(1);
    assert.deepEqual(p0.size, { cols: 200, rows: 60 });
    con.detach();
    await lb.close();
  });
});

describe('console device, multiport control from an untrusted driver (5.3.6.2)', () => {
  async function ready(): Promise<{ device: ConsoleDevice; raw: RawControl; close: () => Promise<void>; ctx: DriverContext; status: () => number }> {
    const device = twoPorts();
    const lb = await createLoopback(device, { queueSize: 64 });
    const raw = new RawControl(lb.context);
    return {
      device,
      raw,
      ctx: lb.context,
      status: () => lb.core.status,
      close: async () => {
        raw.detach();
        await lb.close();
      },
    };
  }

  it('device/console/3: DEVICE_ADD once per port, below max_nr_ports, also when DEVICE_READY comes twice or a port is hot-plugged', T, async () => {
    const { device, raw, close } = await ready();
    await raw.send(0, ConsoleEvent.DEVICE_READY, 1);
    await raw.send(0, ConsoleEvent.DEVICE_READY, 1);
    const a = await raw.next();
    const b = await raw.next();
    assert.deepEqual([a.event, a.id, b.event, b.id], [ConsoleEvent.DEVICE_ADD, 0, ConsoleEvent.DEVICE_ADD, 1]);
    assert.equal(raw.pending, 0, 'the second DEVICE_READY announced nothing again');
    assert.throws(() => device.addPort(1), /exists/);
    assert.throws(() => device.addPort(4), /max_nr_ports/);
    device.addPort(3, { name: 'hot' });
    const c = await raw.next();
    assert.deepEqual([c.event, c.id], [ConsoleEvent.DEVICE_ADD, 3]);
    await close();
  });

  it('device/console/4: DEVICE_REMOVE only for a port announced before', T, async () => {
    const { device, raw, close } = await ready();
    device.addPort(2); // not announced: the driver is not ready
    assert.ok(device.removePort(2));
    assert.equal(raw.pending, 0, 'no DEVICE_REMOVE for a port never added');
    await raw.send(0, ConsoleEvent.DEVICE_READY, 1);
    await raw.next();
    await raw.next();
    const host1 = device.port(1)!;
    assert.ok(device.removePort(1));
    const m = await raw.next();
    assert.deepEqual([m.event, m.id], [ConsoleEvent.DEVICE_REMOVE, 1]);
    host1.resume();
    await once(host1, 'end'); // the host end of a removed port ends
    assert.equal(device.removePort(1), false);
    await close();
  });

  it('PORT_READY brings CONSOLE_PORT (value 1), RESIZE, PORT_NAME and PORT_OPEN', T, async () => {
    const { raw, close } = await ready();
    await raw.send(0, ConsoleEvent.DEVICE_READY, 1);
    await raw.next();
    await raw.next();
    await raw.send(0, ConsoleEvent.PORT_READY, 1);
    const c = await raw.next();
    assert.deepEqual([c.event, c.id, c.value], [ConsoleEvent.CONSOLE_PORT, 0, 1]);
    const r = await raw.next();
    assert.equal(r.event, ConsoleEvent.RESIZE);
    assert.deepEqual([...r.payload], [80, 0, 24, 0], 'struct virtio_console_resize: cols then rows');
    assert.deepEqual([(await raw.next()).event], [ConsoleEvent.PORT_OPEN]);
    await raw.send(1, ConsoleEvent.PORT_READY, 1);
    const n = await raw.next();
    assert.equal(n.event, ConsoleEvent.PORT_NAME);
    assert.equal(new TextDecoder().decode(n.payload), 'org.test.one');
    const o = await raw.next();
    assert.deepEqual([o.event, o.id, o.value], [ConsoleEvent.PORT_OPEN, 1, 1]);
    await close();
  });

  it('bad control messages are ignored and counted: short, unknown event, wrong direction, unknown port; the device keeps working', T, async () => {
    const { device, raw, close, status } = await ready();
    await raw.sendBytes(new Uint8Array(4)); // shorter than the header
    await raw.send(0, 99, 1); // no such event
    await raw.send(0, ConsoleEvent.DEVICE_ADD, 0); // a device -> driver event
    await raw.send(0, ConsoleEvent.PORT_READY, 1); // before DEVICE_READY: port 0 not announced
    await raw.send(0, ConsoleEvent.DEVICE_READY, 1);
    await raw.next();
    await raw.next();
    await raw.send(7, ConsoleEvent.PORT_OPEN, 1); // beyond max_nr_ports
    await raw.send(0xffff_ffff, ConsoleEvent.PORT_READY, 1);
    await raw.send(2, ConsoleEvent.PORT_OPEN, 1); // below max_nr_ports, but no such port
    assert.equal(device.stats.badControl, 3);
    assert.equal(device.stats.unknownPort, 4);
    assert.equal(status() & Status.DEVICE_NEEDS_RESET, 0);
    assert.ok(status() & Status.DRIVER_OK);
    // Still serving: PORT_OPEN of a real port takes effect.
    await raw.send(1, ConsoleEvent.PORT_OPEN, 1);
    assert.ok(device.port(1)!.guestOpen);
    await close();
  });

  it('driver/console/1: a receive buffer without writable bytes is returned unused and counted', T, async () => {
    const { device, ctx, close } = await ready();
    const rx = new RequestQueue(ctx, ConsoleQueue.RECEIVEQ_PORT0);
    const addr = ctx.dma.alloc(16);
    assert.equal(await rx.submit([{ addr, len: 16 }], []), 0);
    assert.equal(device.stats.badBuffers, 1);
    rx.detach();
    await close();
  });
});

describe('console device: the host side connecting and leaving (PORT_OPEN from the device)', () => {
  it('a port whose host side starts closed gets PORT_OPEN 1 when it connects and 0 when it leaves; its output is dropped meanwhile', T, async () => {
    const device = new ConsoleDevice({ ports: [{ console: true }, { name: 'late', hostOpen: false }], queueSize: 64 });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const [p0, p1] = await Promise.all([con.waitForPort(0), con.waitForPort(1)]);
    await p0.whenHostOpen();
    // PORT_NAME answers port 1's PORT_READY; a PORT_OPEN would come in the same answer.
    for (let i = 0; i < 50 && p1.name === null; i++) await new Promise((r) => setImmediate(r));
    assert.equal(p1.name, 'late');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(p1.hostOpen, false, 'no PORT_OPEN 1 for a host side that is not there');
    assert.equal(device.setHostOpen(1, true), true);
    await p1.whenHostOpen();
    await p1.setOpen(true);
    device.port(1)!.write('hello');
    assert.equal(new TextDecoder().decode(await p1.readBytes(5)), 'hello');
    device.setHostOpen(1, false);
    for (let i = 0; i < 10 && p1.hostOpen; i++) await new Promise((r) => setImmediate(r));
    assert.equal(p1.hostOpen, false, 'PORT_OPEN 0 reached the driver');
    // The guest's output with nobody on the host side is used (not held) and counted.
    await p1.write('into the void');
    assert.equal(device.stats.droppedOutput, 13);
    assert.equal(device.port(1)!.readableLength, 0);
    assert.equal(device.setHostOpen(3, true), false, 'no such port');
    con.detach();
    await lb.close();
  });

  it('a console port other than 0 with a size gets RESIZE at PORT_READY, and again on resize()', T, async () => {
    const device = new ConsoleDevice({ ports: [{ console: true }, { console: true, size: { cols: 90, rows: 30 } }], queueSize: 64 });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const p1 = await con.waitForPort(1);
    await p1.whenHostOpen(); // RESIZE goes before PORT_OPEN
    assert.ok(p1.isConsole);
    assert.deepEqual(p1.size, { cols: 90, rows: 30 });
    device.resize(120, 50, 1);
    for (let i = 0; i < 20 && p1.size?.cols !== 120; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(p1.size, { cols: 120, rows: 50 });
    con.detach();
    await lb.close();
  });
});
