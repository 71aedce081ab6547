/**
 * The back-end end of the vhost-user-gpu display socket (vhost-user-gpu-protocol.ts): what a
 * GpuDevice shows goes to the vhost-user front-end (QEMU's vhost-user-gpu), which draws it.
 *
 *  - On start: GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES (EDID when the front-end offers it),
 *    GET_DISPLAY_INFO (each display's size goes to `GpuDevice.setDisplay`), GET_EDID per display
 *    (to `setDisplayEdid`). `ready` resolves when that is done.
 *  - SET_SCANOUT (the shown resource or its size changed): SCANOUT with the size (0 x 0:
 *    disabled); RESOURCE_FLUSH: UPDATE with the rectangle's pixels as B8G8R8X8 (QEMU's console
 *    surface, PIXMAN_x8r8g8b8 in memory), rows packed. UPDATE has no reply (vhost-user-gpu.rst).
 *  - UPDATE_CURSOR: CURSOR_UPDATE (64 x 64 B8G8R8A8: QEMU's cursor is u32 ARGB); MOVE_CURSOR:
 *    CURSOR_POS; a hidden cursor: CURSOR_POS_HIDE.
 *
 * The front-end is not trusted: replies are bounded (MAX_REPLY_PAYLOAD), checked for request,
 * flags and size, and awaited at most `replyTimeoutMs`. A malformed or late reply, an unsolicited
 * message or a socket error ends the display (the socket is closed, the error counted and kept in
 * `lastError`); the device keeps serving the guest, and updates are then dropped and counted, as
 * are updates while more than `maxQueuedBytes` wait to be written.
 */
import { Socket } from 'node:net';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { GpuDevice } from './gpu-device.js';
import type { GpuCursorView } from './gpu-cursor.js';
import type { GpuRectangle, GpuScanoutView } from './gpu-scanout.js';
import {
  GpuMessageReader,
  VhostUserGpuLayout as L,
  VhostUserGpuProtocolError,
  VhostUserGpuProtocolFeature,
  VhostUserGpuRequest as R,
  decodeDisplayInfo,
  decodeEdidReply,
  encodeGpuMessage,
  u32Payload,
  u64Payload,
  type VhostUserGpuMessage,
} from './vhost-user-gpu-protocol.js';

/** Options of a GpuDisplaySocket. */
export interface GpuDisplaySocketOptions {
  /** How long a synchronous request waits for its reply. Default 2000 ms. */
  readonly replyTimeoutMs?: number;
  /** Bytes waiting to be written above which updates are dropped. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  /** Where failures are logged. */
  readonly logger?: Logger;
}

/** What the display socket did, for tests and metrics. */
export interface GpuDisplayCounters {
  /** Messages written. */
  sent: number;
  /** SCANOUT, UPDATE and cursor messages not sent (display ended or not ready, or the socket backed up). */
  dropped: number;
  /** Malformed, oversized or unexpected messages from the front-end. */
  protocolErrors: number;
  /** Replies that did not come in time. */
  timeouts: number;
}

interface Pending {
  readonly request: number;
  readonly resolve: (m: VhostUserGpuMessage) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** The display socket of one front-end connection, bound to a GpuDevice. */
export class GpuDisplaySocket {
  /** What the display socket did so far. */
  readonly counters: GpuDisplayCounters = { sent: 0, dropped: 0, protocolErrors: 0, timeouts: 0 };
  /** Resolves once the handshake is done; rejects (typed) when it failed. */
  readonly ready: Promise<void>;
  /** Protocol features both sides agreed (SET_PROTOCOL_FEATURES). */
  protocolFeatures = 0n;
  /** Why the display ended, null while it runs. */
  lastError: VirtioError | null = null;

  private readonly socket: Socket;
  private readonly reader = new GpuMessageReader(L.MAX_REPLY_PAYLOAD);
  private pending: Pending | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private handshaken = false;
  private ended = false;
  private readonly shown: { resourceId: number; width: number; height: number }[];
  private readonly lastCursor = new Uint8Array(64 * 64 * 4);
  private lastCursorKey = '';
  private readonly unsubscribe: (() => void)[] = [];
  private readonly timeoutMs: number;
  private readonly maxQueued: number;

  /** Takes ownership of `fd` (a connected stream socket) and starts the handshake. */
  constructor(
    fd: number,
    private readonly device: GpuDevice,
    private readonly opts: GpuDisplaySocketOptions = {},
  ) {
    this.timeoutMs = opts.replyTimeoutMs ?? 2000;
    this.maxQueued = opts.maxQueuedBytes ?? 64 << 20;
    this.shown = device.scanouts.map(() => ({ resourceId: 0, width: 0, height: 0 }));
    this.socket = new Socket({ fd, readable: true, writable: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (e) => this.end(new VirtioError(ErrorCode.BACKEND_IO, `vhost-user-gpu socket: ${e.message}`, { cause: e })));
    this.socket.on('close', () => this.end(new VirtioError(ErrorCode.BACKEND_IO, 'vhost-user-gpu socket closed by the front-end')));
    this.unsubscribe.push(device.onScanoutChange((s, r) => this.scanoutChanged(s, r)));
    this.unsubscribe.push(device.onCursorChange((c) => this.cursorChanged(c)));
    this.ready = this.handshake();
    this.ready.catch(() => undefined);
  }

  /** Whether the display socket still runs. */
  get running(): boolean {
    return !this.ended;
  }

  /** Ends the display and closes the socket (idempotent). */
  close(): void {
    this.end(null);
    for (const u of this.unsubscribe.splice(0)) u();
  }

  private async handshake(): Promise<void> {
    const features = decodeU64((await this.call(R.GET_PROTOCOL_FEATURES, new Uint8Array(0), 8)).payload);
    const edid = 1n << BigInt(VhostUserGpuProtocolFeature.EDID);
    this.protocolFeatures = features & edid;
    this.send(R.SET_PROTOCOL_FEATURES, u64Payload(this.protocolFeatures));
    const displays = decodeDisplayInfo((await this.call(R.GET_DISPLAY_INFO, new Uint8Array(0), L.DISPLAY_INFO_SIZE)).payload);
    for (let i = 0; i < this.device.scanouts.length; i++) {
      const d = displays[i]!;
      // A size the device cannot show (0 or past 4095) keeps the device's own.
      if (d.width >= 1 && d.width <= 4095 && d.height >= 1 && d.height <= 4095) this.device.setDisplay(i, d);
      if (this.protocolFeatures & edid) this.device.setDisplayEdid(i, decodeEdidReply((await this.call(R.GET_EDID, u32Payload(i), L.EDID_REPLY_SIZE)).payload));
    }
    this.handshaken = true;
  }

  /** Sends a request and waits (bounded) for its reply of exactly `size` bytes; one at a time. */
  private call(request: number, payload: Uint8Array, size: number): Promise<VhostUserGpuMessage> {
    const run = (): Promise<VhostUserGpuMessage> =>
      new Promise<VhostUserGpuMessage>((resolve, reject) => {
        if (this.ended) {
          reject(this.lastError ?? new VhostUserGpuProtocolError('display socket closed', ErrorCode.BACKEND_IO));
          return;
        }
        const timer = setTimeout(() => {
          this.counters.timeouts++;
          this.end(new VhostUserGpuProtocolError(`no reply to request ${request} within ${this.timeoutMs} ms`, ErrorCode.TIMEOUT));
        }, this.timeoutMs);
        this.pending = {
          request,
          timer,
          resolve: (m) => {
            if (m.payload.length !== size) {
              this.protocolError(`reply to request ${request} of ${m.payload.length} bytes, expected ${size}`);
              reject(this.lastError!);
              return;
            }
            resolve(m);
          },
          reject,
        };
        this.send(request, payload);
      });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    let msgs: VhostUserGpuMessage[];
    try {
      msgs = this.reader.push(chunk);
    } catch (e) {
      this.protocolError((e as Error).message);
      return;
    }
    for (const m of msgs) {
      const p = this.pending;
      // Only replies to the one outstanding request are expected (DMABUF_UPDATE is never sent).
      if (p === null || m.request !== p.request || (m.flags & L.FLAG_REPLY) === 0) {
        this.protocolError(`unexpected message ${m.request} (flags 0x${m.flags.toString(16)})`);
        return;
      }
      clearTimeout(p.timer);
      this.pending = null;
      p.resolve(m);
      if (this.ended) return;
    }
  }

  private protocolError(message: string): void {
    this.counters.protocolErrors++;
    this.end(new VhostUserGpuProtocolError(message));
  }

  private end(why: VirtioError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.lastError = why;
    // The device's listeners stay until close(): what the display misses is counted as dropped.
    if (why) this.opts.logger?.warn(`display ended: ${why.message}`);
    const p = this.pending;
    this.pending = null;
    if (p) {
      clearTimeout(p.timer);
      p.reject(why ?? new VhostUserGpuProtocolError('display socket closed', ErrorCode.BACKEND_IO));
    }
    this.socket.destroy();
  }

  private send(request: number, payload: Uint8Array): void {
    this.socket.write(encodeGpuMessage(request, payload));
    this.counters.sent++;
  }

  /** Sends a display message, or counts it dropped. */
  private sendDisplay(request: number, payload: Uint8Array): void {
    if (this.ended || !this.handshaken || this.socket.writableLength > this.maxQueued) {
      this.counters.dropped++;
      return;
    }
    this.send(request, payload);
  }

  private scanoutChanged(s: GpuScanoutView, r: GpuRectangle | null): void {
    const last = this.shown[s.id]!;
    if (r === null || s.width === 0) {
      if (last.width !== 0) this.sendDisplay(R.SCANOUT, u32Payload(s.id, 0, 0));
      last.resourceId = last.width = last.height = 0;
      return;
    }
    if (last.resourceId !== s.resourceId || last.width !== s.width || last.height !== s.height) {
      this.sendDisplay(R.SCANOUT, u32Payload(s.id, s.width, s.height));
      last.resourceId = s.resourceId;
      last.width = s.width;
      last.height = s.height;
    }
    const payload = new Uint8Array(L.UPDATE_HEADER_SIZE + r.width * r.height * 4);
    payload.set(u32Payload(s.id, r.x, r.y, r.width, r.height));
    let o = L.UPDATE_HEADER_SIZE;
    for (let y = r.y; y < r.y + r.height; y++) {
      let i = (y * s.width + r.x) * 4;
      for (let x = 0; x < r.width; x++, i += 4, o += 4) {
        payload[o] = s.rgba[i + 2]!;
        payload[o + 1] = s.rgba[i + 1]!;
        payload[o + 2] = s.rgba[i]!;
        payload[o + 3] = 0xff;
      }
    }
    this.sendDisplay(R.UPDATE, payload);
  }

  private cursorChanged(c: GpuCursorView): void {
    if (!c.visible) {
      this.sendDisplay(R.CURSOR_POS_HIDE, u32Payload(c.scanoutId, c.x, c.y));
      this.lastCursorKey = '';
      return;
    }
    const key = `${c.resourceId}/${c.hotX}/${c.hotY}`;
    let same = key === this.lastCursorKey;
    for (let i = 0; same && i < c.rgba.length; i++) same = c.rgba[i] === this.lastCursor[i];
    if (same) {
      this.sendDisplay(R.CURSOR_POS, u32Payload(c.scanoutId, c.x, c.y));
      return;
    }
    this.lastCursorKey = key;
    this.lastCursor.set(c.rgba);
    const payload = new Uint8Array(L.CURSOR_UPDATE_SIZE);
    payload.set(u32Payload(c.scanoutId, c.x, c.y, c.hotX, c.hotY));
    for (let i = 0, o = 20; i < 64 * 64 * 4; i += 4, o += 4) {
      payload[o] = c.rgba[i + 2]!;
      payload[o + 1] = c.rgba[i + 1]!;
      payload[o + 2] = c.rgba[i]!;
      payload[o + 3] = c.rgba[i + 3]!;
    }
    this.sendDisplay(R.CURSOR_UPDATE, payload);
  }
}

function decodeU64(p: Uint8Array): bigint {
  return new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
}
