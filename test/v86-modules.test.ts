/**
 * The declarative table of guest drivers (test/support/v86-modules.ts) against the 686 kernel's
 * modules.dep, without a boot: every name resolves, and the `depends=` field of a module file
 * (how an out-of-tree module brings its in-tree dependencies) is read as modinfo would.
 * test/v86-devices.test.ts loads the whole table in a real boot.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveModules } from './support/guest.js';
import { ensureV86Deps, moduleDependsField } from './support/v86-guest.js';
import { V86_DEVICE_MODULES, V86_VIRTIO_PCI_MODULES, v86ModulesForDeviceId } from './support/v86-modules.js';
import { DeviceId } from '../src/spec/device-id.js';

const deps = ensureV86Deps();
const norm = (m: string): string => m.replace(/-/g, '_');

describe('v86: the guest driver table against the 686 kernel', { skip: deps.ok ? false : deps.reason }, () => {
  it('every module name of every device type resolves in modules.dep, after its dependencies', () => {
    if (!deps.ok) throw new Error(deps.reason);
    for (const [type, mods] of Object.entries(V86_DEVICE_MODULES)) {
      const paths = resolveModules(deps.kernel, [...V86_VIRTIO_PCI_MODULES, ...mods]).map(norm);
      for (const m of mods) {
        const at = paths.findIndex((p) => p.endsWith(`/${norm(m)}.ko`));
        assert.ok(at >= 0, `${type}: ${m}`);
        // The virtio core comes before any driver.
        assert.ok(paths.findIndex((p) => p.endsWith('/virtio.ko')) < at, `${type}: ${m} after virtio`);
      }
    }
    assert.deepEqual(v86ModulesForDeviceId(DeviceId.ENTROPY), ['virtio-rng']);
    assert.equal(v86ModulesForDeviceId(DeviceId.SOUND), undefined, 'no in-tree sound driver in 6.1');
  });

  it('reads the in-tree dependencies of a module file from its modinfo', () => {
    if (!deps.ok) throw new Error(deps.reason);
    const rng = readFileSync(join(deps.kernel.modulesDir, 'kernel/drivers/char/hw_random/virtio-rng.ko'));
    assert.deepEqual(moduleDependsField(rng), ['virtio', 'virtio_ring']);
    const gpu = readFileSync(join(deps.kernel.modulesDir, 'kernel/drivers/gpu/drm/virtio/virtio-gpu.ko'));
    assert.ok(moduleDependsField(gpu).includes('drm'));
    assert.deepEqual(moduleDependsField(new TextEncoder().encode('\0vermagic=x\0depends=\0')), []);
    assert.deepEqual(moduleDependsField(new TextEncoder().encode('no modinfo here')), []);
  });
});
