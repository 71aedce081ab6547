/**
 * The registry record of the console device (5.3): `virtio-ts console`, vhost-user type
 * "console" (QEMU 7.2 has no front-end for it; virtio-ts's own front-end and other VMMs do).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { CONSOLE_CLI } from './cli.js';
import { ConsoleDevice } from './console-device.js';
import type { ConsoleDeviceOptions } from './console-device-options.js';
import { ConsoleDriver } from './console-driver.js';
import type { ConsolePort, ConsolePortOptions } from './console-port.js';

/** `createDevice` arguments (structured-cloneable). */
export interface ConsoleDeviceArgs {
  /** The ports present at start (index = port id). Default: one console port. */
  readonly ports?: readonly ConsolePortOptions[];
  /** max_nr_ports (1..1024). Default: the number of `ports`, at least 1. */
  readonly maxNrPorts?: number;
  /** Console size of port 0: offers VIRTIO_CONSOLE_F_SIZE when given. */
  readonly size?: {
    /** Columns (characters per line). */
    readonly cols: number;
    /** Rows (lines). */
    readonly rows: number;
  };
  /** Maximum size of every queue. Default 128. */
  readonly queueSize?: number;
}

/** The next `n` bytes the guest sent on a device port (the Readable side of its host end). */
export async function readPort(port: ConsolePort, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const c = port.read() as Buffer | null;
    if (c === null) {
      await once(port, 'readable');
      continue;
    }
    parts.push(c);
    got += c.length;
  }
  const all = Buffer.concat(parts);
  if (all.length > n) port.unshift(all.subarray(n));
  return all.subarray(0, n);
}

/**
 * The registry record of virtio-console: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const CONSOLE_TYPE: DeviceType = {
  name: 'console',
  deviceId: DeviceId.CONSOLE,
  summary: 'serve a virtio-console device (ports on sockets, ptys, stdio, files) over vhost-user',
  vhostUser: { type: 'console', features: [] },
  // 5.3.4: cols, rows, max_nr_ports, emerg_wr.
  configSize: 12,
  cli: CONSOLE_CLI,
  createDevice(args?: unknown): ConsoleDevice {
    const a = (args ?? {}) as ConsoleDeviceArgs;
    const opts: { -readonly [K in keyof ConsoleDeviceOptions]: ConsoleDeviceOptions[K] } = {};
    if (a.ports !== undefined) opts.ports = a.ports;
    if (a.maxNrPorts !== undefined) opts.maxNrPorts = a.maxNrPorts;
    if (a.size !== undefined) opts.size = a.size;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    return new ConsoleDevice(opts);
  },
  matrixCase() {
    // Two ports: the console (port 0) and a named port 1; with MULTIPORT negotiated (every
    // transport offers it) the whole control handshake runs before data moves.
    const device = new ConsoleDevice({ ports: [{ console: true }, { name: 'org.virtio-ts.matrix' }], size: { cols: 100, rows: 40 }, queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const con = new ConsoleDriver(driver.context);
        assert.ok(con.multiport, 'MULTIPORT negotiated');
        assert.equal(con.maxNrPorts, 2);
        // Every transport of the matrix carries the configuration (vhost-user: GET_CONFIG of the
        // registry record's configSize).
        assert.ok(con.configAvailable, 'config readable');
        assert.deepEqual(con.configSize(), { cols: 100, rows: 40 });
        const [p0, p1] = await Promise.all([con.waitForPort(0), con.waitForPort(1)]);
        await Promise.all([p0!.whenHostOpen(), p1!.whenHostOpen()]);
        assert.equal(p1!.name, 'org.virtio-ts.matrix');
        assert.ok(p0!.isConsole);
        assert.deepEqual(p0!.size, { cols: 100, rows: 40 });
        const host0 = device.port(0)!;
        const host1 = device.port(1)!;
        // Driver -> device on port 1.
        await p1!.write('guest says hi on port 1');
        assert.equal((await readPort(host1, 23)).toString(), 'guest says hi on port 1');
        // Device -> driver on port 0 (open: the driver answered CONSOLE_PORT with PORT_OPEN 1).
        host0.write('host says hi');
        assert.equal(new TextDecoder().decode(await p0!.readBytes(12)), 'host says hi');
        // ... and on port 1 once the guest opened it.
        await p1!.setOpen(true);
        host1.write(Buffer.from('second port'));
        assert.equal(new TextDecoder().decode(await p1!.readBytes(11)), 'second port');
        // Emergency write: one byte through the configuration, out of port 0's host end.
        con.emergencyWrite(0x21);
        assert.equal((await readPort(host0, 1)).toString(), '!');
        assert.deepEqual(device.stats, { badControl: 0, unknownPort: 0, badBuffers: 0, droppedControl: 0, droppedEmergency: 0, droppedOutput: 0 });
        assert.deepEqual(con.stats, { badControl: 0, unknownPort: 0 });
        con.detach();
      },
    };
  },
};
