/**
 * 2.12 Device groups: what the dispatcher asks of a group (does it exist now, who is member n).
 * The self group (0x0) always exists and has the owner as member 0; the SR-IOV group (0x1) is
 * built by the PCI SR-IOV capability (`sriov-group.ts`).
 */
import type { DeviceCoreApi } from '../device/types.js';
import { ADMIN_GROUP_SELF } from './admin-command-handler.js';

/** One group an owner device controls (the owner and the type together identify it, 2.12). */
export interface AdminGroup {
  /** group_type (ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV). */
  readonly groupType: number;
  /**
   * Whether the group exists right now (SR-IOV: only while VF Enable is set, 2.12); commands for
   * a group that does not exist fail with INVALID_GROUP (device/admin/14).
   */
  exists(): boolean;
  /** The member `memberId` (its core), or null when no such member exists now. */
  member(memberId: bigint): DeviceCoreApi | null;
}

/**
 * 2.12 Self group type (0x0): the owner is its only member, with id 0. `owner` returns the
 * owner's core (null before the transport built it: the member then does not exist).
 */
export function selfGroup(owner: () => DeviceCoreApi | null): AdminGroup {
  return {
    groupType: ADMIN_GROUP_SELF,
    exists: () => true,
    member: (id) => (id === 0n ? owner() : null),
  };
}
