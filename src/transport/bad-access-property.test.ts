/**
 * Any sequence of accesses on a live device, on every transport (fast-check): the rig of
 * bad-access.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BlkDriver } from '../devices/blk/blk-driver.js';
import { DmaAllocator } from '../driver/dma-allocator.js';
import { VirtioDriver } from '../driver/virtio-driver.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { BadAccess } from './bus.js';
import { CcwCmd, CcwFlag, CcwStatus } from './ccw/constants.js';
import { TransportKind } from './loopback.js';
import { Msix, PCI_CAP_ID_MSIX, PciBar, PciCfg } from './pci/constants.js';
import { CCW_DATA, DMA_BASE, type Live, MEM, ccw, live, mmio, pci, stillWorks } from './bad-access-rig.js';

// ---- any access sequence, real core (property) --------------------------------------------------

/**
 * Arbitrary accesses after a real bring-up: register offsets near the defined ones and anywhere,
 * every width, values that are often meaningful (status bits, queue indexes, ring addresses in
 * guest memory), so the core and the device really act on them: queues enabled over garbage,
 * notifications that make the device walk garbage rings. Nothing may throw out of the bus call,
 * every refusal carries a known reason, and the device ends in a state a reset recovers from.
 */
const REASONS = new Set<string>(Object.values(BadAccess));
const value = fc.oneof(
  fc.integer({ min: 0, max: 0xff }),
  fc.constantFrom(0, 1, 0xffff, 0xffff_ffff, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK),
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.integer({ min: 0, max: MEM }).map((a) => a & ~0xf),
);

async function recoverable(l: Live): Promise<void> {
  for (const r of l.bad) assert.ok(REASONS.has(r.reason), `unknown reason ${r.reason}`);
  l.bad.length = 0;
  l.driver = null;
  // driver/content/10: a reset takes the device back, whatever the accesses did.
  l.driver = await VirtioDriver.init(l.pair.driver, {
    wantedFeatures: ((1n << 128n) - 1n) & ~F.RING_PACKED,
    dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE),
    queueSizes: [64],
  });
  l.blk = new BlkDriver(l.driver.context);
  await stillWorks(l, 99);
}

describe('bad accesses: any sequence on a live device never throws (property, real DeviceCore)', () => {
  const runs = { numRuns: 40 };
  const TP = { timeout: 120_000 };

  // Found by the property below: MSI-X switched off behind the driver's back moves the legacy
  // device config (4.1.4.10: 20 without MSI-X, 24 with); the driver re-programs MSI-X at reset.
  for (const kind of [TransportKind.PCI_MODERN, TransportKind.PCI_LEGACY]) {
    it(`${kind}: MSI-X turned off from outside is set up again by the driver's reset, and the device works`, TP, async () => {
      const l = await live(kind);
      const p = pci(l);
      let cap = p.configRead(PciCfg.CAPABILITIES_POINTER, 1) & 0xfc;
      for (let n = 0; n < 48 && cap !== 0 && p.configRead(cap, 1) !== PCI_CAP_ID_MSIX; n++) cap = p.configRead(cap + 1, 1) & 0xfc;
      assert.ok(cap !== 0, 'the function has an MSI-X capability');
      assert.ok((p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE) !== 0, 'the driver turned MSI-X on');
      p.configWrite(cap, 4, 0);
      assert.equal(p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE, 0, 'now off');
      await recoverable(l);
      assert.ok((p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE) !== 0, 'on again after the reset');
    });
  }

  for (const kind of [TransportKind.PCI_MODERN, TransportKind.PCI_LEGACY]) {
    it(`${kind}: BAR and configuration accesses`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              cfg: fc.boolean(),
              bar: fc.constantFrom(PciBar.LEGACY_IO, PciBar.MSIX, PciBar.MODERN, PciBar.MODERN, 3),
              off: fc.oneof(fc.integer({ min: 0, max: 0x40 }), fc.integer({ min: 0, max: 0x4010 }), fc.integer({ min: 0, max: 0x100 })),
              width: fc.constantFrom(0, 1, 2, 2, 4, 4, 8),
              value,
              write: fc.boolean(),
            }),
            { maxLength: 80 },
          ),
          async (ops) => {
            const l = await live(kind);
            const p = pci(l);
            for (const o of ops) {
              if (o.cfg) {
                if (o.write) p.configWrite(o.off & 0xff, o.width, o.value);
                else assert.equal(typeof p.configRead(o.off & 0xff, o.width), 'number');
              } else if (o.write) p.barWrite(o.bar, o.off, o.width, o.value);
              else assert.equal(typeof p.barRead(o.bar, o.off, o.width), 'number');
            }
            await Promise.resolve();
            // Memory and I/O decoding back on (a sequence may have cleared the command register).
            p.configWrite(PciCfg.COMMAND, 2, 7);
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }

  for (const kind of [TransportKind.MMIO, TransportKind.MMIO_LEGACY]) {
    it(`${kind}: register accesses`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              off: fc.oneof(fc.integer({ min: 0, max: 0x40 }).map((x) => x * 4), fc.integer({ min: 0, max: 0x180 })),
              width: fc.constantFrom(0, 1, 2, 4, 4, 4, 8),
              value,
              write: fc.boolean(),
            }),
            { maxLength: 80 },
          ),
          async (ops) => {
            const l = await live(kind);
            const m = mmio(l);
            for (const o of ops) {
              if (o.write) m.write(o.off, o.width, o.value);
              else assert.equal(typeof m.read(o.off, o.width), 'number');
            }
            await Promise.resolve();
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }

  for (const kind of [TransportKind.CCW_REV2, TransportKind.CCW_REV0]) {
    it(`${kind}: channel commands and notification hypercalls`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              cmd: fc.oneof(fc.constantFrom(...Object.values(CcwCmd)), fc.integer({ min: 0, max: 0xff })),
              count: fc.oneof(fc.constantFrom(0, 1, 4, 5, 8, 16, 25, 32), fc.integer({ min: 0, max: 0x2000 })),
              flags: fc.constantFrom(0, CcwFlag.SLI),
              bytes: fc.uint8Array({ minLength: 32, maxLength: 32 }),
              addr: fc.oneof(fc.constant(CCW_DATA), fc.integer({ min: 0, max: MEM + 0x1000 })),
              hypercall: fc.boolean(),
              q: fc.integer({ min: 0, max: 3 }),
            }),
            { maxLength: 60 },
          ),
          async (ops) => {
            const l = await live(kind);
            const c = ccw(l);
            for (const o of ops) {
              if (o.hypercall) {
                assert.equal(typeof c.hypercallNotify(0x0001_0000, o.q), 'number');
                continue;
              }
              l.mem.write(CCW_DATA, o.bytes);
              const r = c.execute(o.cmd, o.addr, o.count, o.flags);
              assert.ok(Object.values(CcwStatus).includes(r.status));
            }
            await Promise.resolve();
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }
});
