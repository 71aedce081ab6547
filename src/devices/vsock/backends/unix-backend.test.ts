import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLoopback } from '../../../testing/loopback.js';
import { VsockDevice } from '../vsock-device.js';
import { VsockDriver } from '../vsock-driver.js';
import type { VsockSocket } from '../vsock-socket.js';
import { UnixVsockBackend } from './unix-backend.js';

const T = { timeout: 20_000 };

/** Reads from `s` until `n` bytes or the end. */
function readN(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const done = (): void => {
      s.off('data', onData);
      resolve(Buffer.concat(parts));
    };
    const onData = (d: Buffer): void => {
      parts.push(d);
      got += d.length;
      if (got >= n) done();
    };
    s.on('data', onData);
    s.once('end', done);
    s.once('error', reject);
  });
}

async function setup(): Promise<{ dir: string; uds: string; backend: UnixVsockBackend; vs: VsockDriver; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'vts-vsock-'));
  const uds = join(dir, 'v.sock');
  const backend = await UnixVsockBackend.listen({ udsPath: uds });
  const device = new VsockDevice({ guestCid: 3, backend });
  const lb = await createLoopback(device);
  const vs = new VsockDriver(lb.context);
  return {
    dir,
    uds,
    backend,
    vs,
    async close() {
      vs.detach();
      await lb.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('vsock Unix socket host side (hybrid model)', () => {
  it('a guest connecting to host port P reaches <uds>_P: bytes both ways, half-close both ways', T, async () => {
    const r = await setup();
    const host = createServer({ allowHalfOpen: true }, (s) => {
      // Echo everything back upper-cased, then end when the guest ends.
      s.on('data', (d: Buffer) => s.write(Buffer.from(d.toString('latin1').toUpperCase(), 'latin1')));
      s.on('end', () => s.end());
    });
    await new Promise<void>((res) => host.listen(`${r.uds}_1234`, res));
    try {
      await assert.rejects(r.vs.connect(4321), /refused/, 'nothing listens on <uds>_4321');
      const s = await r.vs.connect(1234);
      const text = 'hello from the guest '.repeat(5000); // 105000 bytes: beyond every credit window
      await s.send(new TextEncoder().encode(text));
      await s.shutdownSend();
      const back = new TextDecoder().decode(await s.readAll());
      assert.equal(back, text.toUpperCase());
      await s.close();
      assert.equal(s.closeReason, 'closed');
    } finally {
      await new Promise<void>((res) => host.close(() => res()));
      await r.close();
    }
  });

  it('a host program writing CONNECT <port> to <uds> reaches the guest port, reads OK <host port>, then the stream', T, async () => {
    const r = await setup();
    try {
      let accepted: VsockSocket | null = null;
      const got = new Promise<VsockSocket>((res) => r.vs.listen(5000, (g) => res((accepted = g))));
      const c = connect(r.uds);
      let seen = '';
      let onSeen = (): void => undefined;
      c.on('data', (d: Buffer) => {
        seen += d.toString('latin1');
        onSeen();
      });
      const until = (re: RegExp): Promise<RegExpExecArray> =>
        new Promise((res) => {
          const check = (): void => {
            const m = re.exec(seen);
            if (m) res(m);
          };
          onSeen = check;
          check();
        });
      c.write('CONNECT 5000\nearly bytes');
      const ok = await until(/^OK (\d+)\n/);
      const g = await got;
      assert.equal(Number(ok[1]), g.remotePort, 'the host port the guest sees');
      assert.equal(new TextDecoder().decode((await g.recv()) ?? new Uint8Array()), 'early bytes');
      await g.send(new TextEncoder().encode('from guest'));
      await until(/^OK \d+\nfrom guest$/);
      c.end();
      assert.equal(await g.readAll().then((b) => b.length), 0, 'the host end is the guest EOF');
      await g.close();
      assert.ok(accepted);
      c.destroy();
    } finally {
      await r.close();
    }
  });

  it('a bad CONNECT line, or a port the guest does not listen on, closes the host socket', T, async () => {
    const r = await setup();
    try {
      for (const line of ['HELLO\n', 'CONNECT x\n', 'CONNECT 7777\n', 'A'.repeat(100)]) {
        const c = connect(r.uds);
        c.write(line);
        const got = await readN(c, 1);
        assert.equal(got.length, 0, `${JSON.stringify(line)}: closed without an answer`);
        c.destroy();
      }
    } finally {
      await r.close();
    }
    assert.ok(!existsSync(r.uds), 'the main socket file is removed on close');
  });
});
