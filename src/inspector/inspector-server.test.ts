/**
 * The inspector's HTTP side over an in-process block device: the page and its files, the JSON
 * state with the rate history and the reset log (a NEEDS_RESET reason is logged once, when
 * first seen), the event stream, chain lookups (400 for a bad query, 404 for no such chain),
 * the Host check against DNS rebinding, and close() ending open streams.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { BlkDriver } from '../devices/blk/blk-driver.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { silentLogger } from '../log.js';
import { createLoopback } from '../testing/loopback.js';
import { type InspectorState, startInspector } from './inspector-server.js';
import { RateHistory } from './rate-history.js';
import { QueueStats } from '../device/queue-stats.js';

interface Reply {
  status: number;
  type: string;
  body: string;
}

function fetchPath(port: number, path: string, host = `127.0.0.1:${port}`): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The first Server-Sent Event of /api/events, and whether the stream then ends when the inspector closes. */
function firstEvent(port: number, onFirst: () => Promise<void>): Promise<{ data: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/events', timeout: 10_000 }, (res) => {
      let text = '';
      let data: string | null = null;
      res.setEncoding('utf8').on('data', (s: string) => {
        text += s;
        const m = /^data: (.*)$/m.exec(text);
        if (data === null && m) {
          data = m[1]!;
          onFirst().catch(reject);
        }
      });
      res.on('end', () => resolve({ data: data ?? '', ended: true }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('inspector server', () => {
  it('serves the page, the state with rates and the reset log, chains, events; refuses foreign hosts', async () => {
    const lb = await createLoopback(new BlkDevice(new MemoryBackend(64 * 1024)), { logger: silentLogger });
    const inspector = await startInspector([{ name: 'blk', stats: lb.core.stats, core: () => lb.core }], { host: '127.0.0.1', port: 0 }, { intervalMs: 50 });
    let closed = false;
    try {
      assert.match(inspector.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetchPath(inspector.port, '/');
      assert.equal(page.status, 200);
      assert.match(page.type, /text\/html/);
      assert.match(page.body, /<script type="module" src="inspector.js">/);
      for (const f of ['/inspector.js', '/inspector.css']) assert.equal((await fetchPath(inspector.port, f)).status, 200, f);
      assert.equal((await fetchPath(inspector.port, '/../package.json')).status, 404);
      assert.equal((await fetchPath(inspector.port, '/api/state', 'attacker.example:80')).status, 403, 'a foreign Host is refused');
      assert.equal((await fetchPath(inspector.port, '/api/state', `localhost:${inspector.port}`)).status, 200);

      const blk = new BlkDriver(lb.context);
      for (let i = 0; i < 8; i++) await blk.write(i, new Uint8Array(512));
      await new Promise((r) => setTimeout(r, 200)); // a few sampling periods
      lb.core.setNeedsReset('inspector test: a reason');
      const state = JSON.parse((await fetchPath(inspector.port, '/api/state')).body) as InspectorState;
      const again = JSON.parse((await fetchPath(inspector.port, '/api/state')).body) as InspectorState;
      assert.equal(state.devices[0]!.needsReset, 'inspector test: a reason');
      assert.equal(state.devices[0]!.queues[0]!.counters!.requests, 8);
      assert.deepEqual(
        again.resetLog.map((e) => [e.device, e.what]),
        [['blk', 'DEVICE_NEEDS_RESET: inspector test: a reason']],
        'logged once, when first seen',
      );
      const rates = state.rates['blk']!;
      assert.ok(rates.length >= 2, 'samples every period');
      assert.ok(rates.some((r) => r.requests > 0) && rates.every((r) => r.requests >= 0 && r.bytesRead >= 0), 'the writes show as a rate');

      assert.equal((await fetchPath(inspector.port, '/api/chain?device=blk&queue=0')).status, 400);
      assert.equal((await fetchPath(inspector.port, '/api/chain?device=nope&queue=0&id=1')).status, 400);
      assert.equal((await fetchPath(inspector.port, '/api/chain?device=blk&queue=0&id=1')).status, 404, 'nothing in flight');

      const ev = await firstEvent(inspector.port, async () => {
        closed = true;
        await inspector.close();
      });
      assert.equal((JSON.parse(ev.data) as InspectorState).devices[0]!.name, 'blk');
      assert.ok(ev.ended, 'close() ends the event stream');
    } finally {
      if (!closed) await inspector.close();
      await lb.close();
    }
  });

  it('the rate history keeps a fixed number of samples', () => {
    const stats = new QueueStats();
    const h = new RateHistory(4);
    for (let s = 0; s < 10; s++) {
      stats.popped(0, 100);
      h.sample(s * 1000, stats);
    }
    const r = h.rates();
    assert.equal(r.length, 3);
    assert.deepEqual(r.map((p) => [p.t, p.requests, p.bytesRead]), [
      [7000, 1, 100],
      [8000, 1, 100],
      [9000, 1, 100],
    ]);
  });
});
