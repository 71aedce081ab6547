/**
 * The guest is untrusted: random transmit chains and random control commands never make the
 * device throw, hang or set DEVICE_NEEDS_RESET; every transmit chain is either forwarded or
 * counted as an error, and every command is answered OK or ERR.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import { Status } from '../../spec/status.js';
import { createLoopback } from '../../testing/loopback.js';
import { NetDevice } from './net-device.js';
import { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import { NetSwitch } from './switch.js';
import { xorshift32 } from '../../testing/xorshift.js';

/** A small deterministic generator of [0, 1) (xorshift32), so a failure is reproducible. */
function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x1_0000_0000;
}

describe('virtio-net device: random input', () => {
  it('300 random transmit chains and 300 random control commands: forwarded or counted, OK or ERR, never NEEDS_RESET', { timeout: 30_000 }, async () => {
    const device = new NetDevice({ queueSize: 64, queuePairs: 2 });
    const sw = new NetSwitch();
    device.attachTo(sw);
    let delivered = 0;
    const sink: NetPort = { name: 'sink', deliver: (p: NetPacket) => void (delivered += p.length > 0 ? 1 : 0) };
    sw.attach(sink);
    const lb = await createLoopback(device, { queueSize: 64 });
    const ctx = lb.context;
    const tx = new RequestQueue(ctx, 1);
    const ctrl = new RequestQueue(ctx, 4);
    const r = rng(0x5eed);
    const bytes = (n: number): { addr: number; len: number } => {
      const addr = ctx.dma.alloc(Math.max(1, n));
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
      // Mostly plausible headers: small flags and gso values, so some chains pass.
      if (n >= 2 && r() < 0.6) {
        b[0] = r() < 0.5 ? 0 : 1;
        b[1] = r() < 0.7 ? 0 : Math.floor(r() * 8);
      }
      ctx.memory.write(addr, b);
      return { addr, len: n };
    };
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(r() * 1600);
      const parts = len > 20 && r() < 0.3 ? [bytes(12), bytes(len - 12)] : [bytes(len)];
      await tx.submit(parts.filter((p) => p.len > 0).length > 0 ? parts.filter((p) => p.len > 0) : [bytes(1)]);
    }
    const s = device.stats;
    assert.equal(s.txFrames + s.txErrors, 300, 'every chain forwarded or counted');
    assert.ok(s.txFrames > 0 && s.txErrors > 0, `both outcomes seen (${s.txFrames} / ${s.txErrors})`);
    assert.equal(delivered, s.txFrames);
    for (let i = 0; i < 300; i++) {
      const n = 2 + Math.floor(r() * (r() < 0.9 ? 16 : 4000));
      const cmd = bytes(n);
      const b = new Uint8Array(2);
      b[0] = Math.floor(r() * 9);
      b[1] = Math.floor(r() * 4);
      ctx.memory.write(cmd.addr, b);
      const ack = ctx.dma.alloc(1);
      ctx.memory.fill(ack, 1, 0xee);
      const used = await ctrl.submit([cmd], [{ addr: ack, len: 1 }]);
      const a = new Uint8Array(1);
      ctx.memory.read(ack, a);
      assert.equal(used, 1);
      assert.ok(a[0] === 0 || a[0] === 1, `ack ${a[0]}`);
    }
    assert.equal(s.ctrlOk + s.ctrlErr, 300);
    assert.equal(lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await lb.close();
  });
});
