/** native/memory-advice.c through its wrapper: pages of a shared memfd mapping given back. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryAdvice, adviseMemory } from './memory-advice.js';
import { loadNativePlatform } from './native-platform.js';
import { PlatformError } from './platform-error.js';

const PAGE = 4096;

describe('adviseMemory', () => {
  it('MADV_REMOVE frees whole pages of a memfd: both mappings read back zero, partial pages are kept', () => {
    const p = loadNativePlatform();
    const fd = p.memfd('vts-advice', 16 * PAGE);
    const a = p.mmap(fd, 0, 16 * PAGE);
    const b = p.mmap(fd, 0, 16 * PAGE);
    try {
      a.bytes.fill(0x5a);
      assert.equal(b.bytes[5 * PAGE], 0x5a, 'one memory, two mappings');
      // [PAGE + 100, 4 * PAGE + 10): only pages 2 and 3 are whole.
      assert.equal(adviseMemory(b.bytes, PAGE + 100, 3 * PAGE - 90, MemoryAdvice.REMOVE), 2 * PAGE);
      for (const m of [a, b]) {
        assert.ok(m.bytes.subarray(2 * PAGE, 4 * PAGE).every((x) => x === 0), 'released pages read zero');
        assert.ok(m.bytes.subarray(PAGE, 2 * PAGE).every((x) => x === 0x5a), 'the partial page before is kept');
        assert.ok(m.bytes.subarray(4 * PAGE, 5 * PAGE).every((x) => x === 0x5a), 'the partial page after is kept');
      }
      assert.equal(adviseMemory(b.bytes, 100, 200, MemoryAdvice.REMOVE), 0, 'no whole page: nothing');
      // MADV_DONTNEED on a shared mapping only drops this process's page table entries: the
      // memfd keeps the data (why vhost-user guest memory is released with MADV_REMOVE).
      assert.equal(adviseMemory(a.bytes, 8 * PAGE, PAGE, MemoryAdvice.DONTNEED), PAGE);
      assert.ok(a.bytes.subarray(8 * PAGE, 9 * PAGE).every((x) => x === 0x5a));
      assert.throws(() => adviseMemory(b.bytes, 0, 17 * PAGE, MemoryAdvice.REMOVE), /exceeds the buffer/);
    } finally {
      a.unmap();
      b.unmap();
      p.close(fd);
    }
  });

  it('an advice the mapping does not support is a PlatformError with the errno', () => {
    // A private anonymous area (a large JS buffer) cannot take MADV_REMOVE.
    const heap = new Uint8Array(64 * PAGE);
    assert.throws(
      () => adviseMemory(heap, 0, heap.length, MemoryAdvice.REMOVE),
      (e: unknown) => e instanceof PlatformError && /^E[A-Z]+$/.test(e.errno),
    );
  });
});
