/**
 * The vhost-user front-end's copy of the device configuration. DriverTransport reads config
 * synchronously, like registers, while vhost-user fetches it with GET_CONFIG, a message: the
 * transport keeps this copy, refreshes it from the back-end after every SET_CONFIG and every
 * config-change message (vhost-user.rst, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG), and bumps the
 * generation when a refresh brings different bytes (2.5.1: the generation changes whenever the
 * configuration may have changed).
 *
 * Writes go through to the copy at once, so a driver reading back what it wrote sees it before
 * the refresh; fields whose value depends on other fields (virtio-input's union after select /
 * subsel, 5.8.4) are current once the transport's `configSettled()` resolves.
 */
import { deviceTypes } from '../devices/registry.js';

/** GET_CONFIG bytes for a device type: its registry record's `configSize` (0 when unknown). */
export function defaultConfigSize(deviceId: number): number {
  // Looked up at connect time, not at module load: the registry imports device modules that may
  // import this one.
  for (const t of deviceTypes()) if (t.deviceId === deviceId) return t.configSize ?? 0;
  return 0;
}

export class FrontendConfigCache {
  private readonly bytes: Uint8Array;
  private gen = 0;
  /** Config writes so far: a refresh queued behind a write only runs for the latest one. */
  private writes = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  get size(): number {
    return this.bytes.length;
  }

  get generation(): number {
    return this.gen;
  }

  read(offset: number, dst: Uint8Array): void {
    dst.fill(0);
    if (offset < this.bytes.length) dst.set(this.bytes.subarray(offset, Math.min(this.bytes.length, offset + dst.length)));
  }

  /** Applies a driver write to the copy; returns its sequence number (see `isLatestWrite`). */
  write(offset: number, src: Uint8Array): number {
    if (offset >= 0 && offset + src.length <= this.bytes.length) this.bytes.set(src, offset);
    return ++this.writes;
  }

  /** Whether no write came after the one numbered `seq` (a refresh for it is not superseded). */
  isLatestWrite(seq: number): boolean {
    return seq === this.writes;
  }

  /**
   * Replaces the copy with what the back-end answered (null: an empty answer, which keeps the
   * copy; DPDK's net_vhost negotiates CONFIG and answers nothing). `always` bumps the generation
   * even when nothing changed (the first fetch, a config-change message). Returns whether the
   * bytes changed.
   */
  replace(data: Uint8Array | null, always: boolean): boolean {
    let changed = false;
    if (data !== null) {
      const n = Math.min(data.length, this.bytes.length);
      for (let i = 0; i < n && !changed; i++) changed = data[i] !== this.bytes[i];
      if (changed) this.bytes.set(data.subarray(0, n));
    }
    if (changed || always) this.gen++;
    return changed;
  }
}
