/**
 * Inflight I/O tracking of a session (vhost-user.rst "Inflight I/O tracking", INFLIGHT_SHMFD):
 * the shared area handed out by GET_INFLIGHT_FD or back by SET_INFLIGHT_FD after a reconnect,
 * and attaching each started ring to its part of it (so buffers popped but never used before a
 * crash are resubmitted). The region format is inflight.ts's.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Logger } from '../log.js';
import type { Mapping, Platform } from '../platform/types.js';
import { MAX_QUEUE_SIZE, SplitLayout } from '../spec/ring.js';
import { VhostUserError, VhostUserFault, decodeInflight, encodeInflight } from './codec.js';
import { type MessageDispatcher, noFds, takeFds } from './dispatcher.js';
import { PackedInflight, SplitInflight, inflightQueueRegionSize } from './inflight.js';
import { FrontendReq, PF } from './messages.js';
import type { VhostQueue } from './vhost-queue.js';
import type { Vring } from './vring.js';

interface InflightArea {
  mapping: Mapping;
  view: DataView;
  numQueues: number;
  queueSize: number;
  stride: number;
}

export interface InflightHost {
  requireProto(req: number, mask: bigint): void;
  readonly numQueues: number;
}

export class SessionInflight {
  private area: InflightArea | null = null;

  constructor(
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly host: InflightHost,
  ) {}

  register(d: MessageDispatcher): void {
    d.on(FrontendReq.GET_INFLIGHT_FD, (msg) => {
      noFds(msg);
      this.host.requireProto(msg.request, PF.INFLIGHT_SHMFD);
      const req = msg.request;
      const n = this.host.numQueues;
      const desc = decodeInflight(req, msg.payload);
      if (desc.numQueues === 0 || desc.numQueues > n) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `${desc.numQueues} queues (1 to ${n})`, req);
      }
      if (desc.queueSize === 0 || desc.queueSize > MAX_QUEUE_SIZE) throw new VhostUserError(VhostUserFault.BAD_VALUE, `queue size ${desc.queueSize}`, req);
      const stride = inflightQueueRegionSize(desc.queueSize);
      const size = stride * desc.numQueues;
      const fd = this.platform.memfd('virtio-ts-inflight', size);
      let m: Mapping;
      try {
        m = this.platform.mmap(fd, 0, size);
      } catch (e) {
        this.platform.close(fd);
        throw new VhostUserError(VhostUserFault.MAP_FAILED, `inflight mmap: ${(e as Error).message}`, req, { cause: e });
      }
      this.setArea(m, 0, desc.numQueues, desc.queueSize, stride);
      return {
        payload: encodeInflight({ mmapSize: size, mmapOffset: 0, numQueues: desc.numQueues, queueSize: desc.queueSize }),
        fds: [fd],
        closeAfter: true,
      };
    });
    d.on(FrontendReq.SET_INFLIGHT_FD, (msg) => {
      this.host.requireProto(msg.request, PF.INFLIGHT_SHMFD);
      const req = msg.request;
      const desc = decodeInflight(req, msg.payload);
      const [fd] = takeFds(msg, 1, 1);
      let m: Mapping;
      try {
        if (desc.numQueues === 0 || desc.queueSize === 0 || desc.queueSize > MAX_QUEUE_SIZE) {
          throw new VhostUserError(VhostUserFault.BAD_VALUE, `${desc.numQueues} queues of ${desc.queueSize}`, req);
        }
        const stride = inflightQueueRegionSize(desc.queueSize);
        if (desc.mmapSize < stride * desc.numQueues || !Number.isSafeInteger(desc.mmapOffset + desc.mmapSize)) {
          throw new VhostUserError(VhostUserFault.BAD_VALUE, `inflight area of ${desc.mmapSize} bytes is too small`, req);
        }
        try {
          m = this.platform.mmap(fd!, 0, desc.mmapOffset + desc.mmapSize);
        } catch (e) {
          throw new VhostUserError(VhostUserFault.MAP_FAILED, `inflight mmap: ${(e as Error).message}`, req, { cause: e });
        }
        this.setArea(m, desc.mmapOffset, desc.numQueues, desc.queueSize, stride);
      } finally {
        this.platform.close(fd!);
      }
      return null;
    });
  }

  private setArea(m: Mapping, offset: number, numQueues: number, queueSize: number, stride: number): void {
    this.area?.mapping.unmap();
    const bytes = m.bytes;
    this.area = {
      mapping: m,
      view: new DataView(bytes.buffer, bytes.byteOffset + offset, bytes.length - offset),
      numQueues,
      queueSize,
      stride,
    };
  }

  /**
   * Attaches a freshly started ring's queue to its part of the area (when there is one that
   * covers it): the region is recovered and the buffers still in flight are resubmitted first.
   */
  attach(req: number, r: Vring, q: VhostQueue, memory: GuestMemory, packed: boolean): void {
    const inf = this.area;
    if (!inf || r.index >= inf.numQueues || r.num > inf.queueSize) return;
    const base = r.index * inf.stride;
    try {
      if (packed) q.attachPackedInflight(new PackedInflight(inf.view, base, r.num));
      else q.attachSplitInflight(new SplitInflight(inf.view, base, r.num), memory.readU16(r.usedGuest + SplitLayout.USED_IDX, r.littleEndian));
    } catch (e) {
      throw new VhostUserError(VhostUserFault.BAD_STATE, `inflight recovery of ring ${r.index}: ${(e as Error).message}`, req, { cause: e });
    }
    if (q.resubmitPending > 0) this.logger.info(`ring ${r.index}: resubmitting ${q.resubmitPending} inflight buffers`);
  }

  /** Unmaps the area (end of session). */
  close(): void {
    this.area?.mapping.unmap();
    this.area = null;
  }
}
