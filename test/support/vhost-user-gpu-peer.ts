/**
 * The front-end (QEMU) side of the vhost-user-gpu display protocol, for tests: answers
 * GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO and GET_EDID as told, and records every message the
 * back-end sends (SCANOUT, UPDATE, cursor...). `answer` lets a test misbehave: send other bytes,
 * or nothing.
 */
import { Socket } from 'node:net';
import { buildEdid } from '../../src/devices/gpu/gpu-edid.js';
import {
  GpuMessageReader,
  VhostUserGpuLayout,
  VhostUserGpuRequest as R,
  encodeDisplayInfo,
  encodeEdidReply,
  encodeGpuMessage,
  u64Payload,
  type VhostUserGpuDisplay,
  type VhostUserGpuMessage,
} from '../../src/devices/gpu/vhost-user-gpu-protocol.js';

/** How the peer answers. */
export interface GpuDisplayPeerOptions {
  /** Protocol features offered (default EDID). */
  readonly features?: bigint;
  /** The displays reported by GET_DISPLAY_INFO. */
  readonly displays: readonly VhostUserGpuDisplay[];
  /** Overrides the answer to a request: raw bytes to write, or null to stay silent. */
  readonly answer?: (m: VhostUserGpuMessage) => Uint8Array | null | undefined;
}

/** A display peer on one end of a socket pair. */
export class GpuDisplayPeer {
  /** Every message received, in order. */
  readonly received: VhostUserGpuMessage[] = [];
  /** The EDIDs given per scanout. */
  readonly edids: Uint8Array[];
  private readonly socket: Socket;
  private readonly reader = new GpuMessageReader(16 << 20);
  private waiters: { pred: (m: VhostUserGpuMessage) => boolean; resolve: (m: VhostUserGpuMessage) => void }[] = [];

  constructor(fd: number, private readonly opts: GpuDisplayPeerOptions) {
    this.edids = opts.displays.map((d, i) => buildEdid({ width: d.width || 1, height: d.height || 1, serial: 0x7700 + i }));
    this.socket = new Socket({ fd, readable: true, writable: true });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      for (const m of this.reader.push(chunk)) this.onMessage(m);
    });
  }

  private onMessage(m: VhostUserGpuMessage): void {
    this.received.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
    const override = this.opts.answer?.(m);
    if (override !== undefined) {
      if (override !== null) this.socket.write(override);
      return;
    }
    const reply = (p: Uint8Array): void => void this.socket.write(encodeGpuMessage(m.request, p, VhostUserGpuLayout.FLAG_REPLY));
    if (m.request === R.GET_PROTOCOL_FEATURES) reply(u64Payload(this.opts.features ?? 1n));
    else if (m.request === R.GET_DISPLAY_INFO) reply(encodeDisplayInfo(this.opts.displays));
    else if (m.request === R.GET_EDID) reply(encodeEdidReply(this.edids[new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0, true)]!));
  }

  /** The first message (already received or to come) matching `pred`; rejects after `ms`. */
  waitFor(pred: (m: VhostUserGpuMessage) => boolean, ms = 5000): Promise<VhostUserGpuMessage> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching vhost-user-gpu message within ${ms} ms`)), ms);
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Raw bytes to the back-end. */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Closes the peer's end. */
  close(): void {
    this.socket.destroy();
  }
}

/** The u32 values of a payload. */
export function u32s(p: Uint8Array, count: number, at = 0): number[] {
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  return Array.from({ length: count }, (_, i) => v.getUint32(at + i * 4, true));
}
