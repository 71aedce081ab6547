/**
 * The NBD client against an in-process fake server (fake-nbd-server.ts): the handshake and each
 * way it can fail, structured and simple replies, every malformed reply (a hard disconnect, then
 * the request is resent), server errors, the in-flight bound, multi-connection, reconnection and
 * the retry time after which requests fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient, type NbdClientOptions } from './nbd-client.js';
import { NbdError, NbdFault } from './nbd-error.js';
import { FakeNbdServer, chunk, simple, type FakeAction, type FakeServerOptions } from './fake-nbd-server.js';
import { NbdCmd, NbdCmdFlag, NbdFlag, NbdReplyFlag, NbdReplyType } from './nbd-protocol.js';
import type { NbdAddress } from './nbd-uri.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virtio-ts-nbd-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer(opts: FakeServerOptions, fn: (srv: FakeNbdServer, addr: NbdAddress) => Promise<void>): Promise<void> {
  const path = join(dir, `s${n++}.sock`);
  const srv = new FakeNbdServer(path, opts);
  await srv.listen();
  try {
    await fn(srv, { kind: 'unix', path, exportName: opts.exportName ?? '' });
  } finally {
    await srv.stop();
  }
}

async function withClient(opts: FakeServerOptions, copts: NbdClientOptions, fn: (c: NbdClient, srv: FakeNbdServer) => Promise<void>): Promise<void> {
  await withServer(opts, async (srv, addr) => {
    const c = await NbdClient.connect(addr, copts);
    try {
      await fn(c, srv);
    } finally {
      await c.close();
    }
  });
}

function isNbd(fault: NbdFault, re?: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof NbdError && e.fault === fault && (re === undefined || re.test(e.message));
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Answers the first request that matches `when` with `action`, then behaves. */
function once(when: (cmd: number) => boolean, action: FakeAction): (r: { cmd: number }) => FakeAction {
  let done = false;
  return (r) => {
    if (done || !when(r.cmd)) return { kind: 'normal' };
    done = true;
    return action;
  };
}

describe('NBD handshake', { timeout: 30_000 }, () => {
  it('NBD_OPT_GO with NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE, structured replies acknowledged', async () => {
    await withClient({ exportName: 'disk', size: 3 << 20, blockSize: [512, 4096, 1 << 20] }, {}, async (c) => {
      assert.equal(c.info.size, 3 << 20);
      assert.equal(c.info.minBlock, 512);
      assert.equal(c.info.preferredBlock, 4096);
      assert.equal(c.info.maxBlock, 1 << 20);
      assert.equal(c.maxPayload, 1 << 20);
      assert.equal(c.info.structuredReplies, true);
      assert.equal(c.info.viaExportName, false);
      assert.ok(c.supports(NbdFlag.SEND_FLUSH));
    });
  });

  it('without block size information: 1 / 4096 / 32 MiB (proto.md defaults)', async () => {
    await withClient({}, {}, async (c) => {
      assert.deepEqual([c.info.minBlock, c.info.preferredBlock, c.info.maxBlock, c.maxPayload], [1, 4096, 32 << 20, 32 << 20]);
    });
  });

  it('a server without NBD_OPT_GO: falls back to NBD_OPT_EXPORT_NAME', async () => {
    await withClient({ go: false, exportName: 'x', size: 65536 }, {}, async (c) => {
      assert.equal(c.info.viaExportName, true);
      assert.equal(c.info.size, 65536);
      const b = new Uint8Array(512);
      await c.read(0, b, 0, 512);
    });
  });

  it('a missing export: NO_EXPORT through NBD_OPT_GO, and through EXPORT_NAME (the server hangs up)', async () => {
    await withServer({ exportName: 'a' }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect({ ...addr, exportName: 'b' }), isNbd(NbdFault.NO_EXPORT, /no export "b"/));
    });
    await withServer({ exportName: 'a', go: false }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect({ ...addr, exportName: 'b' }), isNbd(NbdFault.NO_EXPORT));
    });
  });

  it('no server at the address: UNREACHABLE; TLS required: TLS_REQUIRED; not fixed newstyle: HANDSHAKE', async () => {
    await assert.rejects(NbdClient.connect({ kind: 'unix', path: join(dir, 'none.sock'), exportName: '' }), isNbd(NbdFault.UNREACHABLE, /ENOENT/));
    await assert.rejects(NbdClient.connect({ kind: 'tcp', host: '127.0.0.1', port: 1, exportName: '' }), isNbd(NbdFault.UNREACHABLE, /ECONNREFUSED/));
    await withServer({ tlsRequired: true }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect(addr), isNbd(NbdFault.TLS_REQUIRED));
    });
    await withServer({ fixedNewstyle: false }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect(addr), isNbd(NbdFault.HANDSHAKE, /fixed newstyle/));
    });
  });

  it('an oversized option reply is refused before it is read (no unbounded buffering)', async () => {
    await withServer({ hugeOptionReply: 1 << 20 }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect(addr), isNbd(NbdFault.HANDSHAKE, /option reply of 1048576 bytes/));
    });
  });

  it('bad block size information is refused', async () => {
    await withServer({ blockSize: [3, 4096, 1 << 20] }, async (_s, addr) => {
      await assert.rejects(NbdClient.connect(addr), isNbd(NbdFault.HANDSHAKE, /minimum block size 3/));
    });
  });
});

describe('NBD transmission', { timeout: 30_000 }, () => {
  it('write then read back: structured reads in reverse-order chunks with holes; FLUSH, TRIM, WRITE_ZEROES', async () => {
    await withClient({ readChunk: 4096 }, {}, async (c, srv) => {
      const w = pattern(64 * 1024, 3);
      w.fill(0, 8192, 16384); // two zero chunks come back as holes
      await c.write(4096, w, 0, w.length);
      const r = new Uint8Array(w.length + 100).fill(0xee);
      await c.read(4096, r, 100, w.length);
      assert.deepEqual(r.subarray(100), w);
      assert.ok(r.subarray(0, 100).every((b) => b === 0xee), 'nothing written outside the destination range');
      await c.flush();
      await c.trim(0, 4096);
      await c.writeZeroes(8192, 4096, true);
      await c.writeZeroes(16384, 4096, false);
      const zs = srv.requests.filter((q) => q.cmd === NbdCmd.WRITE_ZEROES);
      assert.deepEqual(zs.map((q) => q.flags & NbdCmdFlag.NO_HOLE), [NbdCmdFlag.NO_HOLE, 0], 'NO_HOLE exactly when asked for');
      assert.deepEqual(srv.requests.map((q) => q.cmd), [NbdCmd.WRITE, NbdCmd.READ, NbdCmd.FLUSH, NbdCmd.TRIM, NbdCmd.WRITE_ZEROES, NbdCmd.WRITE_ZEROES]);
    });
  });

  it('simple replies when the server refuses structured replies', async () => {
    await withClient({ structured: false }, {}, async (c) => {
      assert.equal(c.info.structuredReplies, false);
      const w = pattern(10000, 9);
      await c.write(100, w, 0, w.length);
      const r = new Uint8Array(10000);
      await c.read(100, r, 0, r.length);
      assert.deepEqual(r, w);
    });
  });

  it('write with FUA sets NBD_CMD_FLAG_FUA when the export offers SEND_FUA', async () => {
    await withClient({}, {}, async (c, srv) => {
      await c.write(0, new Uint8Array(512), 0, 512, true);
      assert.equal(srv.requests[0]!.flags & NbdCmdFlag.FUA, NbdCmdFlag.FUA);
    });
  });

  for (const structured of [true, false]) {
    it(`a server error (EIO, ENOSPC) fails only that request, as SERVER_ERROR with the errno (${structured ? 'error chunk' : 'simple reply'})`, async () => {
      await withClient({}, {}, async (c, srv) => {
        srv.hook = once((cmd) => cmd === NbdCmd.WRITE, { kind: 'error', errno: 28, structured, message: 'disk full' });
        await assert.rejects(c.write(0, new Uint8Array(512), 0, 512), (e: unknown) => isNbd(NbdFault.SERVER_ERROR, /ENOSPC/)(e) && (e as NbdError).errno === 28 && (e as NbdError).code === 'BACKEND_IO');
        srv.hook = once((cmd) => cmd === NbdCmd.READ, { kind: 'error', errno: 5, structured });
        await assert.rejects(c.read(0, new Uint8Array(512), 0, 512), isNbd(NbdFault.SERVER_ERROR, /EIO/));
        await c.read(0, new Uint8Array(512), 0, 512);
        assert.equal(c.reconnects, 0, 'an error reply is not a broken connection');
      });
    });
  }

  // Malformed replies: a hard disconnect; the request goes out again on a new connection.
  const malformed: [string, (cookie: Buffer) => Buffer][] = [
    ['a bad magic', () => Buffer.alloc(16, 0x41)],
    ['an unknown cookie', () => simple(Buffer.from([0, 0, 0, 9, 0, 0, 0, 99]), 0)],
    ['an OFFSET_DATA chunk longer than the request', (ck) => chunk(ck, NbdReplyFlag.DONE, NbdReplyType.OFFSET_DATA, Buffer.alloc(8 + 1024))],
    ['an OFFSET_DATA chunk outside the request', (ck) => chunk(ck, NbdReplyFlag.DONE, NbdReplyType.OFFSET_DATA, Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 1, 0, 0]), Buffer.alloc(512)]))],
    ['an error chunk claiming 1 MiB', (ck) => chunk(ck, NbdReplyFlag.DONE, NbdReplyType.ERROR, Buffer.alloc(6), 1 << 20)],
    ['an error chunk whose message overruns it', (ck) => chunk(ck, NbdReplyFlag.DONE, NbdReplyType.ERROR, Buffer.from([0, 0, 0, 5, 0, 200]))],
    ['an unknown non-error chunk type', (ck) => chunk(ck, NbdReplyFlag.DONE, 77, Buffer.alloc(0))],
    ['NONE without DONE', (ck) => chunk(ck, 0, NbdReplyType.NONE, Buffer.alloc(0))],
    ['a simple reply to a read after structured replies', (ck) => simple(ck, 0)],
    ['a short reply, then the server hangs up', (ck) => simple(ck, 0).subarray(0, 9)],
  ];
  for (const [what, bytes] of malformed) {
    it(`${what}: hard disconnect, reconnect, the read is resent and succeeds`, async () => {
      await withClient({}, {}, async (c, srv) => {
        srv.data.set(pattern(512, 5), 0);
        let first = true;
        srv.hook = (r) => {
          if (!first || r.cmd !== NbdCmd.READ) return { kind: 'normal' };
          first = false;
          return { kind: 'raw', bytes: bytes(r.cookie), thenClose: what.startsWith('a short') };
        };
        const b = new Uint8Array(512);
        await c.read(0, b, 0, 512);
        assert.deepEqual(b, pattern(512, 5));
        assert.equal(c.reconnects, 1);
        assert.equal(srv.connections, 2);
      });
    });
  }

  it('a read that claims success without content for every byte fails (PROTOCOL), the connection stays', async () => {
    await withClient({}, {}, async (c, srv) => {
      srv.hook = once((cmd) => cmd === NbdCmd.READ, { kind: 'raw', bytes: Buffer.alloc(0) });
      // The hook above sends nothing; answer by hand with half the data then DONE.
      srv.hook = (r) => {
        if (r.cmd !== NbdCmd.READ || r.length !== 1024) return { kind: 'normal' };
        const p = Buffer.alloc(8 + 512);
        return { kind: 'raw', bytes: chunk(r.cookie, NbdReplyFlag.DONE, NbdReplyType.OFFSET_DATA, p) };
      };
      await assert.rejects(c.read(0, new Uint8Array(1024), 0, 1024), isNbd(NbdFault.PROTOCOL, /512 bytes of content/));
      await c.read(0, new Uint8Array(512), 0, 512);
      assert.equal(c.reconnects, 0);
    });
  });

  it('requests in flight never exceed maxInFlight; the rest wait and all complete', async () => {
    await withClient({ size: 4 << 20 }, { maxInFlight: 4 }, async (c, srv) => {
      srv.hook = () => ({ kind: 'hold' });
      const bufs = Array.from({ length: 100 }, () => new Uint8Array(4096));
      const all = Promise.all(bufs.map((b, i) => c.read(i * 4096, b, 0, 4096)));
      for (let i = 0; i < 1000 && srv.heldCount < 4; i++) await new Promise((r) => setImmediate(r));
      // More turns of the loop: nothing else may arrive while 4 are unanswered.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.equal(srv.heldCount, 4, 'exactly maxInFlight requests reached the server');
      srv.hook = () => ({ kind: 'normal' });
      srv.release();
      await all;
      assert.equal(srv.requests.length, 100);
    });
  });

  it('CAN_MULTI_CONN: requests spread over the connections asked for; without it one connection', async () => {
    await withClient({ size: 4 << 20 }, { connections: 3 }, async (c, srv) => {
      assert.equal(c.connectionCount, 3);
      await Promise.all(Array.from({ length: 60 }, (_, i) => c.write(i * 4096, pattern(4096, i), 0, 4096)));
      const per = new Set(srv.requests.map((r) => r.conn));
      assert.equal(per.size, 3, 'every connection carried requests');
      const r = new Uint8Array(4096);
      await c.read(59 * 4096, r, 0, 4096);
      assert.deepEqual(r, pattern(4096, 59));
    });
    await withClient({ flags: NbdFlag.HAS_FLAGS | NbdFlag.SEND_FLUSH }, { connections: 3 }, async (c) => {
      assert.equal(c.connectionCount, 1);
    });
  });

  it('the server drops every connection with requests in flight: they are resent after the reconnect, no acknowledged write lost', async () => {
    await withClient({ size: 4 << 20 }, { connections: 2 }, async (c, srv) => {
      // Acknowledged writes first.
      await Promise.all(Array.from({ length: 16 }, (_, i) => c.write(i * 4096, pattern(4096, i), 0, 4096)));
      srv.hook = () => ({ kind: 'hold' });
      const pending = Array.from({ length: 16 }, (_, i) => c.write((16 + i) * 4096, pattern(4096, 16 + i), 0, 4096));
      while (srv.heldCount < 16) await new Promise((r) => setImmediate(r));
      srv.hook = () => ({ kind: 'normal' });
      srv.dropAll();
      await Promise.all(pending);
      for (let i = 0; i < 200 && c.connectionCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(c.connectionCount, 2, 'both connections re-established');
      assert.equal(c.reconnects, 2);
      for (let i = 0; i < 32; i++) {
        const r = new Uint8Array(4096);
        await c.read(i * 4096, r, 0, 4096);
        assert.deepEqual(r, pattern(4096, i), `block ${i}`);
      }
    });
  });

  it('a server that stays away longer than retryTimeoutMs: the waiting requests fail with RETRY_EXPIRED (IOERR), then it recovers', async () => {
    await withServer({}, async (srv, addr) => {
      const c = await NbdClient.connect(addr, { retryTimeoutMs: 300 });
      try {
        await srv.stop();
        const t0 = Date.now();
        await assert.rejects(c.read(0, new Uint8Array(512), 0, 512), isNbd(NbdFault.RETRY_EXPIRED));
        const waited = Date.now() - t0;
        assert.ok(waited >= 250 && waited < 5000, `failed after the retry time, not before (${waited} ms)`);
        await assert.rejects(c.read(0, new Uint8Array(512), 0, 512), isNbd(NbdFault.RETRY_EXPIRED), 'fails at once while still away');
        await srv.listen();
        for (let i = 0; i < 200 && c.reconnects === 0; i++) await new Promise((r) => setTimeout(r, 20));
        await c.read(0, new Uint8Array(512), 0, 512);
      } finally {
        await c.close();
      }
    });
  });

  it('close() fails what is queued or in flight with CLOSED and sends NBD_CMD_DISC', async () => {
    await withClient({}, {}, async (c, srv) => {
      srv.hook = () => ({ kind: 'hold' });
      const p = c.read(0, new Uint8Array(512), 0, 512);
      while (srv.heldCount < 1) await new Promise((r) => setImmediate(r));
      await c.close();
      await assert.rejects(p, isNbd(NbdFault.CLOSED));
      await assert.rejects(c.read(0, new Uint8Array(512), 0, 512), isNbd(NbdFault.CLOSED));
    });
  });
});
