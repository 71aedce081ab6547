/**
 * 5.7.6.8 the controlq: every 2D command, each answered with OK_NODATA (or its data response)
 * or one of the VIRTIO_GPU_RESP_ERR_* codes; never a throw. Commands are processed
 * synchronously, so a response is sent only once its command is complete, fenced or not
 * (device/gpu/7, device/gpu/8). Error choices follow QEMU's 2D device where the spec leaves
 * them open: a short request or an unsupported command is ERR_UNSPEC; an unknown resource is
 * ERR_INVALID_RESOURCE_ID; a rectangle outside its resource, a bad format or size is
 * ERR_INVALID_PARAMETER; past the host memory bounds is ERR_OUT_OF_MEMORY.
 *
 * Host memory is bounded per resource (`maxResourceBytes`), in number of resources, in backing
 * entries per resource, and in total (pixels plus 12 bytes a backing entry: `maxTotalBytes`).
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { GpuF, GpuAttachBacking, GpuCapsetInfo, GpuCmd, GpuCreate2d, GpuDisplayInfo, GpuEdid, GpuFlush, GpuMemEntry, GpuResourceReq, GpuResp, GpuSetScanout, GpuTransfer2d, gpuFormatChannels, GpuRect } from '../../spec/gpu.js';
import { GpuCommandIo } from './gpu-command-io.js';
import { GpuResource, guestRangeMapped } from './gpu-resource.js';
import type { GpuRectangle, GpuScanout } from './gpu-scanout.js';

/** Host memory bounds of a GPU device (guest-controlled allocations). */
export interface GpuLimits {
  /** Pixel bytes of one resource at most. */
  readonly maxResourceBytes: number;
  /** Pixel bytes plus backing entries (12 bytes each) of all resources at most. */
  readonly maxTotalBytes: number;
  /** Resources at most. */
  readonly maxResources: number;
  /** Entries of one RESOURCE_ATTACH_BACKING at most (QEMU: 16384). */
  readonly maxBackingEntries: number;
}

/** What the controlq handler needs of its device. */
export interface GpuControlHost {
  /** The negotiated features. */
  features(): bigint;
  readonly scanouts: readonly GpuScanout[];
  /** The EDID of scanout `i` (128 bytes). */
  edid(i: number): Uint8Array;
  /** A scanout's picture changed in `rect` (scanout coordinates; null: it was disabled). */
  scanoutChanged(scanout: GpuScanout, rect: GpuRectangle | null): void;
  /** Resource `id` is going away (the cursor forgets it). */
  resourceRemoved(id: number): void;
}

/** Host bytes a backing entry costs (its address and length). */
const BACKING_ENTRY_COST = 12;

export class GpuControlHandler {
  readonly resources = new Map<number, GpuResource>();
  /** Host bytes the resources hold (pixels and backing entries). */
  hostBytes = 0;
  private readonly io = new GpuCommandIo();
  private readonly displayInfo = new Uint8Array(GpuDisplayInfo.SIZE - 24);
  private readonly displayView = new DataView(this.displayInfo.buffer);
  private readonly edidResp = new Uint8Array(GpuEdid.RESP_SIZE - 24);
  private readonly edidView = new DataView(this.edidResp.buffer);
  private readonly entry = new Uint8Array(GpuMemEntry.SIZE);
  private readonly entryView = new DataView(this.entry.buffer);
  /** The rectangle of the request being served (reused). */
  private readonly rect = { x: 0, y: 0, width: 0, height: 0 };

  constructor(
    private readonly host: GpuControlHost,
    private readonly limits: GpuLimits,
  ) {}

  configure(littleEndian: boolean): void {
    this.io.le = littleEndian;
  }

  /** Device reset: every resource is gone. */
  reset(): void {
    this.resources.clear();
    this.hostBytes = 0;
  }

  readonly serve = (req: QueueRequest): number => {
    const chain = req.chain;
    const io = this.io;
    if (!io.begin(chain)) return io.respond(chain, GpuResp.ERR_UNSPEC);
    return io.respond(chain, this.dispatch(req), this.payload, this.payloadLen);
  };

  /** The response payload of the command just dispatched (display info, EDID). */
  private payload: Uint8Array | undefined = undefined;
  private payloadLen = 0;

  private dispatch(req: QueueRequest): number {
    this.payload = undefined;
    this.payloadLen = 0;
    switch (this.io.type) {
      case GpuCmd.GET_DISPLAY_INFO:
        return this.getDisplayInfo();
      case GpuCmd.GET_EDID:
        return this.getEdid();
      case GpuCmd.RESOURCE_CREATE_2D:
        return this.create2d();
      case GpuCmd.RESOURCE_UNREF:
        return this.unref();
      case GpuCmd.SET_SCANOUT:
        return this.setScanout();
      case GpuCmd.RESOURCE_FLUSH:
        return this.flush();
      case GpuCmd.TRANSFER_TO_HOST_2D:
        return this.transfer(req);
      case GpuCmd.RESOURCE_ATTACH_BACKING:
        return this.attachBacking(req);
      case GpuCmd.RESOURCE_DETACH_BACKING:
        return this.detachBacking();
      case GpuCmd.GET_CAPSET_INFO:
      case GpuCmd.GET_CAPSET:
        // num_capsets is 0: no capset index or id is valid (5.7.6.8 GET_CAPSET_INFO).
        return this.io.need(GpuCapsetInfo.REQ_SIZE) ? GpuResp.ERR_INVALID_PARAMETER : GpuResp.ERR_UNSPEC;
      default:
        // 3D, blob and UUID commands (their features are not offered), cursor commands on the
        // controlq, and unknown types.
        return GpuResp.ERR_UNSPEC;
    }
  }

  private getDisplayInfo(): number {
    const d = this.displayView;
    const le = this.io.le;
    this.displayInfo.fill(0);
    const scanouts = this.host.scanouts;
    for (let i = 0; i < scanouts.length; i++) {
      const s = scanouts[i]!;
      const at = i * GpuDisplayInfo.ONE_SIZE;
      d.setUint32(at + GpuRect.WIDTH, s.preferredWidth, le);
      d.setUint32(at + GpuRect.HEIGHT, s.preferredHeight, le);
      d.setUint32(at + GpuDisplayInfo.ENABLED, s.enabled ? 1 : 0, le);
    }
    this.payload = this.displayInfo;
    this.payloadLen = this.displayInfo.length;
    return GpuResp.OK_DISPLAY_INFO;
  }

  private getEdid(): number {
    if ((this.host.features() & GpuF.EDID) === 0n) return GpuResp.ERR_UNSPEC;
    if (!this.io.need(GpuEdid.REQ_SIZE)) return GpuResp.ERR_UNSPEC;
    const i = this.io.u32(GpuEdid.REQ_SCANOUT);
    if (i >= this.host.scanouts.length) return GpuResp.ERR_INVALID_PARAMETER;
    const edid = this.host.edid(i);
    this.edidResp.fill(0);
    this.edidView.setUint32(0, edid.length, this.io.le);
    this.edidResp.set(edid, GpuEdid.RESP_DATA - 24);
    this.payload = this.edidResp;
    this.payloadLen = this.edidResp.length;
    return GpuResp.OK_EDID;
  }

  private create2d(): number {
    const io = this.io;
    if (!io.need(GpuCreate2d.SIZE)) return GpuResp.ERR_UNSPEC;
    const id = io.u32(GpuCreate2d.RESOURCE_ID);
    const format = io.u32(GpuCreate2d.FORMAT);
    const width = io.u32(GpuCreate2d.WIDTH);
    const height = io.u32(GpuCreate2d.HEIGHT);
    if (id === 0 || this.resources.has(id)) return GpuResp.ERR_INVALID_RESOURCE_ID;
    const channels = gpuFormatChannels(format);
    if (channels === null || width === 0 || height === 0) return GpuResp.ERR_INVALID_PARAMETER;
    const bytes = width * height * 4; // exact below 2^53: both are 32-bit
    const l = this.limits;
    if (bytes > l.maxResourceBytes || this.hostBytes + bytes > l.maxTotalBytes || this.resources.size >= l.maxResources) {
      return GpuResp.ERR_OUT_OF_MEMORY;
    }
    const res = new GpuResource(id, format, width, height, channels);
    this.resources.set(id, res);
    this.hostBytes += bytes;
    return GpuResp.OK_NODATA;
  }

  private unref(): number {
    if (!this.io.need(GpuResourceReq.SIZE)) return GpuResp.ERR_UNSPEC;
    const res = this.resources.get(this.io.u32(GpuResourceReq.RESOURCE_ID));
    if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
    for (const s of this.host.scanouts) {
      if (s.resource === res) {
        s.detach();
        this.host.scanoutChanged(s, null);
      }
    }
    this.dropBacking(res);
    this.resources.delete(res.id);
    this.hostBytes -= res.hostBytes;
    this.host.resourceRemoved(res.id);
    return GpuResp.OK_NODATA;
  }

  /** Reads struct virtio_gpu_rect at `at` into this.rect. */
  private readRect(at: number): GpuRectangle {
    const io = this.io;
    const r = this.rect;
    r.x = io.u32(at + GpuRect.X);
    r.y = io.u32(at + GpuRect.Y);
    r.width = io.u32(at + GpuRect.WIDTH);
    r.height = io.u32(at + GpuRect.HEIGHT);
    return r;
  }

  private static inside(r: GpuRectangle, res: GpuResource): boolean {
    return r.x + r.width <= res.width && r.y + r.height <= res.height;
  }

  private setScanout(): number {
    const io = this.io;
    if (!io.need(GpuSetScanout.SIZE)) return GpuResp.ERR_UNSPEC;
    const scanout = this.host.scanouts[io.u32(GpuSetScanout.SCANOUT_ID)];
    if (scanout === undefined) return GpuResp.ERR_INVALID_SCANOUT_ID;
    const id = io.u32(GpuSetScanout.RESOURCE_ID);
    if (id === 0) {
      // 5.7.6.8 SET_SCANOUT: resource_id 0 disables the scanout.
      if (scanout.resource !== null) {
        scanout.detach();
        this.host.scanoutChanged(scanout, null);
      }
      return GpuResp.OK_NODATA;
    }
    const res = this.resources.get(id);
    if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
    const r = this.readRect(GpuSetScanout.RECT);
    // "Scanout rectangles must be completely covered by the underlying resource."
    if (r.width === 0 || r.height === 0 || !GpuControlHandler.inside(r, res)) return GpuResp.ERR_INVALID_PARAMETER;
    this.host.scanoutChanged(scanout, scanout.show(res, r));
    return GpuResp.OK_NODATA;
  }

  private flush(): number {
    const io = this.io;
    if (!io.need(GpuFlush.SIZE)) return GpuResp.ERR_UNSPEC;
    const res = this.resources.get(io.u32(GpuFlush.RESOURCE_ID));
    if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
    const r = this.readRect(GpuFlush.RECT);
    if (!GpuControlHandler.inside(r, res)) return GpuResp.ERR_INVALID_PARAMETER;
    if (res.scanoutMask === 0) return GpuResp.OK_NODATA;
    for (const s of this.host.scanouts) {
      if (s.resource !== res) continue;
      const changed = s.flush(r);
      if (changed !== null) this.host.scanoutChanged(s, changed);
    }
    return GpuResp.OK_NODATA;
  }

  private transfer(req: QueueRequest): number {
    const io = this.io;
    if (!io.need(GpuTransfer2d.SIZE)) return GpuResp.ERR_UNSPEC;
    const res = this.resources.get(io.u32(GpuTransfer2d.RESOURCE_ID));
    // As QEMU: a resource without backing is reported as an invalid resource.
    if (res === undefined || res.backingAddrs === null) return GpuResp.ERR_INVALID_RESOURCE_ID;
    const r = this.readRect(GpuTransfer2d.RECT);
    const offset = io.u64(GpuTransfer2d.OFFSET);
    if (!GpuControlHandler.inside(r, res) || offset < 0) return GpuResp.ERR_INVALID_PARAMETER;
    if (r.width === 0 || r.height === 0) return GpuResp.OK_NODATA;
    // The backing has the resource's layout: row k of the box starts `offset + stride * k`.
    const stride = res.stride;
    const rowBytes = r.width * 4;
    if (offset + stride * (r.height - 1) + rowBytes > res.backingBytes) return GpuResp.ERR_INVALID_PARAMETER;
    const memory = req.chain.memory;
    for (let k = 0; k < r.height; k++) {
      if (!res.readBacking(memory, offset + stride * k, res.pixels, (r.y + k) * stride + r.x * 4, rowBytes)) return GpuResp.ERR_UNSPEC;
    }
    return GpuResp.OK_NODATA;
  }

  private attachBacking(req: QueueRequest): number {
    const io = this.io;
    if (!io.need(GpuAttachBacking.SIZE)) return GpuResp.ERR_UNSPEC;
    const res = this.resources.get(io.u32(GpuAttachBacking.RESOURCE_ID));
    if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
    if (res.backingAddrs !== null) return GpuResp.ERR_UNSPEC;
    const n = io.u32(GpuAttachBacking.NR_ENTRIES);
    if (n === 0 || n > this.limits.maxBackingEntries || io.remaining < n * GpuMemEntry.SIZE) return GpuResp.ERR_UNSPEC;
    const cost = n * BACKING_ENTRY_COST;
    if (this.hostBytes + cost > this.limits.maxTotalBytes) return GpuResp.ERR_OUT_OF_MEMORY;
    // The resource's own state (bounded by maxBackingEntries), not per-request scratch.
    const addrs = new Float64Array(n);
    const lens = new Uint32Array(n);
    const memory = req.chain.memory;
    const le = io.le;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (io.readMore(this.entry, 0, GpuMemEntry.SIZE) !== GpuMemEntry.SIZE) return GpuResp.ERR_UNSPEC;
      const v = this.entryView;
      const lo = v.getUint32(le ? 0 : 4, le);
      const hi = v.getUint32(le ? 4 : 0, le);
      const len = v.getUint32(GpuMemEntry.LENGTH, le);
      if (hi > 0x1f_ffff) return GpuResp.ERR_UNSPEC;
      const addr = hi * 0x1_0000_0000 + lo;
      // Every page must be guest memory now (QEMU fails the command when a mapping fails).
      if (len === 0 || !guestRangeMapped(memory, addr, len)) return GpuResp.ERR_UNSPEC;
      addrs[i] = addr;
      lens[i] = len;
      total += len;
    }
    res.backingAddrs = addrs;
    res.backingLens = lens;
    res.backingBytes = total;
    this.hostBytes += cost;
    return GpuResp.OK_NODATA;
  }

  private detachBacking(): number {
    if (!this.io.need(GpuResourceReq.SIZE)) return GpuResp.ERR_UNSPEC;
    const res = this.resources.get(this.io.u32(GpuResourceReq.RESOURCE_ID));
    if (res === undefined) return GpuResp.ERR_INVALID_RESOURCE_ID;
    if (res.backingAddrs === null) return GpuResp.ERR_UNSPEC;
    this.dropBacking(res);
    return GpuResp.OK_NODATA;
  }

  private dropBacking(res: GpuResource): void {
    if (res.backingAddrs === null) return;
    this.hostBytes -= res.backingAddrs.length * BACKING_ENTRY_COST;
    res.backingAddrs = null;
    res.backingLens = null;
    res.backingBytes = 0;
  }
}
