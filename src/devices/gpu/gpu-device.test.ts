import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { F } from '../../spec/features.js';
import {
  GPU_CURSOR_SIZE,
  GPU_EVENT_DISPLAY,
  GPU_FLAG_FENCE,
  GpuCmd,
  GpuConfig,
  GpuF,
  GpuFormat,
  GpuHdr,
  GpuQueue,
  GpuResp,
  gpuFormatChannels,
} from '../../spec/gpu.js';
import { createTestPair, type TestPairOptions } from '../blk/test-pair.js';
import { GpuDevice, type GpuDeviceOptions } from './gpu-device.js';
import { GpuCommandError, GpuDriver } from './gpu-driver.js';
import { edidBaseBlockValid, edidPreferredSize } from './gpu-edid.js';

const T = { timeout: 30_000 };

function gpuPair(devOpts: GpuDeviceOptions = {}, pairOpts: TestPairOptions = {}, fence = false) {
  const device = new GpuDevice({ displays: [{ width: 64, height: 48 }], ...devOpts });
  const pair = createTestPair(device, { queueSize: 64, ...pairOpts });
  const gpu = new GpuDriver(pair.ctx, { fence });
  return { device, pair, gpu };
}

/** A request: header of `type` (flags, fence id) and u32 body words. */
function request(type: number, words: readonly number[], o: { flags?: number; fence?: number; le?: boolean } = {}): Uint8Array {
  const le = o.le ?? true;
  const b = new Uint8Array(GpuHdr.SIZE + words.length * 4);
  const dv = new DataView(b.buffer);
  dv.setUint32(GpuHdr.TYPE, type, le);
  dv.setUint32(GpuHdr.FLAGS, o.flags ?? 0, le);
  const fence = o.fence ?? 0;
  dv.setUint32(GpuHdr.FENCE_ID, fence >>> 0, le);
  dv.setUint32(GpuHdr.FENCE_ID + 4, Math.floor(fence / 2 ** 32), le);
  words.forEach((w, i) => dv.setUint32(GpuHdr.SIZE + i * 4, w >>> 0, le));
  return b;
}

function respType(resp: Uint8Array, le = true): number {
  return resp.length < 4 ? -1 : new DataView(resp.buffer, resp.byteOffset).getUint32(0, le);
}

async function rejectsWith(p: Promise<unknown>, response: number, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof GpuCommandError && e.response === response, what);
}

/** Decodes a PNG written by encodePng (filter 0 rows, one IDAT). */
function decodePng(png: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(png.buffer, png.byteOffset);
  let at = 8;
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  while (at < png.length) {
    const len = dv.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = dv.getUint32(at + 8);
      height = dv.getUint32(at + 12);
      assert.deepEqual([data[8], data[9]], [8, 6], '8-bit RGBA');
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (width * 4 + 1)], 0, 'filter type 0');
    rgba.set(raw.subarray(y * (width * 4 + 1) + 1, (y + 1) * (width * 4 + 1)), y * width * 4);
  }
  return { width, height, rgba };
}

describe('GpuDevice', T, () => {
  it('device/gpu/7 device/gpu/8: commands are processed before their response; a fenced command is answered with VIRTIO_GPU_FLAG_FENCE and its fence_id', async () => {
    const { device, gpu, pair } = gpuPair();
    const fence = 2 ** 40 + 12345;
    const resp = await gpu.raw(request(GpuCmd.RESOURCE_CREATE_2D, [5, GpuFormat.B8G8R8X8_UNORM, 16, 16], { flags: GPU_FLAG_FENCE, fence }), GpuHdr.SIZE);
    const dv = new DataView(resp.buffer, resp.byteOffset);
    assert.equal(dv.getUint32(GpuHdr.TYPE, true), GpuResp.OK_NODATA);
    assert.equal(dv.getUint32(GpuHdr.FLAGS, true) & GPU_FLAG_FENCE, GPU_FLAG_FENCE);
    assert.equal(dv.getUint32(GpuHdr.FENCE_ID, true) + dv.getUint32(GpuHdr.FENCE_ID + 4, true) * 2 ** 32, fence);
    // Complete when answered: the resource exists as soon as the response is there.
    assert.equal(device.resource(5)?.width, 16);
    // Without the flag the response carries no fence.
    const plain = await gpu.raw(request(GpuCmd.RESOURCE_UNREF, [5, 0], { fence: 99 }), GpuHdr.SIZE);
    assert.equal(new DataView(plain.buffer, plain.byteOffset).getUint32(GpuHdr.FLAGS, true), 0);
    assert.equal(new DataView(plain.buffer, plain.byteOffset).getUint32(GpuHdr.FENCE_ID, true), 0);
    // A fencing driver checks every response echoes its fence.
    const fenced = new GpuDriver(pair.ctx, { fence: true });
    await fenced.createResource2d(6, GpuFormat.R8G8B8A8_UNORM, 8, 8);
    await fenced.unref(6);
    assert.deepEqual(pair.resets, []);
  });

  it('device/gpu/1 device/gpu/2 device/gpu/3: the driver reads GET_DISPLAY_INFO (and a valid EDID with VIRTIO_GPU_F_EDID) for its scanout set-up, and falls back to 1024x768 on scanout 0 when every display is disabled', async () => {
    const { gpu } = gpuPair({ displays: [{ width: 800, height: 600, enabled: false }, { width: 1280, height: 720 }] });
    assert.equal(gpu.config.numScanouts, 2);
    assert.equal(gpu.config.numCapsets, 0);
    const info = await gpu.getDisplayInfo();
    assert.deepEqual(info.map((d) => [d.width, d.height, d.enabled]), [[800, 600, false], [1280, 720, true]]);
    assert.deepEqual(await gpu.preferredMode(), { scanoutId: 1, width: 1280, height: 720 });
    assert.notEqual(gpu.features & GpuF.EDID, 0n);
    const edid = await gpu.getEdid(1);
    assert.equal(edid.length, 128);
    assert.ok(edidBaseBlockValid(edid), 'header and checksum');
    assert.deepEqual(edidPreferredSize(edid), { width: 1280, height: 720 });
    assert.equal(String.fromCharCode(...edid.subarray(77, 86)), 'virtio-ts');
    const off = gpuPair({ displays: [{ width: 800, height: 600, enabled: false }] });
    assert.deepEqual(await off.gpu.preferredMode(), { scanoutId: 0, width: 1024, height: 768 });
    // Without EDID negotiated, GET_EDID is not a command of the device.
    const noEdid = gpuPair({}, { accept: ~GpuF.EDID });
    await rejectsWith(noEdid.gpu.getEdid(0), GpuResp.ERR_UNSPEC, 'GET_EDID without the feature');
  });

  it('5.7.6.1/5.7.6.2: create, attach a scatter-list backing, set scanout, transfer and flush show the pixels as RGBA; a PNG snapshot holds them', async () => {
    const { device, gpu, pair } = gpuPair();
    const w = 64;
    const h = 48;
    const changes: string[] = [];
    device.onScanoutChange((s, r) => changes.push(r === null ? `${s.id}:off` : `${s.id}:${r.x},${r.y},${r.width}x${r.height}`));
    await gpu.createResource2d(1, GpuFormat.B8G8R8A8_UNORM, w, h);
    // Three non-contiguous pieces of guest memory, in order.
    const sizes = [w * 4 * 10 + 12, w * 4 * 20 - 12, w * 4 * 18];
    const pieces = sizes.map((len) => ({ addr: pair.ctx.dma.alloc(len + 4096, 4096), len }));
    await gpu.attachBacking(1, pieces);
    const image = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
    let at = 0;
    for (const p of pieces) {
      pair.memory.write(p.addr, image.subarray(at, at + p.len));
      at += p.len;
    }
    await gpu.setScanout(0, 1, { x: 0, y: 0, width: w, height: h });
    await gpu.transferToHost2d(1, { x: 0, y: 0, width: w, height: h }, 0);
    await gpu.flush(1, { x: 0, y: 0, width: w, height: h });
    assert.deepEqual(changes, ['0:0,0,64x48', '0:0,0,64x48']);
    const s = device.scanout(0);
    for (let i = 0; i < w * h; i++) {
      const px = image.subarray(i * 4, i * 4 + 4);
      assert.deepEqual([...s.rgba.subarray(i * 4, i * 4 + 4)], [px[2], px[1], px[0], px[3]], `pixel ${i}`);
    }
    const png = decodePng(device.snapshotPng(0));
    assert.deepEqual([png.width, png.height], [w, h]);
    assert.deepEqual(png.rgba, s.rgba);
    // A box transfer reads its rows at offset + stride * k; a flush of part of it updates that part only.
    image.fill(0x42);
    at = 0;
    for (const p of pieces) {
      pair.memory.write(p.addr, image.subarray(at, at + p.len));
      at += p.len;
    }
    await gpu.transferToHost2d(1, { x: 3, y: 30, width: 5, height: 4 }, 30 * w * 4 + 3 * 4);
    await gpu.flush(1, { x: 0, y: 0, width: w, height: h });
    assert.deepEqual([...s.rgba.subarray((30 * w + 3) * 4, (30 * w + 3) * 4 + 4)], [0x42, 0x42, 0x42, 0x42]);
    assert.notEqual(s.rgba[(29 * w + 3) * 4], 0x42, 'rows outside the box keep their pixels');
    assert.notEqual(s.rgba[(30 * w + 8) * 4], 0x42, 'columns outside the box keep their pixels');
    // Scanout of a sub-rectangle: the picture is that rectangle.
    await gpu.setScanout(0, 1, { x: 2, y: 29, width: 4, height: 3 });
    assert.deepEqual([s.width, s.height], [4, 3]);
    assert.deepEqual([...s.rgba.subarray((1 * 4 + 1) * 4, (1 * 4 + 1) * 4 + 4)], [0x42, 0x42, 0x42, 0x42]);
    // Detach: transfers are refused until a backing is attached again.
    await gpu.detachBacking(1);
    await rejectsWith(gpu.transferToHost2d(1, { x: 0, y: 0, width: 1, height: 1 }, 0), GpuResp.ERR_INVALID_RESOURCE_ID, 'no backing');
    await gpu.attachBacking(1, pieces);
    await gpu.unref(1);
    assert.equal(device.scanout(0).resourceId, 0);
    assert.equal(changes.at(-1), '0:off');
    assert.equal(device.hostBytes, 0);
  });

  it('5.7.6.8 formats: each of the eight formats shows as the right RGBA', async () => {
    const { device, gpu } = gpuPair();
    const formats = Object.values(GpuFormat);
    for (const [k, format] of formats.entries()) {
      const fb = await gpu.createFramebuffer({ resourceId: 10 + k, width: 2, height: 1, format, scanoutId: 0 });
      // Pixel bytes 0x10, 0x20, 0x30, 0x40 then 0x50...0x80.
      gpu.draw(fb, 0, 0, 2, Uint8Array.of(0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80));
      await gpu.present(fb);
      const [r, g, b, a] = gpuFormatChannels(format)!;
      const rgba = device.scanout(0).rgba;
      for (let p = 0; p < 2; p++) {
        const byte = (i: number): number => 0x10 * (p * 4 + i + 1);
        assert.deepEqual([...rgba.subarray(p * 4, p * 4 + 4)], [byte(r), byte(g), byte(b), a < 0 ? 255 : byte(a)], `format ${format} pixel ${p}`);
      }
      await gpu.unref(fb.resourceId);
    }
    assert.deepEqual([gpuFormatChannels(GpuFormat.B8G8R8X8_UNORM), gpuFormatChannels(5)], [[2, 1, 0, -1], null]);
  });

  it('cursorq: UPDATE_CURSOR loads a 64x64 resource and moves the pointer, MOVE_CURSOR only moves it, resource 0 hides it; Linux-style requests without a response buffer are served', async () => {
    const { device, gpu } = gpuPair();
    const seen: number[] = [];
    device.onCursorChange((c) => seen.push(c.x));
    const cur = await gpu.createFramebuffer({ resourceId: 3, width: GPU_CURSOR_SIZE, height: GPU_CURSOR_SIZE, format: GpuFormat.B8G8R8A8_UNORM });
    gpu.draw(cur, 0, 0, 64, new Uint8Array(64 * 64 * 4).map((_, i) => (i % 4 === 3 ? 0x7f : i % 4 === 2 ? 0xff : 0)));
    await gpu.transferToHost2d(3, { x: 0, y: 0, width: 64, height: 64 }, 0);
    await gpu.updateCursor(0, 100, 50, 3, 4, 5);
    const c = device.cursor;
    assert.deepEqual([c.visible, c.resourceId, c.x, c.y, c.hotX, c.hotY], [true, 3, 100, 50, 4, 5]);
    assert.deepEqual([...c.rgba.subarray(0, 4)], [0xff, 0, 0, 0x7f], 'red, half transparent');
    // MOVE_CURSOR ignores its resource and hot spot fields.
    await gpu.raw(request(GpuCmd.MOVE_CURSOR, [0, 7, 8, 0, 99, 9, 9, 0]), 0, GpuQueue.CURSORQ);
    assert.deepEqual([c.x, c.y, c.resourceId, c.hotX], [7, 8, 3, 4]);
    await gpu.updateCursor(0, 1, 1, 0);
    assert.equal(c.visible, false);
    assert.deepEqual(seen, [100, 7, 1]);
  });

  it('untrusted driver: every malformed controlq and cursorq request gets its VIRTIO_GPU_RESP_ERR_* response, never a throw or DEVICE_NEEDS_RESET', async () => {
    const { device, gpu, pair } = gpuPair({ maxResourceBytes: 64 * 64 * 4, maxTotalBytes: 3 * 64 * 64 * 4 + 64, maxResources: 4, maxBackingEntries: 8 });
    const B = GpuFormat.B8G8R8X8_UNORM;
    const expect = async (req: Uint8Array, want: number, what: string, queue: number = GpuQueue.CONTROLQ): Promise<void> => {
      assert.equal(respType(await gpu.raw(req, 64, queue)), want, what);
    };
    const E = GpuResp;
    await expect(new Uint8Array(10), E.ERR_UNSPEC, 'short header');
    await expect(request(0x0777, []), E.ERR_UNSPEC, 'unknown command');
    await expect(request(GpuCmd.CTX_CREATE, [0, 0]), E.ERR_UNSPEC, '3D command without VIRGL');
    await expect(request(GpuCmd.RESOURCE_CREATE_BLOB, [1, 1, 0, 0, 0, 0, 4096, 0]), E.ERR_UNSPEC, 'blob without RESOURCE_BLOB');
    await expect(request(GpuCmd.RESOURCE_MAP_BLOB, [1, 0, 0, 0]), E.ERR_UNSPEC, 'map blob: no host visible region');
    await expect(request(GpuCmd.UPDATE_CURSOR, [0, 0, 0, 0, 0, 0, 0, 0]), E.ERR_UNSPEC, 'cursor command on the controlq');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, B, 4]), E.ERR_UNSPEC, 'short create');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [0, B, 4, 4]), E.ERR_INVALID_RESOURCE_ID, 'resource id 0');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, 5, 4, 4]), E.ERR_INVALID_PARAMETER, 'unknown format');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, B, 0, 4]), E.ERR_INVALID_PARAMETER, 'width 0');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, B, 65, 64]), E.ERR_OUT_OF_MEMORY, 'over the per-resource bound');
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, B, 0xffff_ffff, 0xffff_ffff]), E.ERR_OUT_OF_MEMORY, '2^64 bytes');
    await gpu.createResource2d(1, B, 64, 64);
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [1, B, 4, 4]), E.ERR_INVALID_RESOURCE_ID, 'id in use');
    await gpu.createResource2d(2, B, 64, 64);
    await gpu.createResource2d(3, B, 64, 64);
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [4, B, 64, 64]), E.ERR_OUT_OF_MEMORY, 'over the total bound');
    await gpu.createResource2d(4, B, 1, 1);
    await expect(request(GpuCmd.RESOURCE_CREATE_2D, [5, B, 1, 1]), E.ERR_OUT_OF_MEMORY, 'over the resource count');
    await expect(request(GpuCmd.RESOURCE_UNREF, [9, 0]), E.ERR_INVALID_RESOURCE_ID, 'unref unknown');
    await expect(request(GpuCmd.RESOURCE_UNREF, []), E.ERR_UNSPEC, 'short unref');
    await expect(request(GpuCmd.SET_SCANOUT, [0, 0, 4, 4, 1, 1]), E.ERR_INVALID_SCANOUT_ID, 'scanout 1 of 1');
    await expect(request(GpuCmd.SET_SCANOUT, [0, 0, 4, 4, 0, 9]), E.ERR_INVALID_RESOURCE_ID, 'scanout of an unknown resource');
    await expect(request(GpuCmd.SET_SCANOUT, [1, 0, 64, 4, 0, 1]), E.ERR_INVALID_PARAMETER, 'rectangle beyond the resource');
    await expect(request(GpuCmd.SET_SCANOUT, [0xffff_ffff, 0, 2, 4, 0, 1]), E.ERR_INVALID_PARAMETER, 'x + width overflowing 32 bits');
    await expect(request(GpuCmd.SET_SCANOUT, [0, 0, 0, 4, 0, 1]), E.ERR_INVALID_PARAMETER, 'empty rectangle');
    await expect(request(GpuCmd.RESOURCE_FLUSH, [0, 0, 4, 4, 9, 0]), E.ERR_INVALID_RESOURCE_ID, 'flush unknown');
    await expect(request(GpuCmd.RESOURCE_FLUSH, [0, 60, 4, 5, 1, 0]), E.ERR_INVALID_PARAMETER, 'flush beyond');
    await expect(request(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 4, 4, 0, 0, 1, 0]), E.ERR_INVALID_RESOURCE_ID, 'transfer without backing');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [9, 1, 0x20_0000, 0, 4096, 0]), E.ERR_INVALID_RESOURCE_ID, 'attach to unknown');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 0]), E.ERR_UNSPEC, 'no entries');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 9]), E.ERR_UNSPEC, 'over maxBackingEntries');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 2, 0x20_0000, 0, 4096, 0]), E.ERR_UNSPEC, 'entries missing from the request');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 1, 0, 0x100, 4096, 0]), E.ERR_UNSPEC, 'entry outside guest memory');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 1, 0x7f_f000, 0, 0x2000, 0]), E.ERR_UNSPEC, 'entry running past guest memory');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 1, 0x20_0000, 0, 0, 0]), E.ERR_UNSPEC, 'empty entry');
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 1, 0, 0xffff_ffff, 16, 0]), E.ERR_UNSPEC, 'address beyond 2^53');
    await expect(request(GpuCmd.RESOURCE_DETACH_BACKING, [1, 0]), E.ERR_UNSPEC, 'detach without backing');
    await expect(request(GpuCmd.RESOURCE_DETACH_BACKING, [9, 0]), E.ERR_INVALID_RESOURCE_ID, 'detach unknown');
    const addr = pair.ctx.dma.alloc(64 * 64 * 4, 4096);
    await gpu.attachBacking(1, [{ addr, len: 64 * 64 * 4 - 4 }]);
    await expect(request(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 1, addr, 0, 4096, 0]), E.ERR_UNSPEC, 'second backing');
    await expect(request(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 64, 65, 0, 0, 1, 0]), E.ERR_INVALID_PARAMETER, 'transfer box beyond the resource');
    await expect(request(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 64, 64, 0, 0, 1, 0]), E.ERR_INVALID_PARAMETER, 'transfer beyond the backing');
    await expect(request(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 1, 1, 0, 0xffff_ffff, 1, 0]), E.ERR_INVALID_PARAMETER, 'offset beyond 2^53');
    await expect(request(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 64, 63, 0, 0, 1, 0]), E.OK_NODATA, 'transfer inside the backing');
    await expect(request(GpuCmd.GET_EDID, [1, 0]), E.ERR_INVALID_PARAMETER, 'EDID of scanout 1 of 1');
    await expect(request(GpuCmd.GET_EDID, []), E.ERR_UNSPEC, 'short GET_EDID');
    await expect(request(GpuCmd.GET_CAPSET_INFO, [0, 0]), E.ERR_INVALID_PARAMETER, 'capset index 0 of 0');
    await expect(request(GpuCmd.GET_CAPSET, [1, 0]), E.ERR_INVALID_PARAMETER, 'capset id 1: none');
    const C = GpuQueue.CURSORQ;
    await expect(request(GpuCmd.UPDATE_CURSOR, [1, 0, 0, 0, 1, 0, 0, 0]), E.ERR_INVALID_SCANOUT_ID, 'cursor on scanout 1 of 1', C);
    await expect(request(GpuCmd.UPDATE_CURSOR, [0, 0, 0, 0, 9, 0, 0, 0]), E.ERR_INVALID_RESOURCE_ID, 'cursor from unknown', C);
    await expect(request(GpuCmd.UPDATE_CURSOR, [0, 0, 0, 0, 4, 0, 0, 0]), E.ERR_INVALID_PARAMETER, 'cursor not 64x64', C);
    await expect(request(GpuCmd.GET_DISPLAY_INFO, [0, 0, 0, 0, 0, 0, 0, 0]), E.ERR_UNSPEC, 'controlq command on the cursorq', C);
    await expect(request(GpuCmd.MOVE_CURSOR, [0, 0]), E.ERR_UNSPEC, 'short cursor request', C);
    // A response buffer smaller than the header: nothing written, nothing broken.
    assert.equal((await gpu.raw(request(GpuCmd.GET_DISPLAY_INFO, []), 8)).length, 0);
    // A response buffer smaller than the data: the header and what fits.
    assert.equal(respType(await gpu.raw(request(GpuCmd.GET_DISPLAY_INFO, []), 40)), E.OK_DISPLAY_INFO);
    assert.deepEqual(pair.resets, []);
    assert.equal(device.hostBytes, 3 * 64 * 64 * 4 + 4 + 12);
  });

  it('untrusted driver: 400 random requests on both queues get an answer, never a throw or DEVICE_NEEDS_RESET; host memory stays under its bound', async () => {
    const { device, gpu, pair } = gpuPair({ maxTotalBytes: 1 << 20 });
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const types = [...Object.values(GpuCmd), 0, 0x1100, 0xffff_ffff];
    for (let i = 0; i < 400; i++) {
      const words = Array.from({ length: rnd(12) }, () => (rnd(4) === 0 ? rnd(2 ** 31) * 2 : rnd(70)));
      const req = request(types[rnd(types.length)]!, words, { flags: rnd(4) });
      const resp = await gpu.raw(req.subarray(0, rnd(4) === 0 ? rnd(req.length + 1) : req.length), rnd(5) === 0 ? 0 : 64 + rnd(400), rnd(2));
      if (resp.length >= 4) assert.ok(respType(resp) >= 0x1100 && respType(resp) <= 0x1205, `answer 0x${respType(resp).toString(16)}`);
      assert.ok(device.hostBytes <= 1 << 20);
    }
    assert.deepEqual(pair.resets, []);
  });

  it('5.7.4: events_read shows VIRTIO_GPU_EVENT_DISPLAY after a display change with a configuration change notification; events_clear clears it (whole or byte-wise); other fields are read-only', async () => {
    const { device, gpu, pair } = gpuPair();
    const heard = new Promise<void>((resolve) => gpu.onDisplayChange(resolve));
    device.setDisplay(0, { width: 320, height: 200 });
    assert.equal(device.pendingEvents, GPU_EVENT_DISPLAY);
    await heard;
    assert.equal(pair.configChanges, 1);
    assert.equal(device.pendingEvents, 0, 'and cleared it through events_clear');
    assert.deepEqual((await gpu.getDisplayInfo())[0], { x: 0, y: 0, width: 320, height: 200, enabled: true, flags: 0 });
    assert.deepEqual(edidPreferredSize(await gpu.getEdid(0)), { width: 320, height: 200 });
    // Straight on the device: a byte write to events_clear, a write to events_read ignored.
    const d = new GpuDevice();
    d.setDisplay(0, { width: 10, height: 10 });
    const cfg = new Uint8Array(GpuConfig.SIZE);
    d.readConfig(0, cfg, 0n, true);
    assert.equal(cfg[0], GPU_EVENT_DISPLAY);
    d.writeConfig(GpuConfig.EVENTS_READ, Uint8Array.of(0, 0, 0, 0), 0n, true);
    assert.equal(d.pendingEvents, GPU_EVENT_DISPLAY, 'events_read is not writable');
    d.writeConfig(GpuConfig.NUM_SCANOUTS, Uint8Array.of(1, 0, 0, 0), 0n, true);
    d.writeConfig(GpuConfig.EVENTS_CLEAR + 3, Uint8Array.of(GPU_EVENT_DISPLAY), 0n, false);
    assert.equal(d.pendingEvents, 0, 'the low byte of a big-endian events_clear');
    d.readConfig(0, cfg, 0n, true);
    assert.deepEqual([...cfg], [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('legacy big-endian guest (MMIO legacy / CCW revision 0 byte order): commands and responses in guest order', async () => {
    const { device, gpu } = gpuPair({}, { accept: ~F.VERSION_1, littleEndian: false });
    assert.equal(gpu.config.numScanouts, 1);
    const fb = await gpu.createFramebuffer({ resourceId: 0x01020304, width: 4, height: 2, scanoutId: 0 });
    gpu.draw(fb, 0, 0, 4, new Uint8Array(32).fill(0x33));
    await gpu.present(fb);
    assert.equal(device.scanout(0).resourceId, 0x01020304);
    assert.deepEqual([...device.scanout(0).rgba.subarray(0, 4)], [0x33, 0x33, 0x33, 255]);
    assert.equal((await gpu.getDisplayInfo())[0]!.width, 64);
  });

  it('device reset: resources, backing, scanouts and the cursor are gone; the scanout listener hears it', async () => {
    const { device, gpu, pair } = gpuPair();
    const fb = await gpu.createFramebuffer({ resourceId: 1, width: 64, height: 48, scanoutId: 0 });
    await gpu.present(fb);
    let off = false;
    device.onScanoutChange((_s, r) => (off = r === null));
    device.reset();
    assert.ok(off);
    assert.equal(device.hostBytes, 0);
    assert.equal(device.resource(1), undefined);
    assert.equal(device.scanout(0).resourceId, 0);
    assert.throws(() => device.snapshotPng(0), /shows nothing/);
    void pair;
  });

  it('no shared memory region and no blob, 3D, UUID or BLOB_ALIGNMENT feature is offered: the shared memory and blob statements of 5.7 do not apply', () => {
    const d = new GpuDevice();
    assert.equal((d as { sharedMemoryRegions?: unknown }).sharedMemoryRegions, undefined);
    assert.equal(d.offeredFeatures & (GpuF.VIRGL | GpuF.RESOURCE_BLOB | GpuF.RESOURCE_UUID | GpuF.CONTEXT_INIT | GpuF.BLOB_ALIGNMENT), 0n);
    assert.throws(() => new GpuDevice({ displays: [] }), /1 to 16/);
    assert.throws(() => new GpuDevice({ displays: Array.from({ length: 17 }, () => ({ width: 8, height: 8 })) }), /1 to 16/);
    assert.throws(() => new GpuDevice({ maxTotalBytes: 0 }), /positive/);
  });
});
