/**
 * The device configuration space as a transport sees it (2.5): register-width accesses in the
 * interface's byte order (little-endian, or the guest's for legacy) and byte-stream accesses
 * (CCW READ_CONF/WRITE_CONF, vhost-user GET/SET_CONFIG). Out-of-range reads return 0 and
 * out-of-range writes are ignored (2.5); a device whose config callback throws is logged, not
 * propagated, so a guest access never unwinds a transport. No allocation per access.
 */
import type { Logger } from '../log.js';
import type { VirtioDevice } from './types.js';

export class ConfigWindow {
  /** Scratch views for width reads and writes (no allocation per register access). */
  private readonly scratch = new Uint8Array(8);
  private readonly scratchViews: Uint8Array[];

  constructor(
    private readonly device: VirtioDevice,
    private readonly log: Logger,
  ) {
    this.scratchViews = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((w) => this.scratch.subarray(0, w));
  }

  /** A 1, 2 or 4 byte field at `offset`; 0 for any other width or a field outside the config. */
  read(offset: number, width: number, features: bigint, littleEndian: boolean): number {
    if (width !== 1 && width !== 2 && width !== 4) return 0;
    if (!this.inRange(offset, width)) return 0;
    const dst = this.scratchViews[width]!;
    dst.fill(0);
    try {
      this.device.readConfig(offset, dst, features, littleEndian);
    } catch (e) {
      this.log.error(`config read threw: ${String(e)}`);
      return 0;
    }
    let v = 0;
    if (littleEndian) for (let i = width - 1; i >= 0; i--) v = v * 256 + dst[i]!;
    else for (let i = 0; i < width; i++) v = v * 256 + dst[i]!;
    return v;
  }

  write(offset: number, width: number, value: number, features: bigint, littleEndian: boolean): void {
    if (width !== 1 && width !== 2 && width !== 4) return;
    if (!this.inRange(offset, width)) return;
    const src = this.scratchViews[width]!;
    let v = value >>> 0;
    for (let i = 0; i < width; i++) {
      src[littleEndian ? i : width - 1 - i] = v & 0xff;
      v >>>= 8;
    }
    try {
      this.device.writeConfig(offset, src, features, littleEndian);
    } catch (e) {
      this.log.error(`config write threw: ${String(e)}`);
    }
  }

  readBytes(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    dst.fill(0);
    const size = this.device.configSize;
    if (!Number.isInteger(offset) || offset < 0 || offset >= size) return;
    // Out of range bytes read 0 (2.5): only the part inside the config is asked of the device.
    const n = Math.min(dst.length, size - offset);
    if (n <= 0) return;
    try {
      this.device.readConfig(offset, dst.subarray(0, n), features, littleEndian);
    } catch (e) {
      this.log.error(`config read threw: ${String(e)}`);
      dst.fill(0);
    }
  }

  /** Byte-stream write; the part outside the config is ignored. */
  writeBytes(offset: number, src: Uint8Array, features: bigint, littleEndian: boolean): void {
    const size = this.device.configSize;
    if (!Number.isInteger(offset) || offset < 0 || offset >= size) return;
    const n = Math.min(src.length, size - offset);
    if (n <= 0) return;
    try {
      this.device.writeConfig(offset, src.subarray(0, n), features, littleEndian);
    } catch (e) {
      this.log.error(`config write threw: ${String(e)}`);
    }
  }

  private inRange(offset: number, width: number): boolean {
    return Number.isInteger(offset) && offset >= 0 && offset + width <= this.device.configSize;
  }
}
