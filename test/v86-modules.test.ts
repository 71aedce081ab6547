/**
 * The declarative table of guest drivers (test/support/v86-modules.ts) against the real 686
 * kernel: one boot, no device, that loads every module of every device type in the order the
 * harness resolves from modules.dep (an insmod failing on a missing symbol or name fails the run),
 * plus one module passed as an out-of-tree file (the `extraModules` hook, its dependencies read
 * from its modinfo). The guest lists /proc/modules; the host checks each module is there.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveModules } from './support/guest.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps, moduleDependsField } from './support/v86-guest.js';
import { V86_DEVICE_MODULES, V86_VIRTIO_PCI_MODULES, allV86DeviceModules } from './support/v86-modules.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;
const norm = (m: string): string => m.replace(/-/g, '_');

describe('v86: the guest driver table loads into the 686 kernel', { skip: deps.ok ? false : deps.reason }, () => {
  it('every module name resolves in modules.dep, and modinfo gives an out-of-tree module its dependencies', () => {
    if (!deps.ok) throw new Error(deps.reason);
    for (const [type, mods] of Object.entries(V86_DEVICE_MODULES)) {
      const paths = resolveModules(deps.kernel, mods);
      for (const m of mods) assert.ok(paths.some((p) => norm(p).endsWith(`/${norm(m)}.ko`)), `${type}: ${m}`);
    }
    const rng = readFileSync(join(deps.kernel.modulesDir, 'kernel/drivers/char/hw_random/virtio-rng.ko'));
    assert.deepEqual(moduleDependsField(rng), ['virtio', 'virtio_ring']);
    assert.deepEqual(moduleDependsField(new TextEncoder().encode('\0vermagic=x\0depends=\0')), []);
  });

  it('one boot loads the virtio PCI stack, every device type\'s drivers, and an out-of-tree file', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const res = await runV86DeviceGuest({
      assets: deps,
      devices: [],
      modules: allV86DeviceModules(),
      // Stands in for a module built out of tree (virtio_snd, i2c-virtio): loaded from a file.
      extraModules: [{ path: join(deps.kernel.modulesDir, 'kernel/drivers/virtio/virtio_mmio.ko') }],
      memoryMiB: 128,
      script: `result loaded "$(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')"\nresult ok 1\n`,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    console.log(`v86 module list: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms`);
    assert.equal(res.results.get('ok'), '1', res.output);
    const loaded = new Set((res.results.get('loaded') ?? '').trim().split(' '));
    const missing = [...V86_VIRTIO_PCI_MODULES, ...allV86DeviceModules(), 'virtio_mmio'].map(norm).filter((m) => !loaded.has(m));
    assert.deepEqual(missing, [], `loaded: ${[...loaded].join(' ')}`);
  });
});
