/**
 * Guest memory of a vhost-user session as the protocol changes it: the memory table
 * (SET_MEM_TABLE) and memory slots (GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG, with
 * CONFIGURE_MEM_SLOTS). The mapping itself is VhostMemoryMap's; this file owns the messages and
 * tells the back-end when the memory changed (rings are then rebuilt over the new map).
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Platform } from '../platform/types.js';
import { VhostUserError, VhostUserFault, decodeMemRegMsg, decodeMemoryTable, encodeU64 } from './codec.js';
import { type MessageDispatcher, noFds, takeFds } from './dispatcher.js';
import { VhostMemoryMap } from './memory-map.js';
import { FrontendReq, PF, type MemRegion } from './messages.js';

export interface SessionMemoryHost {
  /** Refuses `req` unless the protocol feature `mask` was negotiated. */
  requireProto(req: number, mask: bigint): void;
  /** The memory map changed (rings must be rebuilt over it). */
  memoryChanged(): void;
  /**
   * Throws (UNMAPPED) when a table of `regions` would leave a started ring outside guest
   * memory. Asked before a change is applied, so a refused change leaves the previous table,
   * and the rings over it, working.
   */
  checkRingsCovered(req: number, regions: readonly MemRegion[]): void;
}

export class SessionMemory {
  private readonly map: VhostMemoryMap;

  constructor(
    platform: Platform,
    mapChunkSize: number,
    private readonly maxMemSlots: number,
    private readonly host: SessionMemoryHost,
  ) {
    this.map = new VhostMemoryMap(platform, mapChunkSize);
  }

  /** The session's guest memory, null before the first memory table. */
  get memory(): GuestMemory | null {
    return this.map.memory;
  }

  /** Earlier memory tables still mapped because pins hold them (see VhostMemoryMap). */
  get retiredTables(): number {
    return this.map.retiredPending;
  }

  /** Mappings alive, those of held earlier tables included. */
  get mappingCount(): number {
    return this.map.mappingCount;
  }

  /** Guest address of front-end user range [ua, ua + len), or -1 when unmapped. */
  userToGuest(ua: number, len: number): number {
    return this.map.userToGuest(ua, len);
  }

  register(d: MessageDispatcher): void {
    d.on(FrontendReq.SET_MEM_TABLE, (msg) => {
      const regions = decodeMemoryTable(msg.request, msg.payload);
      this.host.checkRingsCovered(msg.request, regions);
      const fds = takeFds(msg, regions.length, regions.length);
      this.map.setTable(msg.request, regions, fds);
      this.host.memoryChanged();
      return null;
    });
    d.on(FrontendReq.GET_MAX_MEM_SLOTS, (msg) => {
      noFds(msg);
      this.host.requireProto(msg.request, PF.CONFIGURE_MEM_SLOTS);
      return { payload: encodeU64(this.maxMemSlots) };
    });
    d.on(FrontendReq.ADD_MEM_REG, (msg) => {
      this.host.requireProto(msg.request, PF.CONFIGURE_MEM_SLOTS);
      const region = decodeMemRegMsg(msg.request, msg.payload);
      const [fd] = takeFds(msg, 1, 1);
      if (this.map.add(msg.request, region, fd!, this.maxMemSlots)) this.host.memoryChanged();
      return null;
    });
    d.on(FrontendReq.REM_MEM_REG, (msg) => {
      this.host.requireProto(msg.request, PF.CONFIGURE_MEM_SLOTS);
      const region = decodeMemRegMsg(msg.request, msg.payload);
      // QEMU may pass the region's fd along; it is not needed (closed by the dispatcher).
      if (msg.fds.length > 1) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${msg.fds.length} fds`, msg.request);
      if (this.map.lastReference(region)) {
        const rest = this.map.descriptors().filter((r) => !(r.guestAddr === region.guestAddr && r.size === region.size && r.userAddr === region.userAddr));
        this.host.checkRingsCovered(msg.request, rest);
      }
      if (this.map.remove(msg.request, region)) this.host.memoryChanged();
      return null;
    });
  }

  /** Unmaps everything (end of session). */
  clear(): void {
    this.map.clear();
  }
}
