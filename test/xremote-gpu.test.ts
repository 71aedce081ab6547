/**
 * The virtio-ts GpuDriver against QEMU's own virtio-gpu-pci (2D) through x-remote: display
 * info and EDID as QEMU reports them, a framebuffer created, backed by guest memory, shown on
 * scanout 0, drawn, transferred and flushed; QMP `screendump` then writes what QEMU displays and
 * its pixels must be the ones the driver drew. QEMU's error responses for an unknown resource
 * and scanout are the ones virtio-ts's device gives. Fenced commands come back with their fence.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioDriver } from '../src/driver/index.js';
import { GpuCommandError, GpuDriver } from '../src/devices/gpu/gpu-driver.js';
import { edidBaseBlockValid, edidPreferredSize } from '../src/devices/gpu/gpu-edid.js';
import { F } from '../src/spec/features.js';
import { GpuF, GpuFormat, GpuResp } from '../src/spec/gpu.js';
import { startXRemoteDevice, xRemoteUnavailableReason, type XRemoteDevice } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;

const ALL = (1n << 64n) - 1n;
const W = 96;
const H = 64;

/** Parses a binary PPM (P6, maxval 255): QEMU's screendump format. */
function parsePpm(b: Buffer): { width: number; height: number; rgb: Uint8Array } {
  const fields: string[] = [];
  let at = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(b[at]!))) at++;
    if (b[at] === 0x23) {
      while (b[at] !== 0x0a) at++;
      continue;
    }
    const start = at;
    while (!/\s/.test(String.fromCharCode(b[at]!))) at++;
    fields.push(b.subarray(start, at).toString('latin1'));
  }
  at++; // the single whitespace after maxval
  assert.equal(fields[0], 'P6');
  assert.equal(fields[3], '255');
  const width = Number(fields[1]);
  const height = Number(fields[2]);
  return { width, height, rgb: new Uint8Array(b.buffer, b.byteOffset + at, width * height * 3) };
}

/** The driver's picture: B8G8R8X8 pixels of a gradient with a box. */
function picture(): Uint8Array {
  const p = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 4;
      const box = x >= 20 && x < 50 && y >= 10 && y < 30;
      p[i] = box ? 0xff : (x * 2) & 0xff; // blue
      p[i + 1] = box ? 0x00 : (y * 3) & 0xff; // green
      p[i + 2] = box ? 0x00 : (x + y) & 0xff; // red
      p[i + 3] = 0;
    }
  }
  return p;
}

describe('x-remote: QEMU virtio-gpu-pci driven by the virtio-ts GpuDriver, checked with QMP screendump', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let dev: XRemoteDevice | null = null;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vts-xremote-gpu-'));
  });
  after(async () => {
    await dev?.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const packed of [false, true]) it(`${packed ? 'packed' : 'split'} ring: display info, EDID, framebuffer on scanout 0, screendump equals what the driver drew; error responses`, async () => {
    await dev?.close();
    dev = await startXRemoteDevice({ device: 'virtio-gpu-pci', deviceProps: `xres=${W},yres=${H},edid=on${packed ? ',packed=on' : ''}` });
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED, dma: dev.dma, queueSizes: [64] });
    assert.equal((driver.features & F.RING_PACKED) !== 0n, packed);
    const gpu = new GpuDriver(driver.context, { fence: true });
    assert.equal(gpu.config.numScanouts, 1);
    assert.equal(gpu.config.numCapsets, 0);
    const info = await gpu.getDisplayInfo();
    assert.deepEqual([info[0]!.width, info[0]!.height, info[0]!.enabled], [W, H, true]);
    assert.deepEqual(await gpu.preferredMode(), { scanoutId: 0, width: W, height: H });
    assert.notEqual(gpu.features & GpuF.EDID, 0n);
    const edid = await gpu.getEdid(0);
    assert.ok(edidBaseBlockValid(edid), 'QEMU EDID: header and checksum');
    assert.deepEqual(edidPreferredSize(edid), { width: W, height: H });

    const fb = await gpu.createFramebuffer({ resourceId: 1, width: W, height: H, format: GpuFormat.B8G8R8X8_UNORM, scanoutId: 0 });
    const pixels = picture();
    gpu.draw(fb, 0, 0, W, pixels);
    await gpu.present(fb);
    const file = join(dir, `${packed ? 'packed' : 'split'}.ppm`);
    await dev.qmp.execute('screendump', { filename: file });
    const shot = parsePpm(await readFile(file));
    assert.deepEqual([shot.width, shot.height], [W, H]);
    let wrong = 0;
    for (let i = 0; i < W * H; i++) {
      if (shot.rgb[i * 3] !== pixels[i * 4 + 2] || shot.rgb[i * 3 + 1] !== pixels[i * 4 + 1] || shot.rgb[i * 3 + 2] !== pixels[i * 4]) wrong++;
    }
    assert.equal(wrong, 0, 'every pixel of the screendump is the one the driver drew');

    // A partial update: a box transferred and flushed alone.
    const red = new Uint8Array(8 * 4 * 4);
    for (let i = 0; i < red.length; i += 4) red.set([0, 0, 0xff, 0], i);
    gpu.draw(fb, 60, 40, 8, red);
    await gpu.present(fb, { x: 60, y: 40, width: 8, height: 4 });
    await dev.qmp.execute('screendump', { filename: file });
    const shot2 = parsePpm(await readFile(file));
    const at = (41 * W + 62) * 3;
    assert.deepEqual([...shot2.rgb.subarray(at, at + 3)], [0xff, 0, 0]);

    // The cursor queue takes a 64x64 cursor image (QEMU answers nothing on the cursorq).
    await gpu.createFramebuffer({ resourceId: 2, width: 64, height: 64, format: GpuFormat.B8G8R8A8_UNORM });
    await gpu.transferToHost2d(2, { x: 0, y: 0, width: 64, height: 64 }, 0);
    await gpu.updateCursor(0, 10, 10, 2);
    await gpu.moveCursor(0, 20, 20);

    // QEMU's answers to bad requests: the codes virtio-ts's device gives for them.
    const code = async (p: Promise<unknown>): Promise<number> => {
      try {
        await p;
        return GpuResp.OK_NODATA;
      } catch (e) {
        if (e instanceof GpuCommandError) return e.response;
        throw e;
      }
    };
    assert.equal(await code(gpu.flush(99, { x: 0, y: 0, width: 1, height: 1 })), GpuResp.ERR_INVALID_RESOURCE_ID);
    assert.equal(await code(gpu.setScanout(5, 1, { x: 0, y: 0, width: W, height: H })), GpuResp.ERR_INVALID_SCANOUT_ID);
    assert.equal(await code(gpu.createResource2d(1, GpuFormat.B8G8R8X8_UNORM, 4, 4)), GpuResp.ERR_INVALID_RESOURCE_ID);
    assert.equal(await code(gpu.createResource2d(3, 5, 4, 4)), GpuResp.ERR_INVALID_PARAMETER);
    assert.equal(await code(gpu.unref(77)), GpuResp.ERR_INVALID_RESOURCE_ID);
    await gpu.setScanout(0, 0, { x: 0, y: 0, width: 0, height: 0 });
    await gpu.unref(1);
    await gpu.unref(2);
    driver.reset();
    await dev.close();
    dev = null;
  });
});
