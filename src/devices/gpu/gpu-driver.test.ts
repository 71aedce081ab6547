/**
 * GpuDriver against devices that answer wrongly: a fenced command whose response lacks the
 * fence, an EDID size past the 1024-byte blob, an error type; and the driver's requests as the
 * device reads them (layout of create_2d, attach_backing with several entries).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ChainCursor } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { GPU_FLAG_FENCE, GpuCmd, GpuConfig, GpuEdid, GpuF, GpuFormat, GpuHdr, GpuResp } from '../../spec/gpu.js';
import { createTestPair } from '../blk/test-pair.js';
import { GpuCommandError, GpuDriver } from './gpu-driver.js';

/** A GPU that answers every controlq request with `answer(request)` (written whole). */
class ScriptedGpu implements VirtioDevice {
  readonly deviceId = DeviceId.GPU;
  readonly offeredFeatures = F.VERSION_1 | GpuF.EDID;
  readonly queueMaxSizes = [16, 16];
  readonly configSize = GpuConfig.SIZE;
  readonly requests: Uint8Array[] = [];
  private readonly server: QueueServer;

  constructor(private readonly answer: (req: Uint8Array) => Uint8Array) {
    this.server = new QueueServer({ name: 'scripted-gpu', numQueues: 2, handler: () => (r) => this.serve(r) });
  }

  private serve({ chain }: QueueRequest): number {
    const req = new Uint8Array(chain.readableBytes);
    new ChainCursor(false).reset(chain).read(req);
    this.requests.push(req);
    return new ChainCursor(true).reset(chain).write(this.answer(req));
  }

  readConfig(_o: number, dst: Uint8Array): void {
    dst.fill(0);
    if (dst.length >= 12) dst[8] = 1; // num_scanouts 1
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }
  onQueueNotify(i: number): void {
    this.server.onQueueNotify(i);
  }
  reset(): void {
    this.server.reset();
  }
}

function header(type: number, flags = 0, fence = 0): Uint8Array {
  const h = new Uint8Array(GpuHdr.SIZE);
  const dv = new DataView(h.buffer);
  dv.setUint32(GpuHdr.TYPE, type, true);
  dv.setUint32(GpuHdr.FLAGS, flags, true);
  dv.setUint32(GpuHdr.FENCE_ID, fence, true);
  return h;
}

describe('GpuDriver', { timeout: 20_000 }, () => {
  it('5.7.6.7 fence_id: a fenced response without VIRTIO_GPU_FLAG_FENCE or with another fence id is refused', async () => {
    let mode = 0;
    const dev = new ScriptedGpu((req) => {
      const fence = new DataView(req.buffer).getUint32(GpuHdr.FENCE_ID, true);
      return mode === 0 ? header(GpuResp.OK_NODATA) : mode === 1 ? header(GpuResp.OK_NODATA, GPU_FLAG_FENCE, fence + 1) : header(GpuResp.OK_NODATA, GPU_FLAG_FENCE, fence);
    });
    const gpu = new GpuDriver(createTestPair(dev, { queueSize: 16 }).ctx, { fence: true });
    await assert.rejects(gpu.unref(1), /does not carry fence 1/);
    mode = 1;
    await assert.rejects(gpu.unref(1), /does not carry fence 2/);
    mode = 2;
    await gpu.unref(1);
    const sent = new DataView(dev.requests[2]!.buffer);
    assert.equal(sent.getUint32(GpuHdr.FLAGS, true), GPU_FLAG_FENCE);
    assert.equal(sent.getUint32(GpuHdr.FENCE_ID, true), 3, 'fence ids count up');
  });

  it('an error response is a GpuCommandError with its code; an EDID size beyond 1024 bytes is refused', async () => {
    const dev = new ScriptedGpu((req) => {
      const type = new DataView(req.buffer).getUint32(0, true);
      if (type !== GpuCmd.GET_EDID) return header(GpuResp.ERR_OUT_OF_MEMORY);
      const r = new Uint8Array(GpuEdid.RESP_SIZE);
      r.set(header(GpuResp.OK_EDID));
      new DataView(r.buffer).setUint32(GpuEdid.RESP_SIZE_FIELD, 5000, true);
      return r;
    });
    const gpu = new GpuDriver(createTestPair(dev, { queueSize: 16 }).ctx);
    await assert.rejects(gpu.createResource2d(1, GpuFormat.B8G8R8X8_UNORM, 8, 8), (e: unknown) => e instanceof GpuCommandError && e.response === GpuResp.ERR_OUT_OF_MEMORY && e.command === GpuCmd.RESOURCE_CREATE_2D);
    await assert.rejects(gpu.getEdid(0), /EDID size 5000/);
  });

  it('requests as the device reads them: create_2d fields, attach_backing with its entries in order', async () => {
    const dev = new ScriptedGpu(() => header(GpuResp.OK_NODATA));
    const gpu = new GpuDriver(createTestPair(dev, { queueSize: 16 }).ctx);
    await gpu.createResource2d(9, GpuFormat.A8B8G8R8_UNORM, 640, 480);
    await gpu.attachBacking(9, [{ addr: 0x1_2345_6000, len: 4096 }, { addr: 0x3000, len: 100 }]);
    const c = new DataView(dev.requests[0]!.buffer);
    assert.deepEqual([0, 24, 28, 32, 36].map((o) => c.getUint32(o, true)), [GpuCmd.RESOURCE_CREATE_2D, 9, GpuFormat.A8B8G8R8_UNORM, 640, 480]);
    const a = new DataView(dev.requests[1]!.buffer);
    assert.equal(dev.requests[1]!.length, 32 + 2 * 16);
    assert.deepEqual([24, 28, 32, 36, 40, 48, 56].map((o) => a.getUint32(o, true)), [9, 2, 0x2345_6000, 1, 4096, 0x3000, 100]);
  });
});
