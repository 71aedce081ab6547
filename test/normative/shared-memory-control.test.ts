/**
 * 2.10 shared memory regions carry no control of the device: for every device of the kit that
 * has regions (virtio-pmem with SHMEM_REGION, virtio-media's MMAP region), the guest filling the
 * whole region with arbitrary bytes while the device runs changes neither its status, its
 * configuration nor how it answers requests, which travel on the virtqueues.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTestPair } from '../../src/devices/blk/test-pair.js';
import { MediaDevice } from '../../src/devices/media/media-device.js';
import { MediaDriver } from '../../src/devices/media/media-driver.js';
import { PmemMemoryBackend } from '../../src/devices/pmem/pmem-backend.js';
import { PmemDevice } from '../../src/devices/pmem/pmem-device.js';
import { PmemDriver } from '../../src/devices/pmem/pmem-driver.js';
import type { VirtioDevice } from '../../src/device/types.js';

const T = { timeout: 20_000 };

function scribble(dev: VirtioDevice, seed: number): number {
  let s = seed >>> 0;
  let n = 0;
  for (const r of dev.sharedMemoryRegions ?? []) {
    assert.ok(r.memory, `region ${r.id} is served from this process`);
    for (let i = 0; i < r.memory.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      r.memory[i] = s >>> 24;
    }
    n++;
  }
  return n;
}

function configOf(pair: ReturnType<typeof createTestPair>, size: number): Uint8Array {
  return pair.ctx.readConfig(0, size).slice();
}

describe('2.10 shared memory regions', T, () => {
  it('device/shared-mem/1: arbitrary bytes in every region of pmem and media change no status, configuration or request handling', async () => {
    // virtio-pmem: region 0 is the persistent range itself; flushes go through the queue.
    const backend = new PmemMemoryBackend(64 << 10);
    const pmem = new PmemDevice(backend, { shmemRegion: true });
    const p = createTestPair(pmem, { memSize: 4 << 20 });
    const pdrv = new PmemDriver(p.ctx, { regions: [{ id: 0, base: 0x1_0000_0000, length: 64 << 10 }] });
    const pcfg = configOf(p, pmem.configSize);
    await pdrv.flush();
    assert.equal(scribble(pmem, 1), 1);
    assert.deepEqual(configOf(p, pmem.configSize), pcfg);
    await pdrv.flush();
    assert.equal(backend.flushes, 2);
    assert.deepEqual(p.resets, []);
    assert.equal(p.configChanges, 0);
    // virtio-media: region 0 holds MMAP buffers; sessions are opened and closed on the commandq.
    const media = new MediaDevice({ shmSize: 64 << 10 });
    const m = createTestPair(media, { memSize: 8 << 20 });
    const mdrv = new MediaDriver(m.ctx);
    const mcfg = configOf(m, media.configSize);
    const before = await mdrv.open();
    await mdrv.close(before);
    assert.equal(scribble(media, 2), 1);
    assert.deepEqual(configOf(m, media.configSize), mcfg);
    const after = await mdrv.open();
    await mdrv.close(after);
    assert.deepEqual(m.resets, []);
    assert.equal(m.configChanges, 0);
  });
});
