/**
 * 5.7.6.8 one scanout (display head): what GET_DISPLAY_INFO reports for it (enabled, preferred
 * size), the resource and rectangle SET_SCANOUT linked to it, and the picture the host shows:
 * an RGBA buffer of the rectangle's size, updated on RESOURCE_FLUSH (and on SET_SCANOUT), read
 * by `GpuDevice.scanout(i)`, a change callback and `snapshotPng`.
 */
import type { GpuResource } from './gpu-resource.js';

/** A rectangle in pixels (struct virtio_gpu_rect). */
export interface GpuRectangle {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** What the host shows of a scanout (read-only for the embedding application). */
export interface GpuScanoutView {
  /** The scanout's index, 0 .. num_scanouts - 1 (5.7.4). */
  readonly id: number;
  /** GET_DISPLAY_INFO: the display is connected. */
  readonly enabled: boolean;
  /** GET_DISPLAY_INFO: preferred size. */
  readonly preferredWidth: number;
  /** GET_DISPLAY_INFO: preferred height in pixels (with preferredWidth). */
  readonly preferredHeight: number;
  /** The resource shown (0: the scanout is disabled). */
  readonly resourceId: number;
  /** Size of the shown rectangle (0 x 0 when disabled). */
  readonly width: number;
  readonly height: number;
  /** The picture: width * height RGBA pixels, rows top to bottom. */
  readonly rgba: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export class GpuScanout implements GpuScanoutView {
  enabled: boolean;
  preferredWidth: number;
  preferredHeight: number;
  resourceId = 0;
  resource: GpuResource | null = null;
  /** The rectangle of the resource shown. */
  x = 0;
  y = 0;
  width = 0;
  height = 0;
  rgba: Uint8Array = EMPTY;
  /** The rectangle the last show or flush updated (reused: read it in the change callback). */
  private readonly damage = { x: 0, y: 0, width: 0, height: 0 };

  constructor(
    readonly id: number,
    width: number,
    height: number,
    enabled: boolean,
  ) {
    this.preferredWidth = width;
    this.preferredHeight = height;
    this.enabled = enabled;
  }

  /** SET_SCANOUT with a resource: shows `r` of `res` (checked by the caller to lie inside it). */
  show(res: GpuResource, r: GpuRectangle): GpuRectangle {
    this.detach();
    this.resource = res;
    this.resourceId = res.id;
    res.scanoutMask |= 1 << this.id;
    this.x = r.x;
    this.y = r.y;
    // A mode set, not a per-frame path: the buffer follows the rectangle's size.
    if (this.width !== r.width || this.height !== r.height) this.rgba = new Uint8Array(r.width * r.height * 4);
    this.width = r.width;
    this.height = r.height;
    this.update(0, 0, r.width, r.height);
    return this.damaged(0, 0, r.width, r.height);
  }

  private damaged(x: number, y: number, width: number, height: number): GpuRectangle {
    const d = this.damage;
    d.x = x;
    d.y = y;
    d.width = width;
    d.height = height;
    return d;
  }

  /** SET_SCANOUT with resource 0, or the resource's unref: nothing is shown. */
  detach(): void {
    if (this.resource !== null) this.resource.scanoutMask &= ~(1 << this.id);
    this.resource = null;
    this.resourceId = 0;
    this.width = 0;
    this.height = 0;
    this.rgba = EMPTY;
  }

  /**
   * RESOURCE_FLUSH of `r` (resource coordinates): converts the part of it inside this scanout
   * into RGBA. Returns the updated rectangle in scanout coordinates, or null when none.
   */
  flush(r: GpuRectangle): GpuRectangle | null {
    const x0 = Math.max(r.x, this.x);
    const y0 = Math.max(r.y, this.y);
    const x1 = Math.min(r.x + r.width, this.x + this.width);
    const y1 = Math.min(r.y + r.height, this.y + this.height);
    if (x1 <= x0 || y1 <= y0) return null;
    this.update(x0 - this.x, y0 - this.y, x1 - x0, y1 - y0);
    return this.damaged(x0 - this.x, y0 - this.y, x1 - x0, y1 - y0);
  }

  /** Converts the scanout rectangle (sx, sy, w, h) from the resource's format to RGBA. */
  private update(sx: number, sy: number, w: number, h: number): void {
    const res = this.resource!;
    const [ri, gi, bi, ai] = res.channels;
    const src = res.pixels;
    const dst = this.rgba;
    const stride = res.stride;
    for (let row = 0; row < h; row++) {
      let s = (this.y + sy + row) * stride + (this.x + sx) * 4;
      let d = ((sy + row) * this.width + sx) * 4;
      for (let col = 0; col < w; col++, s += 4, d += 4) {
        dst[d] = src[s + ri]!;
        dst[d + 1] = src[s + gi]!;
        dst[d + 2] = src[s + bi]!;
        dst[d + 3] = ai < 0 ? 255 : src[s + ai]!;
      }
    }
  }
}
