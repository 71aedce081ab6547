/**
 * Linux's virtio-rng driver (the i386 686 kernel under v86) reads /dev/hwrng from a virtio-ts
 * entropy device on v86's PCI bus, modern and, as a transitional device, through the legacy
 * driver. The device's source is a counted, seeded stream: the host checks the guest's bytes are
 * a stretch of what the device supplied, so they came from our device.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { CountedEntropy, V86_ENTROPY_APPEND, checkEntropy, ENTROPY_SCRIPT } from './support/v86-entropy-check.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;

async function runCase(legacy: boolean): Promise<void> {
  if (!deps.ok) throw new Error(deps.reason);
  const rng = new CountedEntropy(legacy ? 0x4e9 : 0x40d);
  const res = await runV86DeviceGuest({
    assets: deps,
    devices: [{ device: rng.device, transitional: legacy }],
    legacyDriver: legacy,
    append: V86_ENTROPY_APPEND,
    script: ENTROPY_SCRIPT + 'result ok 1\n',
    timeoutMs: RUN_TIMEOUT_MS,
  });
  const a = res.adapters[0]!;
  console.log(`v86 entropy ${legacy ? 'legacy' : 'modern'}: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ${rng.supplied} bytes in ${rng.fills} fills, ${a.irqRaises} interrupts`);
  assert.equal(res.results.get('ok'), '1', res.output);
  checkEntropy(res.results, rng);
  assert.equal(res.results.get('rng_version1'), legacy ? '0' : '1');
  assert.equal(a.transport.legacyActive, legacy);
  assert.ok(a.irqRaises > 0, 'the guest was told through INTx');
  assert.deepEqual(res.badAccesses, []);
}

describe('v86: Linux virtio-rng on a virtio-ts entropy device', { skip: deps.ok ? false : deps.reason }, () => {
  it('the modern driver reads /dev/hwrng: the bytes are those our device supplied', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    await runCase(false);
  });

  it('device/transport-pci/3: a transitional entropy device served to the legacy driver (force_legacy)', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    await runCase(true);
  });
});
