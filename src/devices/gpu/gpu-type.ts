/**
 * The registry record of virtio-gpu (5.7, 2D), vhost-user type "gpu" (no render-node, no virgl),
 * served by `virtio-ts gpu` with the vhost-user-gpu display protocol (docs/devices/gpu.md).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { GpuConfig, GpuF, GpuFormat, GpuResp } from '../../spec/gpu.js';
import type { DeviceType } from '../device-type.js';
import { GPU_CLI } from './cli.js';
import { GpuDevice, type GpuDeviceOptions } from './gpu-device.js';
import { GpuCommandError, GpuDriver } from './gpu-driver.js';
import { edidBaseBlockValid, edidPreferredSize } from './gpu-edid.js';

/** `createDevice` arguments (structured-cloneable). */
export interface GpuDeviceArgs {
  /** The scanouts (1 to 16), as {@link GpuDisplaySpec}. Default one of 1024 x 768. */
  readonly displays?: readonly {
    /** Preferred width in pixels, 1..4095. */
    width: number;
    /** Preferred height in pixels, 1..4095. */
    height: number;
    /** The display is connected. Default true. */
    enabled?: boolean;
  }[];
  /** Maximum size of both queues, 2..32768. Default 256. */
  readonly queueSize?: number;
  /** Pixel bytes of one resource at most. Default 64 MiB (4096 x 4096 x 4). */
  readonly maxResourceBytes?: number;
  /** Pixel bytes plus backing entries of all resources at most. Default 256 MiB. */
  readonly maxTotalBytes?: number;
}

/** B8G8R8X8 test pixels: pixel i is (b, g, r, x) = (i, 3i, 7i, 0xee) mod 256. */
function bgrxPattern(count: number, seed: number): Uint8Array {
  const p = new Uint8Array(count * 4);
  for (let i = 0; i < count; i++) {
    p[i * 4] = (i + seed) & 0xff;
    p[i * 4 + 1] = (i * 3 + seed) & 0xff;
    p[i * 4 + 2] = (i * 7 + seed) & 0xff;
    p[i * 4 + 3] = 0xee;
  }
  return p;
}

/**
 * The registry record of virtio-gpu: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const GPU_TYPE: DeviceType = {
  name: 'gpu',
  deviceId: DeviceId.GPU,
  summary: 'a virtio-gpu 2D device with the vhost-user-gpu display protocol',
  vhostUser: { type: 'gpu', features: [] },
  configSize: GpuConfig.SIZE,
  cli: GPU_CLI,
  createDevice(args?: unknown): GpuDevice {
    const a = (args ?? {}) as GpuDeviceArgs;
    const opts: GpuDeviceOptions = {
      ...(a.displays === undefined ? {} : { displays: a.displays }),
      ...(a.queueSize === undefined ? {} : { queueSize: a.queueSize }),
      ...(a.maxResourceBytes === undefined ? {} : { maxResourceBytes: a.maxResourceBytes }),
      ...(a.maxTotalBytes === undefined ? {} : { maxTotalBytes: a.maxTotalBytes }),
    };
    return new GpuDevice(opts);
  },
  matrixCase() {
    const device = new GpuDevice({ displays: [{ width: 40, height: 30 }, { width: 20, height: 10, enabled: false }], queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const gpu = new GpuDriver(driver.context, { fence: true });
        assert.deepEqual(gpu.config, { eventsRead: 0, numScanouts: 2, numCapsets: 0 });
        const info = await gpu.getDisplayInfo();
        assert.deepEqual(info.map((d) => [d.width, d.height, d.enabled]), [[40, 30, true], [20, 10, false]]);
        assert.deepEqual(await gpu.preferredMode(), { scanoutId: 0, width: 40, height: 30 });
        if ((gpu.features & GpuF.EDID) !== 0n) {
          const edid = await gpu.getEdid(0);
          assert.ok(edidBaseBlockValid(edid));
          assert.deepEqual(edidPreferredSize(edid), { width: 40, height: 30 });
        }
        // A framebuffer shown on scanout 0, drawn, transferred and flushed.
        const changes: number[] = [];
        const off = device.onScanoutChange((s, r) => changes.push(s.id, r?.width ?? -1));
        const fb = await gpu.createFramebuffer({ resourceId: 7, width: 40, height: 30, scanoutId: 0 });
        const pixels = bgrxPattern(40 * 30, 5);
        gpu.draw(fb, 0, 0, 40, pixels);
        await gpu.present(fb);
        const shown = device.scanout(0);
        assert.equal(shown.resourceId, 7);
        for (let i = 0; i < 40 * 30; i++) {
          const want = [pixels[i * 4 + 2], pixels[i * 4 + 1], pixels[i * 4], 255];
          assert.deepEqual([...shown.rgba.subarray(i * 4, i * 4 + 4)], want, `pixel ${i}`);
        }
        // A partial update: only the rectangle changes.
        gpu.draw(fb, 10, 5, 4, new Uint8Array(4 * 2 * 4).fill(0x11));
        await gpu.present(fb, { x: 10, y: 5, width: 4, height: 2 });
        assert.deepEqual([...shown.rgba.subarray((5 * 40 + 10) * 4, (5 * 40 + 10) * 4 + 4)], [0x11, 0x11, 0x11, 255]);
        assert.equal(shown.rgba[(7 * 40 + 10) * 4], pixels[(7 * 40 + 10) * 4 + 2], 'outside the rectangle unchanged');
        assert.deepEqual(changes.slice(-4), [0, 40, 0, 4]);
        off();
        // The cursor: a 64x64 resource, fenced transfer, then the cursorq.
        const cur = await gpu.createFramebuffer({ resourceId: 9, width: 64, height: 64, format: GpuFormat.R8G8B8A8_UNORM });
        gpu.draw(cur, 0, 0, 64, new Uint8Array(64 * 64 * 4).fill(0x80));
        await gpu.transferToHost2d(9, { x: 0, y: 0, width: 64, height: 64 }, 0);
        await gpu.updateCursor(0, 12, 13, 9, 1, 2);
        assert.deepEqual([device.cursor.visible, device.cursor.x, device.cursor.y, device.cursor.hotX, device.cursor.rgba[3]], [true, 12, 13, 1, 0x80]);
        await gpu.moveCursor(0, 30, 31);
        assert.deepEqual([device.cursor.x, device.cursor.y], [30, 31]);
        // Errors are responses, not failures of the device.
        await assert.rejects(gpu.flush(99, { x: 0, y: 0, width: 1, height: 1 }), (e: GpuCommandError) => e.response === GpuResp.ERR_INVALID_RESOURCE_ID);
        await assert.rejects(gpu.setScanout(5, 7, { x: 0, y: 0, width: 1, height: 1 }), (e: GpuCommandError) => e.response === GpuResp.ERR_INVALID_SCANOUT_ID);
        // A display change: the event reaches the driver (which clears it through events_clear:
        // over vhost-user SET_CONFIG is asynchronous, so the clear itself is checked in gpu-device.test.ts).
        const changed = new Promise<void>((resolve) => gpu.onDisplayChange(resolve));
        device.setDisplay(1, { width: 32, height: 16 });
        await changed;
        assert.deepEqual((await gpu.getDisplayInfo())[1], { x: 0, y: 0, width: 32, height: 16, enabled: true, flags: 0 });
        await gpu.setScanout(0, 0, { x: 0, y: 0, width: 0, height: 0 });
        await gpu.unref(7);
        await gpu.unref(9);
        assert.equal(device.hostBytes, 0, 'every resource freed');
        gpu.detach();
      },
    };
  },
};
