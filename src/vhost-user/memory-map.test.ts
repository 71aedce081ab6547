import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoopbackPlatform as FakePlatform } from './loopback-platform.js';
import { VhostMemoryMap } from './memory-map.js';
import { VhostUserError, VhostUserFault } from './codec.js';

describe('VhostMemoryMap', () => {
  it('maps size + mmap_offset from offset 0 and indexes from mmap_offset (two regions of one memfd)', () => {
    const p = new FakePlatform();
    const before = p.openFdCount();
    const fd = p.memfd('g', 0x20000);
    const view = p.mmap(fd, 0, 0x20000);
    view.bytes[0x10000] = 0x5a;
    view.bytes[0x0] = 0x11;
    const m = new VhostMemoryMap(p);
    // as microvm does: low RAM, then the rest of the same memfd at a non-zero offset
    m.setTable(5, [
      { guestAddr: 0, size: 0x10000, userAddr: 0x7000_0000, mmapOffset: 0 },
      { guestAddr: 0x100000, size: 0x10000, userAddr: 0x7001_0000, mmapOffset: 0x10000 },
    ], [p.dup(fd), p.dup(fd)]);
    const mem = m.memory!;
    assert.equal(mem.readU8(0), 0x11);
    assert.equal(mem.readU8(0x100000), 0x5a);
    assert.equal(m.userToGuest(0x7001_0010, 4), 0x100010);
    assert.equal(m.userToGuest(0x7002_0000, 1), -1);
    m.clear();
    view.unmap();
    p.close(fd);
    assert.equal(p.openFdCount(), before);
  });

  it('maps large regions in chunks', () => {
    const p = new FakePlatform();
    const fd = p.memfd('g', 0x6000);
    const view = p.mmap(fd, 0, 0x6000);
    for (let i = 0; i < 0x6000; i += 0x1000) view.bytes[i] = i >> 12;
    const m = new VhostMemoryMap(p, 0x2000);
    m.setTable(5, [{ guestAddr: 0x40000, size: 0x5000, userAddr: 0x9000_0000, mmapOffset: 0x1000 }], [p.dup(fd)]);
    const mem = m.memory!;
    assert.ok(mem.regionCount >= 3);
    for (let i = 0; i < 5; i++) assert.equal(mem.readU8(0x40000 + i * 0x1000), i + 1);
    m.clear();
    view.unmap();
    p.close(fd);
  });

  it('refuses overlapping guest or user ranges, keeps the old table, and closes the fds', () => {
    const p = new FakePlatform();
    const fd = p.memfd('g', 0x10000);
    const before = p.openFdCount();
    const m = new VhostMemoryMap(p);
    m.setTable(5, [{ guestAddr: 0, size: 0x1000, userAddr: 0, mmapOffset: 0 }], [p.dup(fd)]);
    const overlapGuest = [
      { guestAddr: 0, size: 0x2000, userAddr: 0x10000, mmapOffset: 0 },
      { guestAddr: 0x1000, size: 0x1000, userAddr: 0x20000, mmapOffset: 0 },
    ];
    assert.throws(
      () => m.setTable(5, overlapGuest, [p.dup(fd), p.dup(fd)]),
      (e: unknown) => e instanceof VhostUserError && e.reason === VhostUserFault.OVERLAP,
    );
    const overlapUser = [
      { guestAddr: 0, size: 0x1000, userAddr: 0x10000, mmapOffset: 0 },
      { guestAddr: 0x8000, size: 0x1000, userAddr: 0x10800, mmapOffset: 0 },
    ];
    assert.throws(() => m.setTable(5, overlapUser, [p.dup(fd), p.dup(fd)]), VhostUserError);
    assert.throws(() => m.setTable(5, [{ guestAddr: 0, size: 0, userAddr: 0, mmapOffset: 0 }], [p.dup(fd)]), VhostUserError);
    assert.equal(m.count, 1);
    assert.equal(p.openFdCount(), before);
    m.clear();
    p.close(fd);
  });
  it('ADD_MEM_REG of a region already there is counted, not refused (QEMU 7.2 multiqueue net adds each region once per queue pair); the last REM_MEM_REG unmaps it', () => {
    const p = new FakePlatform();
    const fd = p.memfd('g', 0x10000);
    const before = p.openFdCount();
    const m = new VhostMemoryMap(p);
    const region = { guestAddr: 0x100000, size: 0x10000, userAddr: 0x7f0000000000, mmapOffset: 0 };
    assert.equal(m.add(6, region, p.dup(fd), 8), true);
    m.memory!.writeU32(0x100010, 0xabcd);
    assert.equal(m.add(6, region, p.dup(fd), 8), false, 'the same region again: no new mapping');
    assert.equal(m.count, 1);
    assert.equal(p.openFdCount(), before, 'the duplicate fd is closed');
    // A different region overlapping it is still refused.
    assert.throws(() => m.add(6, { ...region, size: 0x8000 }, p.dup(fd), 8), (e: unknown) => e instanceof VhostUserError && e.reason === VhostUserFault.OVERLAP);
    assert.equal(m.remove(6, region), false, 'still held by the first ADD_MEM_REG');
    assert.equal(m.memory!.readU32(0x100010), 0xabcd, 'still mapped');
    assert.equal(m.remove(6, region), true);
    assert.equal(m.count, 0);
    assert.throws(() => m.remove(6, region), VhostUserError);
    m.clear();
    p.close(fd);
  });
});
