/**
 * Real-driver proof of the PCI transport at register level: Linux's own virtio_pci and
 * virtio_blk drivers (an i386 Debian kernel booted in the v86 emulator, in this process) drive a
 * virtio-ts block device on v86's PCI bus, once through the modern interface and once, as a
 * transitional device, through the legacy I/O BAR (virtio_pci loaded with `force_legacy=1`). The guest reads
 * what the host put on the disk, writes a pattern with dd, reads it back; the host checks the
 * RAM disk's bytes and the checksums the guest printed. Both go through the common v86 path
 * (test/support/v86-device-guest.ts).
 *
 * v86 is a JavaScript x86 emulator: a boot to the script takes 15 to 60 s here, so each case has
 * a generous but finite bound; a failure carries the console.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CheckedDisk, BLK_SCRIPT, checkDisk } from './support/v86-blk-check.js';
import { runV86DeviceGuest, type V86DeviceGuestResult } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;

async function runCase(legacy: boolean): Promise<{ res: V86DeviceGuestResult; disk: CheckedDisk }> {
  if (!deps.ok) throw new Error(deps.reason);
  const disk = new CheckedDisk(legacy ? 0x1e9acf : 0x0de2);
  const res = await runV86DeviceGuest({
    assets: deps,
    // The legacy driver of a transitional device (4.1.2.3): virtio_pci's force_legacy.
    devices: [{ device: disk.device, transitional: legacy }],
    legacyDriver: legacy,
    script: BLK_SCRIPT + 'result ok 1\n',
    extraFiles: [disk.patternFile],
    timeoutMs: RUN_TIMEOUT_MS,
  });
  const a = res.adapters[0]!;
  console.log(
    `v86 ${legacy ? 'legacy' : 'modern'}: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ` +
      `${a.irqRaises} interrupts, guest RAM rebound ${a.memoryRebinds} times (wasm memory growth)`,
  );
  return { res, disk };
}

describe('v86: Linux virtio_pci + virtio_blk on the virtio-ts PCI transport', { skip: deps.ok ? false : deps.reason }, () => {
  it('device/transport-pci/2 /13: the modern driver finds the device through its capabilities (in an I/O BAR), reads and writes the disk', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const { res, disk } = await runCase(false);
    assert.equal(res.results.get('ok'), '1', res.output);
    checkDisk(res.results, disk);
    assert.equal(res.results.get('version1'), '1', 'VERSION_1 negotiated');
    assert.equal(res.adapters[0]!.transport.legacyActive, false);
    assert.ok(res.adapters[0]!.irqRaises > 0, 'completions were signalled through INTx');
    assert.deepEqual(res.badAccesses, [], 'the driver made no access the transport refused');
  });

  it('device/transport-pci/3: a transitional device driven by the legacy driver (force_legacy) through the legacy I/O BAR', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const { res, disk } = await runCase(true);
    assert.equal(res.results.get('ok'), '1', res.output);
    checkDisk(res.results, disk);
    assert.equal(res.results.get('version1'), '0', 'no VERSION_1 on the legacy interface');
    assert.equal(res.adapters[0]!.transport.legacyActive, true);
    assert.ok(res.adapters[0]!.irqRaises > 0);
    assert.deepEqual(res.badAccesses, []);
  });
});
