/**
 * One boot of the 686 kernel under v86 with two virtio-ts devices on the PCI bus and every guest
 * driver of the declarative table loaded (test/support/v86-modules.ts):
 *
 * - a transitional block device (the modern driver picks its modern interface) and a modern
 *   entropy device, both busy at once, on slots whose INTA# the firmware routes to the same IRQ,
 *   so completions of both go through one shared level-triggered line (the adapters make it a
 *   wired OR);
 * - the virtio PCI stack, every device type's drivers in the order the harness resolves from
 *   modules.dep (an insmod failing on a missing name or symbol fails the run), and one module
 *   passed as an out-of-tree file (the `extraModules` hook, dependencies read from its modinfo).
 *
 * Sharing the boot keeps the module-list check cheap: it costs the module loads, not a boot.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { CheckedDisk, BLK_SCRIPT, checkDisk } from './support/v86-blk-check.js';
import { runV86DeviceGuest, type V86DeviceGuestResult } from './support/v86-device-guest.js';
import { CountedEntropy, ENTROPY_SCRIPT, V86_ENTROPY_APPEND, checkEntropy } from './support/v86-entropy-check.js';
import { ensureV86Deps } from './support/v86-guest.js';
import { V86_VIRTIO_PCI_MODULES, allV86DeviceModules } from './support/v86-modules.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;
/** Slots 0x0d and 0x10: INTA# swizzles to PIRQB and PIRQA, both IRQ 10 in SeaBIOS's PIIX3 routing. */
const BLK_SLOT = 0x0d << 3;
const RNG_SLOT = 0x10 << 3;
/** An in-tree module no device type lists, loaded from its file as an out-of-tree one would be. */
const EXTRA_MODULE = 'kernel/drivers/virtio/virtio_mmio.ko';
const norm = (m: string): string => m.replace(/-/g, '_');

describe('v86: two virtio-ts devices and every guest driver of the table in one boot', { skip: deps.ok ? false : deps.reason }, () => {
  const disk = new CheckedDisk(0xb07d);
  const rng = new CountedEntropy(0xb07e);
  let run: Promise<V86DeviceGuestResult>;

  before(() => {
    if (!deps.ok) throw new Error(deps.reason);
    run = runV86DeviceGuest({
      assets: deps,
      devices: [
        { device: disk.device, transitional: true, pciId: BLK_SLOT },
        { device: rng.device, pciId: RNG_SLOT },
      ],
      modules: allV86DeviceModules(),
      extraModules: [{ path: join(deps.kernel.modulesDir, EXTRA_MODULE) }],
      memoryMiB: 128,
      append: V86_ENTROPY_APPEND,
      // Both devices busy at once: the disk is written while the guest reads the hwrng.
      script:
        `(${ENTROPY_SCRIPT}) > /tmp/rng.out 2>&1 &\n${BLK_SCRIPT}\nwait\ncat /tmp/rng.out\n` +
        `result loaded "$(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')"\nresult ok 1\n`,
      extraFiles: [disk.patternFile],
      timeoutMs: RUN_TIMEOUT_MS,
    });
    // Each test awaits it; this keeps an early rejection from being reported as unhandled.
    run.catch(() => undefined);
  });

  it('a block and an entropy device on a shared IRQ, both served in the same boot', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const res = await run;
    const [blk, ent] = res.adapters;
    assert.ok(blk && ent);
    console.log(
      `v86 blk+entropy+all modules: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, IRQ ${blk.irqLine}/${ent.irqLine}, ` +
        `${blk.irqRaises}+${ent.irqRaises} interrupts, ${rng.supplied} entropy bytes`,
    );
    assert.equal(res.results.get('ok'), '1', res.output);
    assert.deepEqual([blk.pciId, ent.pciId], [BLK_SLOT, RNG_SLOT]);
    assert.equal(blk.irqLine, ent.irqLine, 'both INTA# end on one IRQ');
    checkDisk(res.results, disk);
    checkEntropy(res.results, rng);
    assert.notEqual(res.results.get('blk_dev'), res.results.get('rng_dev'));
    assert.equal(res.results.get('version1'), '1');
    assert.equal(res.results.get('rng_version1'), '1');
    assert.equal(blk.transport.legacyActive, false, 'the modern driver uses the modern interface of a transitional device');
    assert.ok(blk.irqRaises > 0 && ent.irqRaises > 0);
    assert.deepEqual(res.badAccesses, []);
  });

  it('the virtio PCI stack, every device type\'s drivers and an out-of-tree module file are loaded', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const res = await run;
    const loaded = new Set((res.results.get('loaded') ?? '').trim().split(' '));
    const expected = [...V86_VIRTIO_PCI_MODULES, ...allV86DeviceModules(), 'virtio_mmio'].map(norm);
    assert.deepEqual(
      expected.filter((m) => !loaded.has(m)),
      [],
      `loaded: ${[...loaded].join(' ')}`,
    );
  });
});
