/**
 * Two virtio-ts devices on one v86 PCI bus at once, both driven by Linux in the same boot: a
 * transitional block device (the modern driver picks its modern interface) and a modern entropy
 * device. They sit on slots whose INTA# the firmware routes to the same IRQ, so completions of
 * both go through one shared level-triggered line (the adapters make it a wired OR).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CheckedDisk, BLK_SCRIPT, checkDisk } from './support/v86-blk-check.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { CountedEntropy, ENTROPY_SCRIPT, V86_ENTROPY_APPEND, checkEntropy } from './support/v86-entropy-check.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;
/** Slots 0x0d and 0x10: INTA# swizzles to PIRQB and PIRQA, both IRQ 10 in SeaBIOS's PIIX3 routing. */
const BLK_SLOT = 0x0d << 3;
const RNG_SLOT = 0x10 << 3;

describe('v86: two virtio-ts devices in one guest', { skip: deps.ok ? false : deps.reason }, () => {
  it('a block and an entropy device on a shared IRQ, both served in the same boot', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const disk = new CheckedDisk(0xb07d);
    const rng = new CountedEntropy(0xb07e);
    const res = await runV86DeviceGuest({
      assets: deps,
      devices: [
        { device: disk.device, transitional: true, pciId: BLK_SLOT },
        { device: rng.device, pciId: RNG_SLOT },
      ],
      append: V86_ENTROPY_APPEND,
      // Both devices busy at once: the disk is written while the guest reads the hwrng.
      script: `(${ENTROPY_SCRIPT}) > /tmp/rng.out 2>&1 &\n${BLK_SCRIPT}\nwait\ncat /tmp/rng.out\nresult ok 1\n`,
      extraFiles: [disk.patternFile],
      timeoutMs: RUN_TIMEOUT_MS,
    });
    const [blk, ent] = res.adapters;
    assert.ok(blk && ent);
    console.log(
      `v86 blk+entropy: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, IRQ ${blk.irqLine}/${ent.irqLine}, ` +
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
});
