/**
 * Flow control of a socket port without unbounded buffering (the CLI's port-link.ts over a
 * ConsoleDevice, ConsoleDriver in process as the guest):
 *  - guest -> host: a client that stops reading leaves the guest's transmit buffers unused (its
 *    writes stall) while the back-end holds at most the port's and the socket's highWaterMarks;
 *    once it reads again every byte arrives, in order;
 *  - host -> guest: a guest that posts no receive buffers pauses the socket: the back-end holds
 *    a bounded amount and the rest stays with the client; once the guest reads, all arrives.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../log.js';
import { createLoopback } from '../../testing/loopback.js';
import { CONSOLE_TX_PIECE, ConsoleDevice } from './console-device.js';
import { ConsoleDriver } from './console-driver.js';
import { ConsolePortLink } from './port-link.js';
import { parsePortSpec } from './port-spec.js';

const MiB = 1 << 20;
/** How long "no progress" is watched for: the system is idle, so any progress would show at once. */
const QUIET_MS = 300;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 13)) & 0xff;
  return b;
}

async function rig(driverOpts: ConstructorParameters<typeof ConsoleDriver>[1] = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vts-con-'));
  const path = join(dir, 'port.sock');
  const device = new ConsoleDevice({ ports: [{ console: true }, { name: 'flow', hostOpen: false }], queueSize: 64 });
  const link = new ConsolePortLink(1, parsePortSpec(`name=flow,socket=${path}`), silentLogger, () => {});
  await link.start({ cols: 80, rows: 24 });
  link.attach(device);
  const lb = await createLoopback(device, { queueSize: 64 });
  const con = new ConsoleDriver(lb.context, driverOpts);
  const p1 = await con.waitForPort(1);
  const client: Socket = connect(path);
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await p1.whenHostOpen();
  await p1.setOpen(true);
  const close = async (): Promise<void> => {
    client.destroy();
    con.detach();
    await lb.close();
    await link.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { device, con, p1, client, close, port: device.port(1)! };
}

describe('console socket port: flow control with bounded memory', () => {
  it('a client that stops reading stalls the guest writes (bounded), and gets every byte in order when it reads again', { timeout: 60_000 }, async () => {
    const { p1, client, close, port } = await rig();
    try {
      client.pause();
      const total = 8 * MiB;
      const data = pattern(total, 7);
      let done = 0;
      // The guest writes 64 KiB buffers one after the other (as a Linux writer blocked on a
      // full transmitq would).
      const writer = (async () => {
        for (let off = 0; off < total; off += 64 * 1024) {
          await p1.write(data.subarray(off, off + 64 * 1024));
          done = off + 64 * 1024;
        }
      })();
      // The socket and then the port fill up: the device stops reading the guest's buffers.
      await until(() => port.readableLength >= port.readableHighWaterMark, 'the port to fill');
      const stalledAt = done;
      await new Promise((r) => setTimeout(r, QUIET_MS));
      assert.equal(done, stalledAt, 'no guest write completes while the client does not read');
      assert.ok(done < total, `the guest is held back (${done} of ${total} bytes used)`);
      assert.ok(port.readableLength <= port.readableHighWaterMark + CONSOLE_TX_PIECE, `the port holds ${port.readableLength} bytes`);
      // The socket's user-space buffer stays small: what does not fit is still in guest memory.
      const held = total - done;
      assert.ok(held > 4 * MiB, `most of the data is still the guest's (${held} bytes)`);
      // Resume: everything arrives, in order.
      const got: Buffer[] = [];
      let n = 0;
      client.on('data', (b: Buffer) => {
        got.push(b);
        n += b.length;
      });
      client.resume();
      await writer;
      await until(() => n === total, 'every byte at the client');
      assert.ok(Buffer.concat(got).equals(Buffer.from(data)), 'the bytes arrive whole and in order');
    } finally {
      await close();
    }
  });

  it('a guest that posts no receive buffers pauses the socket (bounded); reading later gets every byte in order', { timeout: 60_000 }, async () => {
    // Two 4 KiB receive buffers, not re-posted while 8 KiB are unread: the guest stops taking data.
    const { p1, client, close, port } = await rig({ receiveBuffers: 2, receiveBufferSize: 4096, maxUnread: 8192 });
    try {
      const total = 4 * MiB;
      const data = pattern(total, 3);
      client.write(data);
      await until(() => port.pendingBytes > 0 && port.writableLength > 0, 'the port to wait for receive buffers');
      await new Promise((r) => setTimeout(r, QUIET_MS));
      // The back-end holds at most its Writable's highWaterMark and one socket read; the client
      // keeps the rest (its own writes are what it buffers) and the kernel socket buffers.
      assert.ok(port.writableLength <= port.writableHighWaterMark + 64 * 1024, `the port holds ${port.writableLength} bytes`);
      assert.ok(client.writableLength > MiB, `the client still holds ${client.writableLength} bytes: the back-end stopped reading`);
      const got = await p1.readBytes(total);
      assert.deepEqual(got, data);
      await until(() => client.writableLength === 0, 'the client to drain');
    } finally {
      await close();
    }
  });
});
