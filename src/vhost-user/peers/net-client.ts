/**
 * A minimal virtio-net driver (5.1): frames out on transmitq1 and in from receiveq1, each behind
 * a zeroed virtio_net_hdr (no offloads, no mergeable buffers). Enough to exchange Ethernet frames
 * with a vhost-user switch such as DPDK's net_vhost.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DriverContext } from '../../driver/types.js';
import { ETH_MAX_FRAME, NET_RX_QUEUE, NET_TX_QUEUE, NetConfig, NetF, NetHdr } from '../../spec/net.js';
import { RequestQueue } from '../../driver/request-queue.js';
import { type Completion, exchangeBytes } from './byte-exchange.js';

/** Builds an Ethernet frame: dst, src, ethertype, payload padded to the 60-byte minimum. */
export function ethernetFrame(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array): Uint8Array {
  const len = Math.max(60, 14 + payload.length);
  const f = new Uint8Array(len);
  f.set(dst.subarray(0, 6), 0);
  f.set(src.subarray(0, 6), 6);
  f[12] = (etherType >>> 8) & 0xff;
  f[13] = etherType & 0xff;
  f.set(payload, 14);
  return f;
}

/** 02:00:5e:00:00:01: the locally administered bit set, unicast. */
const LOCAL_DEFAULT_MAC = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01] as const;

/** Receive buffers: header + 1514-byte frame at least (driver/net/44: 1526 bytes without HASH_REPORT). */
export const NET_RX_BUFFER = NetHdr.SIZE + ETH_MAX_FRAME;

export class NetClient {
  private readonly tx: RequestQueue;
  private readonly rx: RequestQueue;
  private readonly hdrLen: number;
  /** The device's MAC when VIRTIO_NET_F_MAC is negotiated, else null. */
  readonly mac: Uint8Array | null;
  /**
   * The address this driver uses as its own: the device's MAC when negotiated (driver/net/3),
   * else the one given or a locally administered default (driver/net/4).
   */
  readonly address: Uint8Array;

  constructor(
    private readonly ctx: DriverContext,
    opts: { address?: Uint8Array } = {},
  ) {
    if (ctx.numQueues <= NET_TX_QUEUE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-net needs receiveq1 and transmitq1');
    if ((ctx.features & (NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO | NetF.MRG_RXBUF)) !== 0n) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'NetClient handles neither receive offloads nor mergeable buffers');
    }
    // 5.1.6: with VERSION_1 the header always carries num_buffers.
    this.hdrLen = NetHdr.SIZE;
    this.rx = new RequestQueue(ctx, NET_RX_QUEUE);
    this.tx = new RequestQueue(ctx, NET_TX_QUEUE);
    this.mac = (ctx.features & NetF.MAC) !== 0n ? ctx.readConfig(NetConfig.MAC, 6) : null;
    this.address = this.mac ?? opts.address?.slice(0, 6) ?? Uint8Array.from(LOCAL_DEFAULT_MAC);
    if (this.mac === null && (this.address[0]! & 0x02) === 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'without VIRTIO_NET_F_MAC the address should be locally administered (driver/net/4)');
    }
  }

  /**
   * Transmits one frame; resolves when the device has used the buffer. The header is all zeros:
   * flags 0 without CSUM (driver/net/16), gso_type NONE, num_buffers 0 (driver/net/15), and the
   * same 12-byte size as on receive (driver/net/14).
   */
  async send(frame: Uint8Array): Promise<void> {
    const b = new Uint8Array(this.hdrLen + frame.length);
    b.set(frame, this.hdrLen);
    await exchangeBytes(this.tx, b, 0);
  }

  private strip(c: Completion): Uint8Array {
    if (c.usedLen < this.hdrLen) throw new VirtioError(ErrorCode.REQUEST_FAILED, `received buffer of ${c.usedLen} bytes, shorter than the header`);
    return c.data.subarray(this.hdrLen);
  }

  /**
   * Receives `n` frames, keeping up to `depth` receive buffers posted; buffers still posted when
   * it resolves stay on the ring for the next call. Bounded by `timeoutMs`.
   */
  receive(n: number, depth = 64, timeoutMs = 10_000): Promise<Uint8Array[]> {
    const frames: Uint8Array[] = [];
    return new Promise((resolve, reject) => {
      let posted = 0;
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        reject(new VirtioError(ErrorCode.TIMEOUT, `received ${frames.length} of ${n} frames within ${timeoutMs} ms`));
      }, timeoutMs);
      const post = (): void => {
        while (!done && posted < depth && frames.length + posted < n) {
          posted++;
          exchangeBytes(this.rx, new Uint8Array(0), NET_RX_BUFFER).then(
            (c) => {
              posted--;
              if (done) return;
              try {
                frames.push(this.strip(c));
              } catch (e) {
                done = true;
                clearTimeout(timer);
                reject(e);
                return;
              }
              if (frames.length >= n) {
                done = true;
                clearTimeout(timer);
                resolve(frames);
              } else post();
            },
            (e: unknown) => {
              done = true;
              clearTimeout(timer);
              reject(e);
            },
          );
        }
      };
      if (n <= 0) {
        clearTimeout(timer);
        resolve(frames);
        return;
      }
      post();
    });
  }
}
