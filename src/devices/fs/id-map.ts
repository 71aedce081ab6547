/**
 * uid/gid translation between the guest and the host (virtiofsd's --translate-uid/-gid, 9p's
 * mapped ids): ranges `guest:host:count`. An id outside every range passes through unchanged
 * (the identity), unless `strict` is set, then it maps to the overflow id 65534 (nobody),
 * so a guest cannot name a host id the map does not give it.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** One translated range: guest ids `guest`..`guest+count-1` are host ids `host`..`host+count-1`. */
export interface IdRange {
  /** First id of the range as the guest sees it. */
  readonly guest: number;
  /** First id of the range on the host. */
  readonly host: number;
  /** Ids in the range (at least 1). */
  readonly count: number;
}

export const OVERFLOW_ID = 65534;
const MAX_ID = 0xffff_fffe;

/**
 * A uid or gid map between the guest and the host (ranges `guest:host:count`); see the file comment for ids outside every range.
 */
export class IdMap {
  private readonly ranges: readonly IdRange[];

  constructor(
    ranges: readonly IdRange[] = [],
    /** Ids outside every range map to OVERFLOW_ID (65534, nobody) instead of passing through. */
    readonly strict = false,
  ) {
    for (const r of ranges) {
      const ok = [r.guest, r.host, r.count].every((x) => Number.isInteger(x) && x >= 0 && x <= MAX_ID) && r.count >= 1 && r.guest + r.count - 1 <= MAX_ID && r.host + r.count - 1 <= MAX_ID;
      if (!ok) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `id range ${r.guest}:${r.host}:${r.count} is not valid`);
    }
    this.ranges = ranges;
  }

  /** `"guest:host:count[,guest:host:count...]"` (the CLI form). */
  static parse(spec: string, strict = false): IdMap {
    const ranges = spec
      .split(',')
      .filter((s) => s.length > 0)
      .map((s) => {
        const m = /^(\d+):(\d+):(\d+)$/.exec(s.trim());
        if (m === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `id map "${s}" is not guest:host:count`);
        return { guest: Number(m[1]), host: Number(m[2]), count: Number(m[3]) };
      });
    return new IdMap(ranges, strict);
  }

  /** True when no range is set and not strict: every id passes unchanged (HostFs then skips the translation). */
  get isIdentity(): boolean {
    return this.ranges.length === 0 && !this.strict;
  }

  /** The host id of a guest id (SETATTR, creation). */
  toHost(id: number): number {
    for (const r of this.ranges) if (id >= r.guest && id < r.guest + r.count) return r.host + (id - r.guest);
    return this.strict ? OVERFLOW_ID : id;
  }

  /** The guest id of a host id (attributes). */
  toGuest(id: number): number {
    for (const r of this.ranges) if (id >= r.host && id < r.host + r.count) return r.guest + (id - r.host);
    return this.strict ? OVERFLOW_ID : id;
  }
}
