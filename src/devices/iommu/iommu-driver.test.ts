import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../../errors.js';
import { IommuF, IommuFaultFlag, IommuFaultReason, IommuRequest, IommuResvMem } from '../../spec/iommu.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import { IommuDevice } from './iommu-device.js';
import { IommuDriver, parseFault, parseProperties } from './iommu-driver.js';

const T = { timeout: 10_000 };
const refused = (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT;

/** Records the type and the reserved bytes of every request the device receives. */
function recording(device: IommuDevice): { type: number; bytes: Uint8Array }[] {
  const log: { type: number; bytes: Uint8Array }[] = [];
  const d = device as unknown as { req: Uint8Array; serve: (r: unknown) => number };
  const serve = d.serve.bind(device);
  d.serve = (r: unknown) => {
    const n = serve(r);
    log.push({ type: d.req[0]!, bytes: d.req.slice() });
    return n;
  };
  return log;
}

describe('IommuDriver', T, () => {
  it('driver/iommu/1 driver/iommu/6: the driver accepts INPUT_RANGE, DOMAIN_RANGE, PROBE and MAP_UNMAP (it sends MAP and UNMAP)', () => {
    const w = IommuDriver.type.wantedFeatures;
    for (const f of [IommuF.INPUT_RANGE, IommuF.DOMAIN_RANGE, IommuF.PROBE, IommuF.MAP_UNMAP]) assert.notEqual(w & f, 0n);
    const drv = new IommuDriver(createTestPair(new IommuDevice()).ctx);
    assert.deepEqual(drv.config.inputRange, [0, 2 ** 48 - 1]);
    assert.deepEqual(drv.config.domainRange, [1, 0xffff]);
  });

  it('driver/iommu/7 driver/iommu/8 driver/iommu/12 driver/iommu/16 driver/iommu/17 driver/iommu/21 driver/iommu/23 driver/iommu/30 driver/iommu/29: PROBE before the first ATTACH of an endpoint; reserved fields and undefined flags zero; properties of probe_size bytes', async () => {
    const device = new IommuDevice({ endpoints: [{ id: 1 }] });
    const pair = createTestPair(device);
    const drv = new IommuDriver(pair.ctx);
    await new Promise((r) => setImmediate(r));
    const log = recording(device);
    await drv.attach(1, 1);
    await drv.map(1, 0x1000, 0x1fff, 0x1000, { read: true });
    await drv.unmap(1, 0x1000, 0x1fff);
    await drv.detachEndpoint(1, 1);
    assert.deepEqual(log.map((l) => l.type), [IommuRequest.PROBE, IommuRequest.ATTACH, IommuRequest.MAP, IommuRequest.UNMAP, IommuRequest.DETACH]);
    for (const l of log) assert.deepEqual([...l.bytes.subarray(1, 4)], [0, 0, 0], 'head reserved');
    assert.ok(log[0]!.bytes.subarray(8, 72).every((b) => b === 0), 'PROBE reserved');
    assert.deepEqual([...log[1]!.bytes.subarray(12, 20)], [0, 0, 0, 0, 0, 0, 0, 0], 'ATTACH flags and reserved');
    assert.equal(new DataView(log[2]!.bytes.buffer).getUint32(32, true), 1, 'MAP flags: READ only');
    assert.deepEqual([...log[3]!.bytes.subarray(24, 28)], [0, 0, 0, 0], 'UNMAP reserved');
    assert.ok(log[4]!.bytes.subarray(12, 20).every((b) => b === 0), 'DETACH reserved');
    assert.equal(drv.config.probeSize, 512);
  });

  it('driver/iommu/9: a request the device uses without writing is a failure', async () => {
    const drv = new IommuDriver(createTestPair(new IommuDevice()).ctx);
    await assert.rejects(drv.request(new Uint8Array([0x33, 0, 0, 0])), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.REQUEST_FAILED);
  });

  it('driver/iommu/10 driver/iommu/11 driver/iommu/18 driver/iommu/22 driver/iommu/25 driver/iommu/26 driver/iommu/27 driver/iommu/28 driver/iommu/35: the driver refuses what it must not send', async () => {
    const device = new IommuDevice({ endpoints: [{ id: 1, reserved: [{ subtype: IommuResvMem.MSI, start: 0xfee0_0000, end: 0xfeef_ffff }] }, { id: 2 }] });
    const pair = createTestPair(device, { accept: ~IommuF.MMIO });
    const drv = new IommuDriver(pair.ctx);
    await assert.rejects(drv.attach(0, 1), refused, 'domain below domain_range');
    await assert.rejects(drv.attach(0x10000, 1), refused, 'domain above domain_range');
    await drv.attach(1, 1);
    await assert.rejects(drv.map(1, 0x1000, 2 ** 48, 0, { read: true }), refused, 'beyond input_range');
    await assert.rejects(drv.map(1, 0x1000, 0x1fff, 0, { read: true, mmio: true }), refused, 'MMIO not negotiated');
    await assert.rejects(drv.map(1, 0xfee0_0000, 0xfee0_0fff, 0, { write: true }), refused, 'an MSI region');
    await drv.map(1, 0x10000, 0x1ffff, 0, { read: true });
    await assert.rejects(drv.unmap(1, 0x11000, 0x1ffff), refused, 'starts inside a mapping');
    await assert.rejects(drv.unmap(1, 0x10000, 0x10fff), refused, 'ends inside a mapping');
    await drv.unmap(1, 0, 0x2ffff); // driver/iommu/25: spilling over unmapped addresses is allowed
    await drv.attach(2, 2, { bypass: true });
    await assert.rejects(drv.map(2, 0x1000, 0x1fff, 0, { read: true }), refused, 'MAP on a bypass domain');
    await assert.rejects(drv.unmap(2, 0x1000, 0x1fff), refused, 'UNMAP on a bypass domain');
  });

  it('driver/iommu/14 driver/iommu/15: ATTACH to an existing domain carries the bypass flag the domain has', async () => {
    const device = new IommuDevice({ endpoints: [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }] });
    const drv = new IommuDriver(createTestPair(device).ctx);
    await drv.attach(5, 1, { bypass: true });
    await drv.attach(5, 2); // no option given: the flag follows the domain
    await drv.attach(6, 3);
    await drv.attach(6, 4, { bypass: true }); // asked for bypass on a translated domain: not set
    assert.equal(device.translation.domains.get(5)!.endpoints.size, 2);
    assert.equal(device.translation.domains.get(6)!.endpoints.size, 2);
  });

  it('driver/iommu/31 driver/iommu/32 driver/iommu/33 driver/iommu/34 driver/iommu/36 driver/iommu/37: PROBE properties: unknown types and reserved bits skipped by their length, parsing goes on, unknown subtypes are RESERVED', () => {
    const p = new Uint8Array(128);
    const v = new DataView(p.buffer);
    let at = 0;
    const prop = (type: number, len: number, fill?: (o: number) => void) => {
      v.setUint16(at, type, true);
      v.setUint16(at + 2, len, true);
      fill?.(at + 4);
      at += 4 + len;
    };
    prop(0x7, 6); // unknown type, odd length
    prop(0x8001, 20); // RESV_MEM with a reserved bit: ignored
    prop(1, 20, (o) => {
      p[o] = 9; // unknown subtype
      p[o + 1] = 0xaa; // reserved byte
      v.setUint32(o + 4, 0x1000, true);
      v.setUint32(o + 12, 0x1fff, true);
    });
    prop(1, 24, (o) => {
      p[o] = IommuResvMem.MSI;
      v.setUint32(o + 4, 0x2000, true);
      v.setUint32(o + 12, 0x2fff, true);
    });
    assert.deepEqual(parseProperties(p), [
      { subtype: IommuResvMem.RESERVED, start: 0x1000, end: 0x1fff },
      { subtype: IommuResvMem.MSI, start: 0x2000, end: 0x2fff },
    ]);
  });

  it('driver/iommu/38 driver/iommu/39 driver/iommu/40 driver/iommu/41: fault reports: reserved not zero ignored, reserved1 and undefined flags ignored, unknown reasons UNKNOWN', () => {
    const f = new Uint8Array(24);
    const v = new DataView(f.buffer);
    f[0] = 9;
    v.setUint32(4, 0xff00 | IommuFaultFlag.READ | IommuFaultFlag.ADDRESS, true);
    v.setUint32(8, 3, true);
    v.setUint32(12, 0xdead, true);
    v.setUint32(16, 0x4000, true);
    assert.deepEqual(parseFault(f), { reason: IommuFaultReason.UNKNOWN, flags: IommuFaultFlag.READ | IommuFaultFlag.ADDRESS, endpoint: 3, address: 0x4000 });
    f[2] = 1;
    assert.equal(parseFault(f), null);
  });

  for (const packed of [false, true]) {
    it(`full stack (createLoopback, ${packed ? 'packed' : 'split'}): probe, attach, map, translate, unmap`, async () => {
      const device = new IommuDevice({ endpoints: [{ id: 1 }] });
      const lb = await createLoopback(device, { packed, queueSize: 32 });
      try {
        const drv = new IommuDriver(lb.context);
        await drv.attach(1, 1);
        await drv.map(1, 0x4000_0000, 0x4000_ffff, 0x10_0000, { read: true, write: true });
        assert.equal(device.translation.translate(1, 0x4000_0100, 4, 2).address, 0x10_0100);
        await drv.unmap(1, 0x4000_0000, 0x4000_ffff);
        assert.equal(device.translation.translate(1, 0x4000_0100, 4, 2).ok, false);
        drv.detach();
      } finally {
        await lb.close();
      }
    });
  }
});
