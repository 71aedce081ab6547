import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceId } from '../../spec/device-id.js';
import {
  IOMMU_ATTACH_F_BYPASS,
  IommuConfig,
  IommuF,
  IommuFault,
  IommuFaultFlag,
  IommuFaultReason,
  IommuMapFlag,
  IommuProbeType,
  IommuRequest,
  IommuResvMem,
  IommuStatus,
} from '../../spec/iommu.js';
import { createTestPair } from '../blk/test-pair.js';
import { IOMMU_INPUT_END, IOMMU_PAGE_SIZE_MASK, IommuDevice, type IommuDeviceOptions } from './iommu-device.js';
import { IommuDriver } from './iommu-driver.js';

const T = { timeout: 10_000 };
const U32 = 0x1_0000_0000;

function setup(opts: IommuDeviceOptions = {}, accept = ~0n) {
  const device = new IommuDevice({
    endpoints: [{ id: 1 }, { id: 2 }, { id: 3, exclusive: true }, { id: 4, reserved: [{ subtype: IommuResvMem.MSI, start: 0x800_0000, end: 0x80f_ffff }, { subtype: IommuResvMem.RESERVED, start: 0, end: 0xfff }] }],
    ...opts,
  });
  const pair = createTestPair(device, { accept });
  const drv = new IommuDriver(pair.ctx, { eventBuffers: 4 });
  return { device, pair, drv };
}

/** Raw request bytes: type, 3 reserved bytes, then le32/le64 fields. */
function raw(type: number, fields: readonly (readonly [number, number])[], size: number, headReserved = 0): Uint8Array {
  const b = new Uint8Array(4 + size);
  b[0] = type;
  b[1] = headReserved;
  const v = new DataView(b.buffer);
  let at = 4;
  for (const [w, value] of fields) {
    if (w === 4) v.setUint32(at, value >>> 0, true);
    else {
      v.setUint32(at, value >>> 0, true);
      v.setUint32(at + 4, Math.floor(value / U32) >>> 0, true);
    }
    at += w;
  }
  return b;
}

const attachReq = (domain: number, ep: number, flags = 0, reserved = 0) => raw(IommuRequest.ATTACH, [[4, domain], [4, ep], [4, flags], [4, reserved]], 16);
const detachReq = (domain: number, ep: number, reserved = 0) => raw(IommuRequest.DETACH, [[4, domain], [4, ep], [4, reserved], [4, reserved]], 16);
const mapReq = (domain: number, vs: number, ve: number, ps: number, flags: number) => raw(IommuRequest.MAP, [[4, domain], [8, vs], [8, ve], [8, ps], [4, flags]], 32);
const unmapReq = (domain: number, vs: number, ve: number, reserved = 0) => raw(IommuRequest.UNMAP, [[4, domain], [8, vs], [8, ve], [4, reserved]], 24);

describe('IommuDevice', T, () => {
  it('device/iommu/1 device/iommu/2 device/iommu/3 device/iommu/4 device/iommu/5: MAP_UNMAP offered, BYPASS not (BYPASS_CONFIG instead), page_size_mask with 4 KiB and 2 MiB', () => {
    const d = new IommuDevice();
    assert.equal(d.deviceId, DeviceId.IOMMU);
    assert.notEqual(d.offeredFeatures & IommuF.MAP_UNMAP, 0n);
    assert.equal(d.offeredFeatures & IommuF.BYPASS, 0n);
    assert.notEqual(d.offeredFeatures & IommuF.BYPASS_CONFIG, 0n);
    const c = new Uint8Array(IommuConfig.SIZE);
    d.readConfig(0, c, d.offeredFeatures, true);
    const v = new DataView(c.buffer);
    assert.equal(v.getUint32(0, true), IOMMU_PAGE_SIZE_MASK);
    assert.equal(IOMMU_PAGE_SIZE_MASK, 0x1000 | 0x20_0000);
    assert.equal(v.getUint32(16, true) + v.getUint32(20, true) * U32, IOMMU_INPUT_END);
    assert.deepEqual([v.getUint32(24, true), v.getUint32(28, true), v.getUint32(32, true), c[36]], [1, 0xffff, 512, 0]);
  });

  it('device/iommu/6 device/iommu/7 device/iommu/8 driver/iommu/2 driver/iommu/3 driver/iommu/4 driver/iommu/5: bypass starts at its initial value, takes bit 0 of a write, survives device reset, returns to its initial value on system reset; other fields are not writable', () => {
    const { device, drv, pair } = setup({ bypass: 1 });
    assert.equal(drv.bypass, 1);
    drv.setBypass(false);
    assert.equal(device.bypassField, 0);
    pair.ctx.writeConfig(36, Uint8Array.of(0xfe)); // a bad driver: bits 1-7 set, bit 0 clear
    assert.equal(device.bypassField, 0);
    pair.ctx.writeConfig(36, Uint8Array.of(0x03));
    assert.equal(pair.ctx.readConfig(36, 1)[0], 1, 'the device presents 0 or 1 only');
    pair.ctx.writeConfig(32, Uint8Array.of(9, 9, 9, 9));
    assert.equal(new DataView(pair.ctx.readConfig(32, 4).buffer).getUint32(0, true), 512, 'probe_size is read-only');
    drv.setBypass(false);
    device.reset();
    assert.equal(device.bypassField, 0, 'not changed by a device reset');
    device.systemReset();
    assert.equal(device.bypassField, 1);
    // Without BYPASS_CONFIG negotiated the driver does not write it, and the device ignores writes.
    const other = setup({}, ~IommuF.BYPASS_CONFIG);
    assert.throws(() => other.drv.setBypass(true));
    other.pair.ctx.writeConfig(36, Uint8Array.of(1));
    assert.equal(other.device.bypassField, 0);
  });

  it('device/iommu/9 device/iommu/10 device/iommu/11: OK on success, the tail reserved zero, head reserved ignored; an unknown type is not answered (used length 0)', async () => {
    const { drv, pair } = setup();
    const r = await drv.request(raw(IommuRequest.ATTACH, [[4, 1], [4, 1], [4, 0], [4, 0]], 16, 0x5a));
    assert.equal(r.status, IommuStatus.OK);
    await assert.rejects(drv.request(raw(0x42, [], 16)), /did not answer/);
    // Tail bytes: status, then three zero bytes even over a dirty buffer.
    const a = pair.ctx.dma.alloc(64);
    const b = attachReq(1, 2);
    pair.memory.write(a, b);
    pair.memory.fill(a + 20, 4, 0xff);
    const used = await new Promise<number>((resolve) => {
      const q = pair.ctx.queue(0);
      pair.ctx.onUsed(0, () => {
        q.takeUsed();
        resolve(q.lastUsedLen);
      });
      q.add([{ addr: a, len: 20 }], [{ addr: a + 20, len: 4 }], 99);
      pair.ctx.kick(0);
    });
    assert.equal(used, 4);
    assert.deepEqual([...pair.memory.slice(a + 20, 4)], [IommuStatus.OK, 0, 0, 0]);
  });

  it('device/iommu/13 device/iommu/14 device/iommu/15 device/iommu/24: ATTACH: reserved not zero or unknown flags INVAL, unknown endpoint NOENT, else attached', async () => {
    const { drv, device } = setup();
    assert.equal((await drv.request(attachReq(1, 1, 0, 1))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(attachReq(1, 1, 0x2))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(attachReq(1, 99))).status, IommuStatus.NOENT);
    assert.equal((await drv.request(attachReq(0x10000, 1))).status, IommuStatus.RANGE, 'outside domain_range');
    assert.equal((await drv.request(attachReq(1, 1))).status, IommuStatus.OK);
    assert.equal(device.translation.attached.get(1)?.id, 1);
    // Without BYPASS_CONFIG the bypass flag is unknown: INVAL.
    const other = setup({}, ~IommuF.BYPASS_CONFIG);
    assert.equal((await other.drv.request(attachReq(1, 1, IOMMU_ATTACH_F_BYPASS))).status, IommuStatus.INVAL);
  });

  it('device/iommu/16 device/iommu/17 device/iommu/22 device/iommu/23: endpoints share a domain when compatible; an exclusive endpoint or reserved regions over the domain\'s mappings: UNSUPP', async () => {
    const { drv } = setup();
    assert.equal((await drv.request(attachReq(5, 1))).status, IommuStatus.OK);
    assert.equal((await drv.request(attachReq(5, 2))).status, IommuStatus.OK);
    assert.equal((await drv.request(attachReq(5, 3))).status, IommuStatus.UNSUPP);
    assert.equal((await drv.request(mapReq(5, 0x800_0000, 0x800_ffff, 0x10_0000, IommuMapFlag.READ))).status, IommuStatus.OK);
    assert.equal((await drv.request(attachReq(5, 4))).status, IommuStatus.UNSUPP, 'endpoint 4 has an MSI region where the domain maps');
    assert.equal((await drv.request(attachReq(6, 4))).status, IommuStatus.OK);
  });

  it('device/iommu/18 device/iommu/19 device/iommu/20 device/iommu/21: ATTACH to an existing domain with an inconsistent bypass flag INVAL; attached elsewhere: moved (as DETACH then ATTACH)', async () => {
    const { drv, device } = setup();
    const t = device.translation;
    assert.equal((await drv.request(attachReq(7, 1, IOMMU_ATTACH_F_BYPASS))).status, IommuStatus.OK);
    assert.equal((await drv.request(attachReq(7, 2))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(attachReq(8, 2))).status, IommuStatus.OK);
    assert.equal((await drv.request(attachReq(8, 1))).status, IommuStatus.OK);
    assert.equal(t.attached.get(1)?.id, 8);
    assert.equal(t.domains.has(7), false, 'domain 7 lost its last endpoint');
    assert.deepEqual([...t.domains.get(8)!.endpoints].sort(), [1, 2]);
  });

  it('device/iommu/25 device/iommu/26 device/iommu/27 device/iommu/28: DETACH ignores reserved; unknown endpoint NOENT; wrong domain INVAL; detached: no access', async () => {
    const { drv, device } = setup();
    await drv.attach(9, 1);
    await drv.map(9, 0x1000, 0x1fff, 0x3000, { read: true });
    assert.equal((await drv.request(detachReq(9, 99))).status, IommuStatus.NOENT);
    assert.equal((await drv.request(detachReq(10, 1))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(detachReq(9, 2))).status, IommuStatus.INVAL);
    assert.equal(device.translation.translate(1, 0x1000, 4, IommuMapFlag.READ).address, 0x3000);
    assert.equal((await drv.request(detachReq(9, 1, 0xdead))).status, IommuStatus.OK);
    assert.equal(device.translation.translate(1, 0x1000, 4, IommuMapFlag.READ).ok, false);
  });

  it('device/iommu/29 device/iommu/30 device/iommu/31 device/iommu/32 device/iommu/33 device/iommu/53: MAP refuses misaligned (RANGE), overlapping (INVAL), unknown flags (INVAL), missing (NOENT) or bypass domains (INVAL), reserved regions (INVAL)', async () => {
    const { drv } = setup({}, ~IommuF.MMIO);
    await drv.attach(1, 1);
    await drv.attach(2, 2, { bypass: true });
    await drv.attach(3, 4);
    const R = IommuMapFlag.READ;
    assert.equal((await drv.request(mapReq(1, 0x1001, 0x1fff, 0, R))).status, IommuStatus.RANGE);
    assert.equal((await drv.request(mapReq(1, 0x1000, 0x1fff, 0x10, R))).status, IommuStatus.RANGE);
    assert.equal((await drv.request(mapReq(1, 0x1000, 0x1ffe, 0, R))).status, IommuStatus.RANGE);
    assert.equal((await drv.request(mapReq(1, 0x1000, 2 ** 49 - 1, 0, R))).status, IommuStatus.RANGE, 'beyond input_range');
    assert.equal((await drv.request(mapReq(1, 0x1000, 0x2fff, 0, R))).status, IommuStatus.OK);
    assert.equal((await drv.request(mapReq(1, 0x2000, 0x3fff, 0, R))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(mapReq(1, 0x8000, 0x8fff, 0, IommuMapFlag.MMIO))).status, IommuStatus.INVAL, 'MMIO not negotiated');
    assert.equal((await drv.request(mapReq(1, 0x8000, 0x8fff, 0, 0x10))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(mapReq(44, 0x8000, 0x8fff, 0, R))).status, IommuStatus.NOENT);
    assert.equal((await drv.request(mapReq(2, 0x8000, 0x8fff, 0, R))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(mapReq(3, 0x800_0000, 0x800_0fff, 0, R))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(mapReq(3, 0x1000, 0x1fff, 0, R))).status, IommuStatus.OK);
  });

  it('device/iommu/34 device/iommu/35: writes need MAP_F_WRITE; a write-only mapping is not readable either (this device allows exactly what the flags say)', async () => {
    const { drv, device } = setup();
    await drv.attach(1, 1);
    await drv.map(1, 0x1000, 0x1fff, 0x5000, { read: true });
    await drv.map(1, 0x2000, 0x2fff, 0x6000, { write: true });
    const t = device.translation;
    assert.equal(t.translate(1, 0x1000, 8, IommuMapFlag.WRITE).ok, false);
    assert.equal(t.translate(1, 0x1000, 8, IommuMapFlag.READ).address, 0x5000);
    assert.equal(t.translate(1, 0x2000, 8, IommuMapFlag.WRITE).address, 0x6000);
    assert.equal(t.translate(1, 0x2000, 8, IommuMapFlag.READ).ok, false);
    assert.equal(t.translate(1, 0x1ff8, 16, IommuMapFlag.READ).ok, false, 'an access running past the mapping');
  });

  it('device/iommu/36 device/iommu/37 device/iommu/38 device/iommu/39 device/iommu/40: UNMAP statuses and the spec\'s seven examples', async () => {
    const { drv, device } = setup();
    await drv.attach(1, 1);
    await drv.attach(2, 2, { bypass: true });
    const P = 0x1000;
    const d = () => device.translation.domains.get(1)!.mappings.map((m) => [m.virtStart / P, (m.virtEnd + 1) / P - 1]);
    const map = async (a: number, b: number) => assert.equal((await drv.request(mapReq(1, a * P, (b + 1) * P - 1, 0, IommuMapFlag.READ))).status, IommuStatus.OK);
    const unmap = async (a: number, b: number) => (await drv.request(unmapReq(1, a * P, (b + 1) * P - 1))).status;
    assert.equal(await unmap(0, 4), IommuStatus.OK); // (1)
    await map(0, 9);
    assert.equal(await unmap(0, 9), IommuStatus.OK); // (2)
    assert.deepEqual(d(), []);
    await map(0, 4);
    await map(5, 9);
    assert.equal(await unmap(0, 9), IommuStatus.OK); // (3)
    assert.deepEqual(d(), []);
    await map(0, 9);
    assert.equal(await unmap(0, 4), IommuStatus.RANGE); // (4)
    assert.deepEqual(d(), [[0, 9]]);
    assert.equal(await unmap(0, 9), IommuStatus.OK);
    await map(0, 4);
    await map(5, 9);
    assert.equal(await unmap(0, 4), IommuStatus.OK); // (5)
    assert.deepEqual(d(), [[5, 9]]);
    assert.equal(await unmap(5, 9), IommuStatus.OK);
    await map(0, 4);
    assert.equal(await unmap(0, 9), IommuStatus.OK); // (6)
    await map(0, 4);
    await map(10, 14);
    assert.equal(await unmap(0, 14), IommuStatus.OK); // (7)
    assert.deepEqual(d(), []);
    await map(0, 4);
    assert.equal((await drv.request(unmapReq(1, 0, 5 * P - 1, 1))).status, IommuStatus.INVAL, 'reserved not zero');
    assert.deepEqual(d(), [[0, 4]], 'and nothing unmapped');
    assert.equal((await drv.request(unmapReq(77, 0, P - 1))).status, IommuStatus.NOENT);
    assert.equal((await drv.request(unmapReq(2, 0, P - 1))).status, IommuStatus.INVAL);
  });

  it('device/iommu/41 device/iommu/42 device/iommu/44 device/iommu/45 device/iommu/46 device/iommu/49 device/iommu/50 device/iommu/51 device/iommu/52: PROBE: RESV_MEM properties back to back, lengths without the header, reserved zero, the rest zero', async () => {
    const { drv } = setup();
    const req = raw(IommuRequest.PROBE, [[4, 4]], 68);
    req.fill(0x77, 8); // reserved bytes ignored
    const r = await drv.request(req, 512);
    assert.equal(r.status, IommuStatus.OK);
    const p = r.written;
    const v = new DataView(p.buffer, p.byteOffset);
    assert.deepEqual([v.getUint16(0, true), v.getUint16(2, true)], [IommuProbeType.RESV_MEM, 20]);
    assert.deepEqual([p[4], p[5], p[6], p[7]], [IommuResvMem.MSI, 0, 0, 0]);
    assert.equal(v.getUint32(8, true), 0x800_0000);
    assert.equal(v.getUint32(16, true), 0x80f_ffff);
    assert.deepEqual([v.getUint16(24, true), v.getUint16(26, true), p[28]], [IommuProbeType.RESV_MEM, 20, IommuResvMem.RESERVED]);
    assert.ok(p.subarray(48).every((b) => b === 0));
    assert.equal((await drv.request(raw(IommuRequest.PROBE, [[4, 99]], 68), 512)).status, IommuStatus.NOENT);
    assert.deepEqual(await drv.probe(1), []);
  });

  it('device/iommu/43: without the PROBE feature a PROBE request is not answered', async () => {
    const { drv } = setup({ probe: false });
    assert.equal(drv.config.probeSize, 0);
    await assert.rejects(drv.request(raw(IommuRequest.PROBE, [[4, 1]], 68), 512), /did not answer/);
  });

  it('device/iommu/47 device/iommu/48: properties that do not fit probe_size: none written, INVAL', async () => {
    const many = Array.from({ length: 3 }, (_, i) => ({ subtype: IommuResvMem.RESERVED, start: i * 0x10000, end: i * 0x10000 + 0xfff }));
    const { drv } = setup({ probeSize: 48, endpoints: [{ id: 1, reserved: many }] });
    const r = await drv.request(raw(IommuRequest.PROBE, [[4, 1]], 68), 48);
    assert.equal(r.status, IommuStatus.INVAL);
    assert.ok(r.written.every((b) => b === 0));
  });

  it('device/iommu/54 device/iommu/55 device/iommu/56 device/iommu/57 device/iommu/58 device/iommu/59: fault reports: reserved zero, defined flags, the endpoint id, the address; a too-small buffer is given back unused, never split; bounded while no buffer waits', async () => {
    const device = new IommuDevice({ endpoints: [{ id: 1, reserved: [{ subtype: IommuResvMem.MSI, start: 0x800_0000, end: 0x800_ffff }] }] });
    const pair = createTestPair(device);
    const drv = new IommuDriver(pair.ctx, { eventBuffers: 0 });
    await drv.attach(1, 1);
    const q = pair.ctx.queue(1);
    const done = new Map<number, number>();
    pair.ctx.onUsed(1, () => {
      for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) done.set(t, q.lastUsedLen);
    });
    const small = pair.ctx.dma.alloc(12);
    const big = pair.ctx.dma.alloc(32);
    pair.memory.fill(big, 32, 0xff);
    q.add([], [{ addr: small, len: 12 }], 1);
    q.add([], [{ addr: big, len: 32 }], 2);
    pair.ctx.kick(1);
    await new Promise((r) => setImmediate(r));
    device.translation.translate(1, 0x9000, 4, IommuMapFlag.WRITE);
    for (let i = 0; i < 20 && done.size < 2; i++) await new Promise((r) => setImmediate(r));
    assert.equal(done.get(1), 0, 'the 12-byte buffer is used unwritten');
    assert.equal(done.get(2), IommuFault.SIZE);
    const b = pair.memory.slice(big, 24);
    const v = new DataView(b.buffer, b.byteOffset);
    assert.deepEqual([b[0], b[1], b[2], b[3]], [IommuFaultReason.MAPPING, 0, 0, 0]);
    assert.equal(v.getUint32(IommuFault.FLAGS, true), IommuFaultFlag.WRITE | IommuFaultFlag.ADDRESS);
    assert.equal(v.getUint32(IommuFault.ENDPOINT, true), 1);
    assert.equal(v.getUint32(12, true), 0, 'reserved1');
    assert.equal(v.getUint32(IommuFault.ADDRESS, true), 0x9000);
    // device/iommu/54: an access to the endpoint's reserved region reaches nothing else: it faults.
    assert.equal(device.translation.translate(1, 0x800_0000, 4, IommuMapFlag.WRITE).ok, false);
    // Bounded: 200 faults with no buffer to take them.
    for (let i = 0; i < 200; i++) device.translation.translate(1, 0xa000, 1, IommuMapFlag.READ);
    assert.ok(device.faultsDropped > 0);
  });

  it('untrusted driver: short requests INVAL, no room for the tail length 0, never a throw or DEVICE_NEEDS_RESET', async () => {
    const { drv, pair } = setup();
    assert.equal((await drv.request(new Uint8Array([IommuRequest.MAP, 0, 0, 0, 1, 0, 0, 0]))).status, IommuStatus.INVAL);
    assert.equal((await drv.request(new Uint8Array([IommuRequest.ATTACH]))).status, IommuStatus.INVAL);
    const a = pair.ctx.dma.alloc(32);
    pair.memory.write(a, attachReq(1, 1));
    const used = await new Promise<number>((resolve) => {
      const q = pair.ctx.queue(0);
      pair.ctx.onUsed(0, () => {
        q.takeUsed();
        resolve(q.lastUsedLen);
      });
      q.add([{ addr: a, len: 20 }], [{ addr: a + 20, len: 2 }], 5);
      pair.ctx.kick(0);
    });
    assert.equal(used, 0);
    assert.deepEqual(pair.resets, []);
  });
});
