/**
 * virtio-ts's ConsoleDriver against QEMU's own virtio-serial-pci through x-remote (no guest):
 * a virtconsole on port 0 and a named virtserialport on port 1, each on a QEMU chardev socket
 * this test connects to. The multiport handshake runs against QEMU's device model; data goes
 * both ways on both ports, and an emergency write comes out of the console's chardev.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConsoleDriver } from '../src/devices/console/console-driver.js';
import { VirtioDriver } from '../src/driver/index.js';
import { ConsoleF } from '../src/spec/console.js';
import { F } from '../src/spec/features.js';
import { startXRemoteDevice, xRemoteUnavailableReason } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;
const ALL = (1n << 64n) - 1n;
const NAME = 'org.virtio-ts.xremote';

/** Collects what a socket receives; `take(n)` resolves with the next n bytes. */
class Collected {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  constructor(readonly socket: Socket) {
    socket.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      this.wake?.();
    });
  }
  async take(n: number): Promise<string> {
    while (this.buf.length < n) await new Promise<void>((r) => (this.wake = r));
    const out = this.buf.subarray(0, n).toString('latin1');
    this.buf = this.buf.subarray(n);
    return out;
  }
}

async function connectTo(path: string): Promise<Socket> {
  const s = connect(path);
  await once(s, 'connect');
  return s;
}

describe('x-remote: QEMU virtio-serial-pci driven by the virtio-ts ConsoleDriver', { skip, timeout: 120_000 }, () => {
  it('driver/console/3, driver/console/4: virtconsole and a named virtserialport, data both ways through QEMU chardevs, emergency write', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vts-xremote-console-'));
    const sock0 = join(dir, 'c0.sock');
    const sock1 = join(dir, 'c1.sock');
    const dev = await startXRemoteDevice({
      device: 'virtio-serial-pci',
      deviceProps: 'max_ports=4',
      qemuArgs: ['-chardev', `socket,id=c0,path=${sock0},server=on,wait=off`, '-chardev', `socket,id=c1,path=${sock1},server=on,wait=off`],
      childDevices: ['virtconsole,chardev=c0,nr=0', `virtserialport,chardev=c1,nr=1,name=${NAME}`],
    });
    const sockets: Socket[] = [];
    try {
      // Connected before the driver starts, so QEMU reports both host sides open.
      const s0 = new Collected(await connectTo(sock0));
      const s1 = new Collected(await connectTo(sock1));
      sockets.push(s0.socket, s1.socket);
      const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: ALL & ~F.RING_PACKED, dma: dev.dma, queueSizes: [64] });
      const con = new ConsoleDriver(driver.context);
      assert.ok(con.multiport, 'QEMU offers MULTIPORT');
      assert.equal(con.maxNrPorts, 4);
      const [p0, p1] = await Promise.all([con.waitForPort(0), con.waitForPort(1)]);
      await Promise.all([p0.whenHostOpen(), p1.whenHostOpen()]);
      assert.ok(p0.isConsole, 'QEMU nominated the virtconsole a console port');
      assert.equal(p1.name, NAME);
      assert.equal(con.port(2), undefined);

      await p0.write('to-host-0');
      assert.equal(await s0.take(9), 'to-host-0');
      await p1.setOpen(true);
      await p1.write('to-host-1');
      assert.equal(await s1.take(9), 'to-host-1');

      s0.socket.write('to-guest-0');
      assert.equal(new TextDecoder().decode(await p0.readBytes(10)), 'to-guest-0');
      s1.socket.write('to-guest-1');
      assert.equal(new TextDecoder().decode(await p1.readBytes(10)), 'to-guest-1');

      assert.notEqual(driver.features & ConsoleF.EMERG_WRITE, 0n, 'QEMU 7.2 offers EMERG_WRITE');
      con.emergencyWrite(0x40);
      assert.equal(await s0.take(1), '@', 'emerg_wr comes out of the console chardev');
      assert.deepEqual(con.stats, { badControl: 0, unknownPort: 0 });
      con.detach();
      driver.reset();
    } finally {
      for (const s of sockets) s.destroy();
      await dev.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
