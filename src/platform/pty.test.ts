import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PtyIo, PtyMaster } from './pty.js';

describe('platform: pseudo-terminals (native/pty.c)', () => {
  it('opens a master, reads and writes it without blocking, sees the terminal opened and hung up, sets and reads its size', () => {
    const m = PtyMaster.open();
    try {
      assert.match(m.path, /^\/dev\/pts\/\d+$/);
      const buf = new Uint8Array(64);
      assert.equal(m.read(buf), PtyIo.WOULD_BLOCK, 'nothing to read, no block');
      const s = openSync(m.path, constants.O_RDWR | constants.O_NOCTTY);
      assert.equal(m.peerOpen(), true);
      writeSync(s, 'from the terminal\n');
      const n = m.read(buf);
      assert.ok(n > 0);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n)), 'from the terminal\n');
      assert.equal(m.write(new TextEncoder().encode('to the terminal\n')), 16);
      const got = Buffer.alloc(64);
      const r = readSync(s, got);
      assert.equal(got.toString('utf8', 0, r), 'to the terminal\n');
      m.setSize(132, 43);
      assert.deepEqual(m.size(), { cols: 132, rows: 43 });
      closeSync(s);
      assert.equal(m.peerOpen(), false, 'hung up once the terminal is closed');
      assert.equal(m.read(buf), PtyIo.PEER_CLOSED);
    } finally {
      m.close();
    }
    m.close(); // idempotent
  });
});
