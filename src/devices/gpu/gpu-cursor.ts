/**
 * 5.7.6.10 the cursorq: UPDATE_CURSOR loads the pointer image from a 64x64 resource (resource 0
 * hides the pointer) and moves it; MOVE_CURSOR only moves it (its other fields are ignored). The
 * response (OK_NODATA or an error) is written when the driver gave room for one (Linux's
 * virtio-gpu posts cursor commands without a response buffer).
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { GPU_CURSOR_SIZE, GpuCmd, GpuCursor, GpuResp } from '../../spec/gpu.js';
import { GpuCommandIo } from './gpu-command-io.js';
import type { GpuResource } from './gpu-resource.js';

/** The pointer as the host shows it. */
export interface GpuCursorView {
  /** An image is loaded (UPDATE_CURSOR with a resource). */
  readonly visible: boolean;
  /** The scanout the pointer is on (UPDATE_CURSOR / MOVE_CURSOR pos.scanout_id). */
  readonly scanoutId: number;
  /** Pointer position in scanout pixels (pos.x). */
  readonly x: number;
  /** Pointer position in scanout pixels (pos.y). */
  readonly y: number;
  /** Hotspot within the 64 x 64 image, in pixels from its left (hot_x). */
  readonly hotX: number;
  /** Hotspot within the image, in pixels from its top (hot_y). */
  readonly hotY: number;
  /** The resource the image was loaded from; 0 when no image is loaded. */
  readonly resourceId: number;
  /** 64 x 64 RGBA pixels. */
  readonly rgba: Uint8Array;
}

export interface GpuCursorHost {
  readonly numScanouts: number;
  resource(id: number): GpuResource | undefined;
  cursorChanged(cursor: GpuCursorView): void;
}

export class GpuCursorHandler implements GpuCursorView {
  visible = false;
  scanoutId = 0;
  x = 0;
  y = 0;
  hotX = 0;
  hotY = 0;
  resourceId = 0;
  readonly rgba = new Uint8Array(GPU_CURSOR_SIZE * GPU_CURSOR_SIZE * 4);
  private readonly io = new GpuCommandIo();

  constructor(private readonly host: GpuCursorHost) {}

  configure(littleEndian: boolean): void {
    this.io.le = littleEndian;
  }

  reset(): void {
    this.visible = false;
    this.scanoutId = this.x = this.y = this.hotX = this.hotY = this.resourceId = 0;
    this.rgba.fill(0);
  }

  /** Resource `id` was unref'ed: the loaded image stays (it was copied), the id is forgotten. */
  resourceRemoved(id: number): void {
    if (this.resourceId === id) this.resourceId = 0;
  }

  readonly serve = (req: QueueRequest): number => {
    const chain = req.chain;
    const io = this.io;
    if (!io.begin(chain) || !io.need(GpuCursor.SIZE)) return io.respond(chain, GpuResp.ERR_UNSPEC);
    return io.respond(chain, this.command());
  };

  private command(): number {
    const io = this.io;
    const type = io.type;
    if (type !== GpuCmd.UPDATE_CURSOR && type !== GpuCmd.MOVE_CURSOR) return GpuResp.ERR_UNSPEC;
    const scanoutId = io.u32(GpuCursor.SCANOUT_ID);
    if (scanoutId >= this.host.numScanouts) return GpuResp.ERR_INVALID_SCANOUT_ID;
    if (type === GpuCmd.UPDATE_CURSOR) {
      const id = io.u32(GpuCursor.RESOURCE_ID);
      if (id === 0) {
        this.visible = false;
        this.resourceId = 0;
      } else {
        const res = this.host.resource(id);
        if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
        if (res.width !== GPU_CURSOR_SIZE || res.height !== GPU_CURSOR_SIZE) return GpuResp.ERR_INVALID_PARAMETER;
        this.load(res);
        this.visible = true;
        this.resourceId = id;
      }
      this.hotX = io.u32(GpuCursor.HOT_X);
      this.hotY = io.u32(GpuCursor.HOT_Y);
    }
    this.scanoutId = scanoutId;
    this.x = io.u32(GpuCursor.X);
    this.y = io.u32(GpuCursor.Y);
    this.host.cursorChanged(this);
    return GpuResp.OK_NODATA;
  }

  private load(res: GpuResource): void {
    const [ri, gi, bi, ai] = res.channels;
    const src = res.pixels;
    const dst = this.rgba;
    for (let s = 0; s < dst.length; s += 4) {
      dst[s] = src[s + ri]!;
      dst[s + 1] = src[s + gi]!;
      dst[s + 2] = src[s + bi]!;
      dst[s + 3] = ai < 0 ? 255 : src[s + ai]!;
    }
  }
}
