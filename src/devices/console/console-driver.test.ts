import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { DeviceDriverMismatchError, attachDeviceDriver } from '../../driver/device-driver.js';
import { ChainCursor } from '../../queue/chain.js';
import { ConsoleEvent, ConsoleF, ConsoleQueue, consoleQueueCount } from '../../spec/console.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { createLoopback } from '../../testing/loopback.js';
import { EntropyDevice } from '../entropy/entropy-device.js';
import { encodeControl } from './console-control.js';
import { ConsoleDevice } from './console-device.js';
import { ConsoleDriver } from './console-driver.js';

const T = { timeout: 10_000 };

/**
 * A console device that answers DEVICE_READY with a script of raw control messages (a hostile
 * or buggy device) and records what the driver sends.
 */
class ScriptedConsole implements VirtioDevice {
  readonly deviceId = DeviceId.CONSOLE;
  readonly offeredFeatures = F.VERSION_1 | ConsoleF.MULTIPORT;
  readonly queueMaxSizes = new Array<number>(consoleQueueCount(2, true)).fill(64);
  readonly configSize = 12;
  readonly fromDriver: { id: number; event: number; value: number }[] = [];
  readonly dataPosted: number[] = [];
  private readonly held: QueueRequest[] = [];
  private readonly w = new ChainCursor(true);
  private readonly r = new ChainCursor(false);
  private readonly server: QueueServer;

  constructor(private readonly script: Uint8Array[]) {
    this.server = new QueueServer({
      name: 'scripted',
      numQueues: this.queueMaxSizes.length,
      handler: (i) => {
        if (i === ConsoleQueue.CONTROL_RECEIVEQ) return (req) => void this.held.push(req);
        if (i === ConsoleQueue.CONTROL_TRANSMITQ) return (req) => this.control(req);
        // Data buffers are recorded and kept (never used).
        return () => void this.dataPosted.push(i);
      },
    });
  }

  private control(req: QueueRequest): number {
    const b = new Uint8Array(8);
    this.r.reset(req.chain).read(b);
    const v = new DataView(b.buffer);
    const m = { id: v.getUint32(0, true), event: v.getUint16(4, true), value: v.getUint16(6, true) };
    this.fromDriver.push(m);
    if (m.event === ConsoleEvent.DEVICE_READY) {
      for (const msg of this.script) {
        const h = this.held.shift()!;
        this.server.complete(h, this.w.reset(h.chain).write(msg));
      }
    }
    return 0;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    dst.fill(0);
    if (offset === 4 && dst.length >= 1) dst[0] = 2; // max_nr_ports = 2
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }
  onQueueNotify(i: number): void {
    this.server.onQueueNotify(i);
  }
  reset(): void {
    this.server.reset();
  }
}

describe('console driver (5.3)', () => {
  it('attaches to console devices only', T, async () => {
    const lb = await createLoopback(new EntropyDevice());
    assert.throws(() => attachDeviceDriver(ConsoleDriver.type, lb.context), DeviceDriverMismatchError);
    await lb.close();
    assert.equal(ConsoleDriver.type.requiredFeatures, 0n, 'MULTIPORT, SIZE, EMERG_WRITE are all optional');
  });

  it('driver/console/1, driver/console/2: receive buffers are device-writable only, transmit buffers device-readable only', T, async () => {
    const device = new ConsoleDevice({ ports: [{}, { name: 'p1' }] });
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context);
    const p1 = await con.waitForPort(1);
    await p1.whenHostOpen();
    await p1.setOpen(true);
    await p1.write('abc');
    await con.port(0)!.write('def');
    // The device counts any data buffer of the wrong direction (or with none of the right one).
    assert.equal(device.stats.badBuffers, 0);
    con.detach();
    await lb.close();
  });

  it('ignores and counts bad device messages: port beyond max_nr_ports, DEVICE_ADD twice, unknown event, message for an absent port', T, async () => {
    const script = [
      encodeControl(5, ConsoleEvent.DEVICE_ADD, 0, null, true), // beyond max_nr_ports (2)
      encodeControl(1, ConsoleEvent.DEVICE_ADD, 0, null, true),
      encodeControl(1, ConsoleEvent.DEVICE_ADD, 0, null, true), // exists already (device/console/3)
      encodeControl(1, 77, 0, null, true), // unknown event
      encodeControl(0, ConsoleEvent.PORT_OPEN, 1, null, true), // port 0 was never added
      encodeControl(1, ConsoleEvent.PORT_NAME, 0, new TextEncoder().encode('named'), true),
      encodeControl(1, ConsoleEvent.PORT_OPEN, 1, null, true),
    ];
    const device = new ScriptedConsole(script);
    const lb = await createLoopback(device, { queueSize: 64 });
    const con = new ConsoleDriver(lb.context, { receiveBuffers: 2 });
    const p1 = await con.waitForPort(1);
    await p1.whenHostOpen();
    assert.equal(p1.name, 'named');
    assert.deepEqual(con.stats, { badControl: 1, unknownPort: 3 });
    assert.equal(con.port(0), undefined);
    assert.equal(con.port(5), undefined);
    // driver/console/3 first, then one PORT_READY for the one port added.
    assert.deepEqual(
      device.fromDriver.map((m) => [m.event, m.id, m.value]),
      [
        [ConsoleEvent.DEVICE_READY, 0, 1],
        [ConsoleEvent.PORT_READY, 1, 1],
      ],
    );
    assert.deepEqual(device.dataPosted, [4, 4], 'two receive buffers on port 1 receiveq (queue 4), nothing else');
    con.detach();
    await lb.close();
  });
});
