/**
 * The rig shared by the virtio-net offload tests (net-offload.test.ts) and the queue steering
 * and coalescing tests (net-queues.test.ts): a NetDevice on a switch with a recording peer,
 * driven through hand-built chains over the in-process transport, and helpers to build
 * virtio_net_hdr headers and little-endian fields.
 */
import { RequestQueue } from '../../driver/request-queue.js';
import type { Segment } from '../../queue/types.js';
import { NetF, NetHdrFlag } from '../../spec/net.js';
import { type Loopback, createLoopback } from '../../testing/loopback.js';
import { makeChecksumPartial } from './ip-frames.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { NetSwitch } from './switch.js';

export const T = { timeout: 15_000 };
export const DEV = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 1);
export const PEER = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 2);
export const KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));

export interface Seen {
  data: Uint8Array;
  gsoType: number;
  gsoSize: number;
  needsCsum: boolean;
}

/** The far end: records what it gets, injects frames (with offload metadata) for the device. */
export class Peer implements NetPort {
  link!: NetLink;
  frames: Seen[] = [];
  private readonly out = new NetPacket(70000);
  constructor(
    readonly name: string,
    readonly takesGso: boolean,
  ) {}
  deliver(p: NetPacket): void {
    this.frames.push({ data: p.bytes(), gsoType: p.gsoType, gsoSize: p.gsoSize, needsCsum: p.needsCsum });
  }
  /** Sends `f`; with `gso` as a GSO packet with a partial checksum (as a guest or TAP hands one over). */
  inject(f: Uint8Array, gso?: { type: number; size: number }): void {
    const o = this.out;
    o.set(f);
    if (gso) {
      const c = makeChecksumPartial(o.data.subarray(0, o.length));
      o.needsCsum = true;
      o.csumStart = c.start;
      o.csumOffset = c.offset;
      o.gsoType = gso.type;
      o.gsoSize = gso.size;
    }
    this.link.send(o);
  }
}

export interface Rx {
  used: number;
  bytes: Uint8Array;
}

export interface Rig {
  device: NetDevice;
  peer: Peer;
  gsoPeer: Peer;
  lb: Loopback;
  hdrLen: number;
  post(len: number, pair?: number): Promise<Rx>;
  send(hdr: Uint8Array, frame: Uint8Array, pair?: number): Promise<number>;
  control(cls: number, cmd: number, payload: Uint8Array, replyLen?: number): Promise<{ used: number; ack: number; reply: Uint8Array }>;
}

export async function rig(opts: { device?: NetDeviceOptions; refuse?: bigint; withGsoPeer?: boolean } = {}): Promise<Rig> {
  const device = new NetDevice({ mac: DEV, queueSize: 128, ...opts.device });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const peer = new Peer('peer', false);
  peer.link = sw.attach(peer);
  const gsoPeer = new Peer('gso-peer', true);
  if (opts.withGsoPeer === true) gsoPeer.link = sw.attach(gsoPeer);
  // RSC_EXT (net-rsc.test.ts) changes what csum_start/csum_offset mean in a GSO frame's header:
  // these tests are for a driver without it.
  const lb = await createLoopback(device, { queueSize: 128, refuseFeatures: (opts.refuse ?? 0n) | NetF.RSC_EXT });
  const ctx = lb.context;
  const f = ctx.features;
  const hdrLen = (f & NetF.HASH_REPORT) !== 0n ? 20 : 12;
  const pairs = (f & (NetF.MQ | NetF.RSS)) !== 0n ? device.maxPairs : 1;
  const rx: RequestQueue[] = [];
  const tx: RequestQueue[] = [];
  for (let p = 0; p < pairs; p++) {
    rx.push(new RequestQueue(ctx, 2 * p));
    tx.push(new RequestQueue(ctx, 2 * p + 1));
  }
  const ctrl = new RequestQueue(ctx, 2 * pairs);
  const seg = (bytes: Uint8Array): Segment => {
    const addr = ctx.dma.alloc(Math.max(1, bytes.length));
    ctx.memory.write(addr, bytes);
    return { addr, len: bytes.length };
  };
  return {
    device,
    peer,
    gsoPeer,
    lb,
    hdrLen,
    async post(len, pair = 0) {
      const s = seg(new Uint8Array(len).fill(0xee));
      const used = await rx[pair]!.submit([], [s]);
      const bytes = new Uint8Array(len);
      ctx.memory.read(s.addr, bytes);
      return { used, bytes };
    },
    send(hdr, frame, pair = 0) {
      const b = new Uint8Array(hdr.length + frame.length);
      b.set(hdr);
      b.set(frame, hdr.length);
      return tx[pair]!.submit([seg(b)], []);
    },
    async control(cls, cmd, payload, replyLen = 0) {
      const b = new Uint8Array(2 + payload.length);
      b[0] = cls;
      b[1] = cmd;
      b.set(payload, 2);
      const inn = seg(new Uint8Array(1 + replyLen).fill(0xee));
      const used = await ctrl.submit([seg(b)], [inn]);
      const r = new Uint8Array(1 + replyLen);
      ctx.memory.read(inn.addr, r);
      return { used, ack: r[0]!, reply: r.subarray(1) };
    },
  };
}

/** A virtio_net_hdr (little-endian) of `len` bytes. */
export function hdr(len: number, h: { flags?: number; gso?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {}): Uint8Array {
  const b = Buffer.alloc(len);
  b[0] = h.flags ?? 0;
  b[1] = h.gso ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  return Uint8Array.from(b);
}
/** A GSO transmit: the frame with a partial checksum and its header. */
export function gsoTx(hl: number, f: Uint8Array, gso: number, size: number, extra: { flags?: number; hdrLen?: number } = {}): { h: Uint8Array; f: Uint8Array } {
  const c = makeChecksumPartial(f);
  return { h: hdr(hl, { flags: NetHdrFlag.NEEDS_CSUM | (extra.flags ?? 0), gso, gsoSize: size, hdrLen: extra.hdrLen ?? 0, csumStart: c.start, csumOffset: c.offset }), f };
}
export const le16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
export const le32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
export const u32le = (...v: number[]): Uint8Array => {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  return Uint8Array.from(b);
};
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
