/**
 * Real-driver proof of the PCI transport at register level: Linux's own virtio_pci and
 * virtio_blk drivers (an i386 Debian kernel booted in the v86 emulator, in this process) drive a
 * virtio-ts block device on v86's PCI bus, once through the modern interface and once, as a
 * transitional device, through the legacy I/O BAR (virtio_pci loaded with `force_legacy=1`). The guest reads
 * what the host put on the disk, writes a pattern with dd, reads it back; the host checks the
 * RAM disk's bytes and the checksums the guest printed.
 *
 * v86 is a JavaScript x86 emulator: a boot to the script takes about a minute here, so each case
 * has a generous but finite bound; the console is printed when a case fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { DeviceCore } from '../src/device/device-core.js';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import type { BadAccessReport } from '../src/transport/bus.js';
import { V86PciAdapter, v86GuestMemory } from '../src/transport/v86/v86-pci-adapter.js';
import { GuestError } from './support/guest.js';
import { ensureV86Deps, runV86Guest, type V86GuestResult } from './support/v86-guest.js';

const deps = ensureV86Deps();

const DISK_BYTES = 8 << 20;
/** Host-written bytes at the start of the disk, read by the guest. */
const HOST_BYTES = 16 << 10;
/** Where and what the guest writes. */
const WRITE_OFFSET = 1 << 20;
const WRITE_BYTES = 64 << 10;
const RUN_TIMEOUT_MS = 8 * 60_000;

function pattern(len: number, seed: number): Uint8Array {
  // xorshift32: deterministic, no two 4 KiB blocks alike.
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

const SCRIPT = `
wait_path /dev/vda 600 || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result dev "$dev"
result sectors "$(cat /sys/block/vda/size)"
result version1 "$(has_feature "$dev" 32 && echo 1 || echo 0)"
result driver "$(basename "$(readlink -f /sys/bus/virtio/devices/$dev/driver)")"
h=$(dd if=/dev/vda bs=4096 count=${HOST_BYTES / 4096} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
result host_md5 "$h"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${WRITE_OFFSET / 4096} oflag=direct conv=fsync 2>/dev/null || fail "write failed"
sync
echo 3 > /proc/sys/vm/drop_caches
r=$(dd if=/dev/vda bs=4096 skip=${WRITE_OFFSET / 4096} count=${WRITE_BYTES / 4096} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
result readback_md5 "$r"
result ok 1
`;

interface CaseOutcome {
  res: V86GuestResult;
  adapter: V86PciAdapter;
  backend: MemoryBackend;
  bad: BadAccessReport[];
}

async function runCase(legacy: boolean): Promise<CaseOutcome> {
  if (!deps.ok) throw new Error(deps.reason);
  const backend = new MemoryBackend(DISK_BYTES);
  backend.data.set(pattern(HOST_BYTES, 0x5eed));
  const written = pattern(WRITE_BYTES, legacy ? 0x1e9acf : 0x0de2);
  const bad: BadAccessReport[] = [];
  let adapter: V86PciAdapter | undefined;
  const t0 = performance.now();
  try {
    const res = await runV86Guest({
      assets: deps,
      modules: ['virtio_blk'],
      script: SCRIPT,
      extraFiles: [{ path: '/pattern.bin', data: written }],
      // The legacy driver of a transitional device (4.1.2.3): virtio_pci's force_legacy.
      ...(legacy ? { moduleParams: { virtio_pci: 'force_legacy=1' } } : {}),
      timeoutMs: RUN_TIMEOUT_MS,
      attach: (cpu) => {
        const memory = v86GuestMemory(cpu);
        const blk = new BlkDevice(backend, { queueSize: 128 });
        const a = new V86PciAdapter(
          cpu,
          (sink, mode) => new DeviceCore(blk, { memory, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian }),
          { memory, transitional: legacy, name: 'virtio-ts-blk', onBadAccess: (r) => bad.push(r) },
        );
        adapter = a;
        return () => a.detach();
      },
    });
    console.log(
      `v86 ${legacy ? 'legacy' : 'modern'}: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ` +
        `${adapter?.irqRaises ?? 0} interrupts, guest RAM rebound ${adapter?.memoryRebinds ?? 0} times (wasm memory growth)`,
    );
    assert.ok(adapter);
    return { res, adapter, backend, bad };
  } catch (e) {
    // The console tells what the guest saw; print it whatever the failure.
    const out = e instanceof GuestError ? e.output : '';
    console.log(`v86 ${legacy ? 'legacy' : 'modern'} failed after ${Math.round(performance.now() - t0)} ms; bad accesses: ${JSON.stringify(bad.slice(0, 20))}\n${out}`);
    throw e;
  }
}

function checkDisk(o: CaseOutcome, legacy: boolean): void {
  const { res, backend } = o;
  const written = pattern(WRITE_BYTES, legacy ? 0x1e9acf : 0x0de2);
  assert.equal(res.results.get('ok'), '1', res.output);
  assert.equal(res.results.get('driver'), 'virtio_blk');
  assert.equal(Number(res.results.get('sectors')), DISK_BYTES / 512, 'capacity from the device configuration');
  // Device -> guest: the guest's checksum of what the host put on the disk.
  assert.equal(res.results.get('host_md5'), md5(pattern(HOST_BYTES, 0x5eed)));
  // Guest -> device: the RAM disk holds exactly what the guest wrote, and nothing around it moved.
  assert.ok(Buffer.from(backend.data.subarray(WRITE_OFFSET, WRITE_OFFSET + WRITE_BYTES)).equals(written), 'the backend holds the written pattern');
  assert.ok(backend.data.subarray(WRITE_OFFSET - 4096, WRITE_OFFSET).every((b) => b === 0));
  assert.ok(backend.data.subarray(WRITE_OFFSET + WRITE_BYTES, WRITE_OFFSET + WRITE_BYTES + 4096).every((b) => b === 0));
  // Read back through the device after dropping the guest's caches.
  assert.equal(res.results.get('readback_md5'), md5(written));
}

describe('v86: Linux virtio_pci + virtio_blk on the virtio-ts PCI transport', { skip: deps.ok ? false : deps.reason }, () => {
  it('device/transport-pci/2 /13: the modern driver finds the device through its capabilities (in an I/O BAR), reads and writes the disk', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const o = await runCase(false);
    checkDisk(o, false);
    assert.equal(o.res.results.get('version1'), '1', 'VERSION_1 negotiated');
    assert.equal(o.adapter.transport.legacyActive, false);
    assert.ok(o.adapter.irqRaises > 0, 'completions were signalled through INTx');
  });

  it('device/transport-pci/3: a transitional device driven by the legacy driver (force_legacy) through the legacy I/O BAR', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const o = await runCase(true);
    checkDisk(o, true);
    assert.equal(o.res.results.get('version1'), '0', 'no VERSION_1 on the legacy interface');
    assert.equal(o.adapter.transport.legacyActive, true);
    assert.ok(o.adapter.irqRaises > 0);
  });
});
