/**
 * Which extended attributes a guest may name, and under which host name they live.
 *
 * - passthrough (the default): only the `user.` namespace, same name on the host. `trusted.`,
 *   `security.` (security.capability would hand file capabilities to host programs) and
 *   `system.` (POSIX ACLs the host would enforce) are refused: EPERM to set or remove,
 *   ENODATA to get, hidden from lists.
 * - prefix P (virtiofsd's `-o xattrmap=:prefix:all::P::` idea): every guest name N is stored as
 *   host name P + N (P itself in `user.`, e.g. `user.virtiofs.`), so a guest's
 *   `security.selinux` or ACL lands in an inert user attribute; host names without P are
 *   invisible to the guest. The guest cannot reach a host attribute outside P: its names only
 *   ever get longer.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

const USER = Buffer.from('user.');
/** XATTR_NAME_MAX + 1 (the NUL): longer host names are refused with ERANGE by the kernel. */
export const XATTR_NAME_MAX = 255;

/** The POSIX ACL attributes: passed through unchanged with `posixAcl` (the host stores and enforces them). */
const ACL_NAMES = [Buffer.from('system.posix_acl_access'), Buffer.from('system.posix_acl_default')];

function isAclName(name: Buffer): boolean {
  return ACL_NAMES[0]!.equals(name) || ACL_NAMES[1]!.equals(name);
}

/** The guest-to-host extended attribute name mapping of the file system devices (see the top of this file). */
export class XattrMap {
  private readonly prefix: Buffer | null;

  constructor(
    prefix: string | null = null,
    /** `--posix-acl`: system.posix_acl_access / _default pass through to the host unchanged. */
    readonly posixAcl = false,
  ) {
    if (prefix !== null && (!prefix.startsWith('user.') || prefix.length <= USER.length || prefix.length > 128)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `xattr prefix "${prefix}" must be in the user. namespace (e.g. user.virtiofs.)`);
    }
    this.prefix = prefix === null ? null : Buffer.from(prefix);
  }

  /** The host name of a guest name, or null when the guest may not name it. */
  toHost(name: Buffer): Buffer | null {
    if (name.length === 0) return null;
    if (this.posixAcl && isAclName(name)) return name;
    if (this.prefix === null) return name.length > USER.length && name.subarray(0, USER.length).equals(USER) ? name : null;
    return Buffer.concat([this.prefix, name]);
  }

  /** The guest name of a host name, or null when the guest must not see it. */
  toGuest(hostName: Buffer): Buffer | null {
    if (this.posixAcl && isAclName(hostName)) return hostName;
    if (this.prefix === null) return hostName.length > USER.length && hostName.subarray(0, USER.length).equals(USER) ? hostName : null;
    if (hostName.length <= this.prefix.length || !hostName.subarray(0, this.prefix.length).equals(this.prefix)) return null;
    return hostName.subarray(this.prefix.length);
  }

  /** A listxattr result (NUL-separated host names) as the guest's list. */
  listToGuest(list: Uint8Array): Buffer {
    const out: Buffer[] = [];
    const b = Buffer.from(list.buffer, list.byteOffset, list.length);
    for (let at = 0; at < b.length; ) {
      let end = b.indexOf(0, at);
      if (end < 0) end = b.length;
      const g = this.toGuest(b.subarray(at, end));
      if (g !== null) out.push(g, Buffer.alloc(1));
      at = end + 1;
    }
    return Buffer.concat(out);
  }
}
