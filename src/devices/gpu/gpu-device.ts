/**
 * 5.7 GPU Device, device side, 2D mode: the controlq (gpu-control.ts) and the cursorq
 * (gpu-cursor.ts) on one QueueServer, the 5.7.4 configuration (events_read / events_clear,
 * num_scanouts, num_capsets 0), EDID, and the scanouts as the host sees them: an RGBA buffer per
 * scanout, change callbacks and PNG snapshots.
 *
 * Offered: EDID. Not offered: VIRGL, RESOURCE_UUID, RESOURCE_BLOB, CONTEXT_INIT, BLOB_ALIGNMENT
 * (no 3D, no blobs, no shared memory region); their commands get ERR_UNSPEC.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { type ConfigValues, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { GPU_CONFIG_LAYOUT, GPU_EVENT_DISPLAY, GPU_MAX_SCANOUTS, GpuConfig, GpuF, GpuQueue, type GpuConfigField } from '../../spec/gpu.js';
import { GpuControlHandler, type GpuLimits } from './gpu-control.js';
import { GpuCursorHandler, type GpuCursorView } from './gpu-cursor.js';
import { EDID_MAX_DIMENSION, buildEdid } from './gpu-edid.js';
import { encodePng } from './gpu-png.js';
import type { GpuResource } from './gpu-resource.js';
import { GpuScanout, type GpuRectangle, type GpuScanoutView } from './gpu-scanout.js';

/** A display head: its preferred size and whether it is connected. */
export interface GpuDisplaySpec {
  /** Preferred width in pixels, 1..4095 (it must fit an EDID timing). */
  readonly width: number;
  /** Preferred height in pixels, 1..4095. */
  readonly height: number;
  /** Default true. */
  readonly enabled?: boolean;
}

/** Options of GpuDevice. */
export interface GpuDeviceOptions extends Partial<GpuLimits> {
  /** The scanouts (1 to 16). Default one of 1024 x 768. */
  displays?: readonly GpuDisplaySpec[];
  /** Maximum size of both queues. Default 256. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** Called when a scanout's picture changed: `rect` in scanout coordinates, null when disabled. */
export type GpuScanoutListener = (scanout: GpuScanoutView, rect: GpuRectangle | null) => void;
/** Called after each UPDATE_CURSOR or MOVE_CURSOR with the pointer's new state (the view is live: copy what you keep). */
export type GpuCursorListener = (cursor: GpuCursorView) => void;

const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

/** Default bounds: a 4096 x 4096 resource, 256 MiB in all, 1024 resources, QEMU's 16384 entries. */
export const GPU_DEFAULT_LIMITS: GpuLimits = {
  maxResourceBytes: 4096 * 4096 * 4,
  maxTotalBytes: 256 * 1024 * 1024,
  maxResources: 1024,
  maxBackingEntries: 16384,
};

function checkDisplay(d: GpuDisplaySpec): void {
  for (const v of [d.width, d.height]) {
    if (!Number.isInteger(v) || v < 1 || v > EDID_MAX_DIMENSION) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `display size ${d.width}x${d.height} not in 1..${EDID_MAX_DIMENSION}`);
  }
}

/**
 * The virtio-gpu device (5.7): 2D resources and scanouts the host can read as RGBA or PNG, with a
 * cursor and EDID. What it implements and its normative coverage: docs/devices/gpu.md.
 */
export class GpuDevice implements VirtioDevice {
  readonly deviceId = DeviceId.GPU;
  readonly offeredFeatures = TRANSPORT_FEATURES | GpuF.EDID;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = GpuConfig.SIZE;
  /** The scanouts (displays): what each shows and at which size. */
  readonly scanouts: readonly GpuScanout[];

  private eventsRead = 0;
  private features = 0n;
  private ctx: DeviceContext | null = null;
  private readonly edids: Uint8Array[];
  private readonly server: QueueServer;
  private readonly control: GpuControlHandler;
  private readonly cursorHandler: GpuCursorHandler;
  private readonly scanoutListeners = new Set<GpuScanoutListener>();
  private readonly cursorListeners = new Set<GpuCursorListener>();
  private readonly log: Logger | undefined;

  constructor(opts: GpuDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 2..32768`);
    const displays = opts.displays ?? [{ width: 1024, height: 768 }];
    // 5.7.4 num_scanouts: minimum 1, maximum 16.
    if (displays.length < 1 || displays.length > GPU_MAX_SCANOUTS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${displays.length} displays: 1 to ${GPU_MAX_SCANOUTS}`);
    displays.forEach(checkDisplay);
    const limits: GpuLimits = { ...GPU_DEFAULT_LIMITS, ...definedOnly(opts) };
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${k} ${String(v)} is not a positive integer`);
    }
    this.queueMaxSizes = [qs, qs];
    this.log = opts.logger;
    this.scanouts = displays.map((d, i) => new GpuScanout(i, d.width, d.height, d.enabled ?? true));
    this.edids = displays.map((d, i) => buildEdid({ width: d.width, height: d.height, serial: i + 1 }));
    this.control = new GpuControlHandler(
      {
        features: () => this.features,
        scanouts: this.scanouts,
        edid: (i) => this.edids[i]!,
        scanoutChanged: (s, r) => {
          for (const l of this.scanoutListeners) l(s, r);
        },
        resourceRemoved: (id) => this.cursorHandler.resourceRemoved(id),
      },
      limits,
    );
    this.cursorHandler = new GpuCursorHandler({
      numScanouts: this.scanouts.length,
      resource: (id) => this.control.resources.get(id),
      cursorChanged: (c) => {
        for (const l of this.cursorListeners) l(c);
      },
    });
    this.server = new QueueServer({
      name: 'virtio-gpu',
      numQueues: 2,
      logger: opts.logger,
      handler: (i) => (i === GpuQueue.CONTROLQ ? this.control.serve : i === GpuQueue.CURSORQ ? this.cursorHandler.serve : null),
    });
  }

  // ---- what the host sees ----

  /** Scanout `i` as the host shows it (throws INVALID_ARGUMENT past num_scanouts). */
  scanout(i: number): GpuScanoutView {
    const s = this.scanouts[i];
    if (s === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no scanout ${i}`);
    return s;
  }

  /** The pointer (UPDATE_CURSOR / MOVE_CURSOR). */
  get cursor(): GpuCursorView {
    return this.cursorHandler;
  }

  /** The resources the driver created (for tests and tools). */
  resource(id: number): GpuResource | undefined {
    return this.control.resources.get(id);
  }

  /** Host bytes the resources hold now (pixels and backing entries). */
  get hostBytes(): number {
    return this.control.hostBytes;
  }

  /** Calls `listener` on every change of a scanout's picture; returns the unsubscribe function. */
  onScanoutChange(listener: GpuScanoutListener): () => void {
    this.scanoutListeners.add(listener);
    return () => this.scanoutListeners.delete(listener);
  }

  /**
   * Adds a listener told when the cursor's image or position changes; returns a function that
   * removes it.
   */
  onCursorChange(listener: GpuCursorListener): () => void {
    this.cursorListeners.add(listener);
    return () => this.cursorListeners.delete(listener);
  }

  /** Scanout `i`'s picture as a PNG file (throws INVALID_ARGUMENT when it shows nothing). */
  snapshotPng(i: number): Uint8Array {
    const s = this.scanout(i);
    if (s.width === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `scanout ${i} shows nothing`);
    return encodePng(s.rgba, s.width, s.height);
  }

  /**
   * The host changed display `i` (a window resized, a monitor plugged): GET_DISPLAY_INFO and
   * GET_EDID report it, and VIRTIO_GPU_EVENT_DISPLAY is raised in events_read with a
   * configuration change notification (5.7.4.2).
   */
  setDisplay(i: number, display: GpuDisplaySpec): void {
    const s = this.scanouts[i];
    if (s === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no scanout ${i}`);
    checkDisplay(display);
    s.preferredWidth = display.width;
    s.preferredHeight = display.height;
    s.enabled = display.enabled ?? true;
    this.edids[i] = buildEdid({ width: display.width, height: display.height, serial: i + 1 });
    this.eventsRead |= GPU_EVENT_DISPLAY;
    this.ctx?.notifyConfigChange();
  }

  /**
   * Replaces the EDID GET_EDID reports for display `i` (a vhost-user front-end's monitor, after
   * `setDisplay`): 128 to 1024 bytes in whole 128-byte blocks.
   */
  setDisplayEdid(i: number, edid: Uint8Array): void {
    if (this.scanouts[i] === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no scanout ${i}`);
    if (edid.length === 0 || edid.length > 1024 || edid.length % 128 !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EDID of ${edid.length} bytes`);
    this.edids[i] = edid.slice();
  }

  // ---- configuration space (5.7.4) ----

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    const values: ConfigValues<GpuConfigField> = {
      eventsRead: this.eventsRead,
      eventsClear: 0,
      numScanouts: this.scanouts.length,
      numCapsets: 0,
    };
    encodeConfig(GPU_CONFIG_LAYOUT, values, features, offset, dst, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array, _features: bigint, littleEndian: boolean): void {
    // events_clear is write-to-clear; every other field is read-only (the driver MUST NOT write
    // events_read). Each byte written to events_clear clears its bits, so a write of part of the
    // field (CCW WRITE_CONF sends only the bytes that changed) clears what it names.
    let mask = 0;
    for (let i = 0; i < src.length; i++) {
      const at = offset + i - GpuConfig.EVENTS_CLEAR;
      if (at < 0 || at > 3) continue;
      mask |= src[i]! << (8 * (littleEndian ? at : 3 - at));
    }
    if (mask === 0) return;
    this.eventsRead &= ~mask;
    this.log?.debug(`virtio-gpu: events_clear 0x${(mask >>> 0).toString(16)}`);
  }

  /** events_read now (VIRTIO_GPU_EVENT_DISPLAY until the driver clears it). */
  get pendingEvents(): number {
    return this.eventsRead;
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.features = ctx.features;
    this.control.configure(ctx.littleEndian);
    this.cursorHandler.configure(ctx.littleEndian);
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.ctx = null;
    this.features = 0n;
    this.eventsRead = 0;
    for (const s of this.scanouts) {
      if (s.resource === null) continue;
      s.detach();
      for (const l of this.scanoutListeners) l(s, null);
    }
    this.control.reset();
    this.cursorHandler.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

function definedOnly(o: Partial<GpuLimits>): Partial<GpuLimits> {
  const out: { -readonly [K in keyof GpuLimits]?: number } = {};
  if (o.maxResourceBytes !== undefined) out.maxResourceBytes = o.maxResourceBytes;
  if (o.maxTotalBytes !== undefined) out.maxTotalBytes = o.maxTotalBytes;
  if (o.maxResources !== undefined) out.maxResources = o.maxResources;
  if (o.maxBackingEntries !== undefined) out.maxBackingEntries = o.maxBackingEntries;
  return out;
}
