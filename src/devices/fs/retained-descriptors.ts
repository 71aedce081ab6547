/**
 * The O_PATH descriptors of inodes the guest has just forgotten, kept open for a while (a
 * bounded ring, oldest closed first) so that a LOOKUP of the same object soon after needs no
 * new open: one fstatat of the name gives (st_dev, st_ino), and a descriptor held here for that
 * pair is that very object. It cannot be another: while a descriptor is open its inode stays
 * allocated, so the host cannot reuse the inode number for a new file.
 *
 * Why: a guest that drops its dentry cache (memory pressure, `drop_caches`, a short entry
 * timeout) and walks the tree again sends LOOKUP + FORGET pairs; without this each costs an
 * openat and a close beside the fstatat (4 system calls for LOOKUP + GETATTR + FORGET, 2 with it).
 *
 * Cost: each held descriptor keeps its host object's dentry and inode cached. An object whose
 * last name the guest removes (UNLINK, RMDIR, RENAME over it) is never held (HostFsTables
 * closes it at FORGET, or at the removal when it is held already); one removed on the host
 * keeps its blocks until its descriptor is closed (at most `capacity` objects, each at most
 * until `capacity` more inodes are forgotten or the tables are cleared).
 * virtiofsd closes at FORGET; HostFsLimits.retainedDescriptors = 0 does the same here.
 */
import type { FsAt } from '../../platform/fs-at.js';
import { PairKeyMap } from './pair-key-map.js';

/** A bounded ring of O_PATH descriptors of forgotten inodes, keyed by (st_dev, st_ino); the oldest is closed when full. */
export class RetainedDescriptors {
  /** Per slot: the descriptor (-1: empty) and its object's key. */
  private readonly fds: Int32Array;
  private readonly devs: Float64Array;
  private readonly inos: Float64Array;
  /** (dev, ino) → slot. */
  private readonly slots = new PairKeyMap<number>();
  /** The slot the next descriptor goes to (its occupant, the oldest, is closed first). */
  private next = 0;
  private held = 0;

  /** `fsAt`: closes what leaves the ring. `capacity` 0: nothing is kept, `retain` closes at once. */
  constructor(
    private readonly fsAt: FsAt,
    /** Descriptors held at most. */
    readonly capacity: number,
  ) {
    this.fds = new Int32Array(capacity).fill(-1);
    this.devs = new Float64Array(capacity);
    this.inos = new Float64Array(capacity);
  }

  /** Descriptors held now (at most `capacity`). */
  get size(): number {
    return this.held;
  }

  /** Keeps `fd` (the O_PATH descriptor of the object (dev, ino)), closing the oldest held one when full. */
  retain(fd: number, dev: number, ino: number): void {
    if (this.capacity === 0) {
      this.fsAt.close(fd);
      return;
    }
    // A descriptor for the same object already held (two inodes of one object cannot both be
    // in the table, but stay safe): the older one goes.
    this.drop(dev, ino);
    const s = this.next;
    this.next = s + 1 === this.capacity ? 0 : s + 1;
    if (this.fds[s]! >= 0) this.evict(s);
    this.fds[s] = fd;
    this.devs[s] = dev;
    this.inos[s] = ino;
    this.slots.set(dev, ino, s);
    this.held++;
  }

  /** The descriptor held for (dev, ino), removed from the ring (the caller owns it now), or -1. */
  take(dev: number, ino: number): number {
    if (this.held === 0) return -1;
    const s = this.slots.take(dev, ino);
    if (s === undefined) return -1;
    const fd = this.fds[s]!;
    this.fds[s] = -1;
    this.held--;
    return fd;
  }

  /** Closes the descriptor held for (dev, ino), if any (the object came back by a new descriptor); true when there was one. */
  drop(dev: number, ino: number): boolean {
    const fd = this.take(dev, ino);
    if (fd < 0) return false;
    this.fsAt.close(fd);
    return true;
  }

  /** Closes every held descriptor. */
  clear(): void {
    for (let s = 0; s < this.capacity; s++) if (this.fds[s]! >= 0) this.evict(s);
    this.next = 0;
  }

  private evict(s: number): void {
    this.slots.delete(this.devs[s]!, this.inos[s]!);
    this.fsAt.close(this.fds[s]!);
    this.fds[s] = -1;
    this.held--;
  }
}
