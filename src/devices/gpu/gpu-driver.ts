/**
 * 5.7 GPU Device, driver side (2D): every controlq command (display info, EDID, resources,
 * backing, scanouts, transfers, flushes) and the cursorq commands, each one chain of the
 * device-readable request and a device-writable response. A response of another type than the
 * command's success type is a GpuCommandError carrying the VIRTIO_GPU_RESP_ERR_* code. With
 * `fence` a command carries VIRTIO_GPU_FLAG_FENCE and a fence id, and the driver checks the
 * response echoes both (5.7.6.7).
 *
 * Initialisation as 5.7.5 suggests: `getDisplayInfo` (and `getEdid` with EDID negotiated) before
 * the scanout set-up, falling back to 1024 x 768 on scanout 0 when no display is enabled
 * (`preferredMode`). Display changes: a configuration change with VIRTIO_GPU_EVENT_DISPLAY in
 * events_read is cleared through events_clear and reported to `onDisplayChange` listeners.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields, writeConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  GPU_CONFIG_LAYOUT,
  GPU_EVENT_DISPLAY,
  GPU_FLAG_FENCE,
  GpuAttachBacking,
  GpuCmd,
  GpuCreate2d,
  GpuCursor,
  GpuDisplayInfo,
  GpuEdid,
  GpuF,
  GpuFlush,
  GpuFormat,
  GpuHdr,
  GpuMemEntry,
  GpuQueue,
  GpuRect,
  GpuResourceReq,
  GpuResp,
  GpuSetScanout,
  GpuTransfer2d,
} from '../../spec/gpu.js';
import type { GpuRectangle } from './gpu-scanout.js';

/** The device answered a command with another type than its success response. */
export class GpuCommandError extends VirtioError {
  constructor(
    /** The VIRTIO_GPU_CMD_* type sent. */
    readonly command: number,
    /** The VIRTIO_GPU_RESP_* type received: an error (VIRTIO_GPU_RESP_ERR_*) or an unexpected one. */
    readonly response: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-gpu command 0x${command.toString(16)} failed: response 0x${response.toString(16)}`);
  }
}

/** Options of GpuDriver. */
export interface GpuDriverOptions {
  /** Fence every command (VIRTIO_GPU_FLAG_FENCE). Default false. */
  fence?: boolean;
}

/** 5.7.4 configuration as numbers. */
export interface GpuDriverConfig {
  /** `events_read` of struct virtio_gpu_config. */
  readonly eventsRead: number;
  /** `num_scanouts` of struct virtio_gpu_config. */
  readonly numScanouts: number;
  /** `num_capsets` of struct virtio_gpu_config. */
  readonly numCapsets: number;
}

/** One entry of GET_DISPLAY_INFO. */
export interface GpuDisplayInfoEntry extends GpuRectangle {
  /** The display is connected (struct virtio_gpu_display_one `enabled`). */
  readonly enabled: boolean;
  /** `flags` of struct virtio_gpu_display_one (none defined by the spec). */
  readonly flags: number;
}

/** A guest framebuffer: a resource, its backing in guest memory, the scanout it is shown on. */
export interface GpuFramebuffer {
  /** The resource holding the image. */
  readonly resourceId: number;
  /** VIRTIO_GPU_FORMAT_* pixel format. */
  readonly format: number;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** Bytes per row of the backing: width * 4. */
  readonly stride: number;
  /** Guest address of the backing (width * height * 4 bytes, one contiguous entry). */
  readonly addr: number;
}

/** 5.7.5 the fallback when no display is enabled: 1024 x 768 on scanout 0. */
export const GPU_FALLBACK_MODE = { scanoutId: 0, width: 1024, height: 768 } as const;

/**
 * The virtio-gpu driver (5.7): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class GpuDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<GpuDriver, GpuDriverOptions> = {
    name: 'virtio-gpu',
    deviceId: DeviceId.GPU,
    wantedFeatures: GpuF.EDID,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new GpuDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly control: RequestQueue;
  private readonly cursorq: RequestQueue;
  private readonly fence: boolean;
  private nextFence = 1;
  private readonly displayListeners = new Set<() => void>();
  private readonly framebuffers = new Map<number, GpuFramebuffer>();

  constructor(ctx: DriverContext, opts: GpuDriverOptions = {}) {
    checkDriverContext(GpuDriver.type, ctx);
    this.ctx = ctx;
    this.fence = opts.fence ?? false;
    this.control = new RequestQueue(ctx, GpuQueue.CONTROLQ);
    this.cursorq = new RequestQueue(ctx, GpuQueue.CURSORQ);
    ctx.onConfigChange(() => this.configChanged());
  }

  /** The negotiated features. */
  get features(): bigint {
    return this.ctx.features;
  }

  /** 5.7.4: the configuration now. */
  get config(): GpuDriverConfig {
    const v = readConfigFields(GPU_CONFIG_LAYOUT, ['eventsRead', 'numScanouts', 'numCapsets'], (o, n) => this.ctx.readConfig(o, n), this.ctx.littleEndian);
    return { eventsRead: v.eventsRead, numScanouts: v.numScanouts, numCapsets: v.numCapsets };
  }

  /** Clears `mask` in events_read (write-to-clear events_clear). */
  clearEvents(mask: number): void {
    writeConfigField(GPU_CONFIG_LAYOUT, 'eventsClear', mask, (o, b) => this.ctx.writeConfig(o, b), this.ctx.littleEndian);
  }

  /** Calls `listener` after each VIRTIO_GPU_EVENT_DISPLAY (already cleared); returns the unsubscribe function. */
  onDisplayChange(listener: () => void): () => void {
    this.displayListeners.add(listener);
    return () => this.displayListeners.delete(listener);
  }

  private configChanged(): void {
    if ((this.config.eventsRead & GPU_EVENT_DISPLAY) === 0) return;
    this.clearEvents(GPU_EVENT_DISPLAY);
    for (const l of this.displayListeners) l();
  }

  // ---- commands ----

  /**
   * Sends one command: `body` after a header of `type` (flags, fence id filled here), a response
   * buffer of `respSize` bytes; returns the response (header included) after checking its type
   * is `okType`. `queue` 1 sends on the cursorq.
   */
  async command(type: number, body: Uint8Array, respSize: number, okType: number, queue: number = GpuQueue.CONTROLQ): Promise<Uint8Array> {
    const le = this.ctx.littleEndian;
    const req = new Uint8Array(GpuHdr.SIZE + body.length);
    const dv = new DataView(req.buffer);
    dv.setUint32(GpuHdr.TYPE, type, le);
    const fenceId = this.fence ? this.nextFence++ : 0;
    if (this.fence) {
      dv.setUint32(GpuHdr.FLAGS, GPU_FLAG_FENCE, le);
      setU64(dv, GpuHdr.FENCE_ID, fenceId, le);
    }
    req.set(body, GpuHdr.SIZE);
    const resp = (await this.exchange(req, Math.max(respSize, GpuHdr.SIZE), queue)).response;
    const rv = new DataView(resp.buffer, resp.byteOffset, resp.length);
    const got = rv.getUint32(GpuHdr.TYPE, le);
    if (this.fence) {
      // 5.7.6.7 fence_id: the device sets the flag and copies the id.
      if ((rv.getUint32(GpuHdr.FLAGS, le) & GPU_FLAG_FENCE) === 0 || getU64(rv, GpuHdr.FENCE_ID, le) !== fenceId) {
        throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-gpu: the response to 0x${type.toString(16)} does not carry fence ${fenceId}`);
      }
    }
    if (got !== okType) throw new GpuCommandError(type, got);
    return resp;
  }

  /** Sends `request` as it is with a `respSize`-byte response buffer; resolves with the bytes the device wrote (by the used length). */
  async raw(request: Uint8Array, respSize: number, queue: number = GpuQueue.CONTROLQ): Promise<Uint8Array> {
    const { used, response } = await this.exchange(request, respSize, queue);
    return response.subarray(0, Math.min(used, respSize));
  }

  /**
   * One request and its zero-filled response buffer; resolves with the used length and the
   * whole response buffer. `command` reads the response header, never the used length: QEMU
   * 7.2 leaves it 0 in used packed descriptors.
   */
  private async exchange(request: Uint8Array, respSize: number, queue: number): Promise<{ used: number; response: Uint8Array }> {
    const { dma, memory } = this.ctx;
    const reqAddr = dma.alloc(Math.max(1, request.length), 8);
    const respAddr = respSize > 0 ? dma.alloc(respSize, 8) : 0;
    try {
      memory.write(reqAddr, request);
      if (respSize > 0) memory.fill(respAddr, respSize, 0);
      const q = queue === GpuQueue.CURSORQ ? this.cursorq : this.control;
      const used = await q.submit([{ addr: reqAddr, len: request.length }], respSize > 0 ? [{ addr: respAddr, len: respSize }] : []);
      const response = new Uint8Array(respSize);
      if (respSize > 0) memory.read(respAddr, response);
      return { used, response };
    } finally {
      dma.free(reqAddr);
      if (respSize > 0) dma.free(respAddr);
    }
  }

  private body(size: number, fill: (dv: DataView, le: boolean) => void): Uint8Array {
    const b = new Uint8Array(size - GpuHdr.SIZE);
    fill(new DataView(b.buffer), this.ctx.littleEndian);
    return b;
  }

  /** GET_DISPLAY_INFO: one entry per scanout (num_scanouts of them). */
  async getDisplayInfo(): Promise<GpuDisplayInfoEntry[]> {
    const resp = await this.command(GpuCmd.GET_DISPLAY_INFO, new Uint8Array(0), GpuDisplayInfo.SIZE, GpuResp.OK_DISPLAY_INFO);
    if (resp.length < GpuDisplayInfo.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'virtio-gpu: short display info');
    const dv = new DataView(resp.buffer, resp.byteOffset);
    const le = this.ctx.littleEndian;
    const n = Math.min(this.config.numScanouts, 16);
    const out: GpuDisplayInfoEntry[] = [];
    for (let i = 0; i < n; i++) {
      const at = GpuHdr.SIZE + i * GpuDisplayInfo.ONE_SIZE;
      out.push({
        x: dv.getUint32(at + GpuRect.X, le),
        y: dv.getUint32(at + GpuRect.Y, le),
        width: dv.getUint32(at + GpuRect.WIDTH, le),
        height: dv.getUint32(at + GpuRect.HEIGHT, le),
        enabled: dv.getUint32(at + GpuDisplayInfo.ENABLED, le) !== 0,
        flags: dv.getUint32(at + GpuDisplayInfo.FLAGS, le),
      });
    }
    return out;
  }

  /** 5.7.5: the first enabled display's mode, or the 1024 x 768 fallback on scanout 0. */
  async preferredMode(): Promise<{
    /** The scanout to set the mode on. */
    scanoutId: number;
    /** Width in pixels. */
    width: number;
    /** Height in pixels. */
    height: number;
  }> {
    const info = await this.getDisplayInfo();
    const i = info.findIndex((d) => d.enabled && d.width > 0 && d.height > 0);
    return i < 0 ? { ...GPU_FALLBACK_MODE } : { scanoutId: i, width: info[i]!.width, height: info[i]!.height };
  }

  /** GET_EDID (needs VIRTIO_GPU_F_EDID): the EDID blob of `scanout`. */
  async getEdid(scanout: number): Promise<Uint8Array> {
    const body = this.body(GpuEdid.REQ_SIZE, (dv, le) => dv.setUint32(GpuEdid.REQ_SCANOUT - GpuHdr.SIZE, scanout, le));
    const resp = await this.command(GpuCmd.GET_EDID, body, GpuEdid.RESP_SIZE, GpuResp.OK_EDID);
    const size = new DataView(resp.buffer, resp.byteOffset).getUint32(GpuEdid.RESP_SIZE_FIELD, this.ctx.littleEndian);
    if (size > GpuEdid.MAX_BYTES || GpuEdid.RESP_DATA + size > resp.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-gpu: EDID size ${size}`);
    return resp.slice(GpuEdid.RESP_DATA, GpuEdid.RESP_DATA + size);
  }

  /**
   * VIRTIO_GPU_CMD_RESOURCE_CREATE_2D: a `width` x `height` resource of `format` with id
   * `resourceId`.
   */
  async createResource2d(resourceId: number, format: number, width: number, height: number): Promise<void> {
    const body = this.body(GpuCreate2d.SIZE, (dv, le) => {
      dv.setUint32(GpuCreate2d.RESOURCE_ID - GpuHdr.SIZE, resourceId, le);
      dv.setUint32(GpuCreate2d.FORMAT - GpuHdr.SIZE, format, le);
      dv.setUint32(GpuCreate2d.WIDTH - GpuHdr.SIZE, width, le);
      dv.setUint32(GpuCreate2d.HEIGHT - GpuHdr.SIZE, height, le);
    });
    await this.command(GpuCmd.RESOURCE_CREATE_2D, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  /** VIRTIO_GPU_CMD_RESOURCE_UNREF: destroys the resource. */
  async unref(resourceId: number): Promise<void> {
    await this.resourceCommand(GpuCmd.RESOURCE_UNREF, resourceId);
    const fb = this.framebuffers.get(resourceId);
    if (fb !== undefined) {
      this.framebuffers.delete(resourceId);
      this.ctx.dma.free(fb.addr);
    }
  }

  /** RESOURCE_ATTACH_BACKING with a scatter list of guest memory. */
  async attachBacking(resourceId: number, entries: readonly { addr: number; len: number }[]): Promise<void> {
    const body = this.body(GpuAttachBacking.SIZE + entries.length * GpuMemEntry.SIZE, (dv, le) => {
      dv.setUint32(GpuAttachBacking.RESOURCE_ID - GpuHdr.SIZE, resourceId, le);
      dv.setUint32(GpuAttachBacking.NR_ENTRIES - GpuHdr.SIZE, entries.length, le);
      entries.forEach((e, i) => {
        const at = GpuAttachBacking.SIZE - GpuHdr.SIZE + i * GpuMemEntry.SIZE;
        setU64(dv, at + GpuMemEntry.ADDR, e.addr, le);
        dv.setUint32(at + GpuMemEntry.LENGTH, e.len, le);
      });
    });
    await this.command(GpuCmd.RESOURCE_ATTACH_BACKING, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  /** VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING: takes the guest pages away from the resource. */
  async detachBacking(resourceId: number): Promise<void> {
    await this.resourceCommand(GpuCmd.RESOURCE_DETACH_BACKING, resourceId);
  }

  /** SET_SCANOUT: shows `rect` of the resource on `scanoutId` (resource 0 disables the scanout). */
  async setScanout(scanoutId: number, resourceId: number, rect: GpuRectangle): Promise<void> {
    const body = this.body(GpuSetScanout.SIZE, (dv, le) => {
      setRect(dv, GpuSetScanout.RECT - GpuHdr.SIZE, rect, le);
      dv.setUint32(GpuSetScanout.SCANOUT_ID - GpuHdr.SIZE, scanoutId, le);
      dv.setUint32(GpuSetScanout.RESOURCE_ID - GpuHdr.SIZE, resourceId, le);
    });
    await this.command(GpuCmd.SET_SCANOUT, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  /** TRANSFER_TO_HOST_2D: `rect` of the resource from its backing at byte `offset`. */
  async transferToHost2d(resourceId: number, rect: GpuRectangle, offset: number): Promise<void> {
    const body = this.body(GpuTransfer2d.SIZE, (dv, le) => {
      setRect(dv, GpuTransfer2d.RECT - GpuHdr.SIZE, rect, le);
      setU64(dv, GpuTransfer2d.OFFSET - GpuHdr.SIZE, offset, le);
      dv.setUint32(GpuTransfer2d.RESOURCE_ID - GpuHdr.SIZE, resourceId, le);
    });
    await this.command(GpuCmd.TRANSFER_TO_HOST_2D, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  /** RESOURCE_FLUSH of `rect` to every scanout showing the resource. */
  async flush(resourceId: number, rect: GpuRectangle): Promise<void> {
    const body = this.body(GpuFlush.SIZE, (dv, le) => {
      setRect(dv, GpuFlush.RECT - GpuHdr.SIZE, rect, le);
      dv.setUint32(GpuFlush.RESOURCE_ID - GpuHdr.SIZE, resourceId, le);
    });
    await this.command(GpuCmd.RESOURCE_FLUSH, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  /** UPDATE_CURSOR on the cursorq: image from `resourceId` (64 x 64; 0 hides it), hot spot, position. */
  async updateCursor(scanoutId: number, x: number, y: number, resourceId: number, hotX = 0, hotY = 0): Promise<void> {
    await this.cursorCommand(GpuCmd.UPDATE_CURSOR, scanoutId, x, y, resourceId, hotX, hotY);
  }

  /** MOVE_CURSOR on the cursorq. */
  async moveCursor(scanoutId: number, x: number, y: number): Promise<void> {
    await this.cursorCommand(GpuCmd.MOVE_CURSOR, scanoutId, x, y, 0, 0, 0);
  }

  /**
   * A cursorq command, posted as Linux posts it: the request only, no response buffer (QEMU
   * writes no response on the cursorq). Resolves once the device used it.
   */
  private async cursorCommand(type: number, scanoutId: number, x: number, y: number, resourceId: number, hotX: number, hotY: number): Promise<void> {
    const le = this.ctx.littleEndian;
    const req = new Uint8Array(GpuCursor.SIZE);
    const dv = new DataView(req.buffer);
    dv.setUint32(GpuHdr.TYPE, type, le);
    dv.setUint32(GpuCursor.SCANOUT_ID, scanoutId, le);
    dv.setUint32(GpuCursor.X, x, le);
    dv.setUint32(GpuCursor.Y, y, le);
    dv.setUint32(GpuCursor.RESOURCE_ID, resourceId, le);
    dv.setUint32(GpuCursor.HOT_X, hotX, le);
    dv.setUint32(GpuCursor.HOT_Y, hotY, le);
    await this.raw(req, 0, GpuQueue.CURSORQ);
  }

  private async resourceCommand(type: number, resourceId: number): Promise<void> {
    const body = this.body(GpuResourceReq.SIZE, (dv, le) => dv.setUint32(GpuResourceReq.RESOURCE_ID - GpuHdr.SIZE, resourceId, le));
    await this.command(type, body, GpuHdr.SIZE, GpuResp.OK_NODATA);
  }

  // ---- framebuffers (5.7.6.1, 5.7.6.2) ----

  /**
   * Creates a framebuffer: a 2D resource, its backing allocated in guest memory (one entry), and
   * (with `scanoutId`) SET_SCANOUT of the whole of it.
   */
  async createFramebuffer(opts: { resourceId: number; width: number; height: number; format?: number; scanoutId?: number }): Promise<GpuFramebuffer> {
    const format = opts.format ?? GpuFormat.B8G8R8X8_UNORM;
    const stride = opts.width * 4;
    await this.createResource2d(opts.resourceId, format, opts.width, opts.height);
    const addr = this.ctx.dma.alloc(stride * opts.height, 4096);
    const fb: GpuFramebuffer = { resourceId: opts.resourceId, format, width: opts.width, height: opts.height, stride, addr };
    try {
      await this.attachBacking(opts.resourceId, [{ addr, len: stride * opts.height }]);
      if (opts.scanoutId !== undefined) await this.setScanout(opts.scanoutId, opts.resourceId, { x: 0, y: 0, width: opts.width, height: opts.height });
    } catch (e) {
      this.ctx.dma.free(addr);
      throw e;
    }
    this.framebuffers.set(opts.resourceId, fb);
    return fb;
  }

  /** Writes pixels (in the framebuffer's format) into its backing at pixel (x, y), `width` pixels a row. */
  draw(fb: GpuFramebuffer, x: number, y: number, width: number, pixels: Uint8Array): void {
    const rows = pixels.length / (width * 4);
    for (let r = 0; r < rows; r++) {
      this.ctx.memory.write(fb.addr + (y + r) * fb.stride + x * 4, pixels, r * width * 4, width * 4);
    }
  }

  /** 5.7.6.2: TRANSFER_TO_HOST_2D then RESOURCE_FLUSH of `rect` (default the whole framebuffer). */
  async present(fb: GpuFramebuffer, rect: GpuRectangle = { x: 0, y: 0, width: fb.width, height: fb.height }): Promise<void> {
    await this.transferToHost2d(fb.resourceId, rect, rect.y * fb.stride + rect.x * 4);
    await this.flush(fb.resourceId, rect);
  }

  /** Stops using the device: pending commands fail with RequestAbortedError('detached'). */
  detach(): void {
    this.control.detach();
    this.cursorq.detach();
  }
}

function setRect(dv: DataView, at: number, r: GpuRectangle, le: boolean): void {
  dv.setUint32(at + GpuRect.X, r.x, le);
  dv.setUint32(at + GpuRect.Y, r.y, le);
  dv.setUint32(at + GpuRect.WIDTH, r.width, le);
  dv.setUint32(at + GpuRect.HEIGHT, r.height, le);
}

function setU64(dv: DataView, at: number, v: number, le: boolean): void {
  const lo = v >>> 0;
  const hi = Math.floor(v / 0x1_0000_0000) >>> 0;
  dv.setUint32(le ? at : at + 4, lo, le);
  dv.setUint32(le ? at + 4 : at, hi, le);
}

function getU64(dv: DataView, at: number, le: boolean): number {
  return dv.getUint32(le ? at + 4 : at, le) * 0x1_0000_0000 + dv.getUint32(le ? at : at + 4, le);
}
