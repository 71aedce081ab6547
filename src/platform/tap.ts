/**
 * Linux TAP devices through the native addon (native/tap.c): open or create a TAP interface and
 * move frames through its fd. Needs /dev/net/tun and CAP_NET_ADMIN (or an interface made for
 * this user with `ip tuntap add ... user`). Every failure is a PlatformError carrying the errno.
 */
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

interface TapAddon {
  tapOpen(name: string, vnetHdrSize: number): [number, string];
  tapSetOffload(fd: number, flags: number): void;
  tapRead(fd: number, hdr: Uint8Array, data: Uint8Array, len: number): number;
  tapWrite(fd: number, hdr: Uint8Array, data: Uint8Array, len: number): number;
  close(fd: number): void;
}

/** TUNSETOFFLOAD bits (include/uapi/linux/if_tun.h): what the kernel may hand the reader. */
export const TunOffload = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
} as const;

/** Longest interface name (IFNAMSIZ - 1). */
export const TAP_NAME_MAX = 15;

function addon(): TapAddon {
  const a = loadNativeAddon();
  if (typeof a['tapOpen'] !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no TAP support (rebuild it: npm run install)');
  return a as unknown as TapAddon;
}

/** An open TAP fd. Reads and writes are non-blocking: -1 means "nothing now". */
export class TapDevice {
  private closed = false;

  private constructor(
    private readonly native: TapAddon,
    readonly fd: number,
    /** The interface name the kernel gave (the one asked for, or tapN). */
    readonly name: string,
    /** Bytes of virtio_net_hdr in front of every frame both ways (0: none). */
    readonly vnetHdrSize: number,
  ) {}

  /**
   * Attaches to the TAP interface `name` (created when it does not exist; "" lets the kernel
   * name it). With `vnetHdrSize` (10 or 12) every frame carries a virtio_net_hdr (IFF_VNET_HDR).
   */
  static open(name: string, vnetHdrSize = 0): TapDevice {
    if (Buffer.byteLength(name) > TAP_NAME_MAX || name.includes('\0')) throw new PlatformError('EINVAL', `TAP name "${name}" is not a usable interface name`);
    const a = addon();
    let fd: number;
    let actual: string;
    try {
      [fd, actual] = a.tapOpen(name, vnetHdrSize);
    } catch (e) {
      throw toPlatformError(`TAP ${name === '' ? '(new)' : name}`, e);
    }
    return new TapDevice(a, fd, actual, vnetHdrSize);
  }

  /** TUNSETOFFLOAD: which offloads (TunOffload bits) frames read from the TAP may carry. */
  setOffload(flags: number): void {
    try {
      this.native.tapSetOffload(this.fd, flags);
    } catch (e) {
      throw toPlatformError(`TAP ${this.name} offload`, e);
    }
  }

  /**
   * One frame: its virtio_net_hdr into the whole of `hdr` (vnetHdrSize bytes), the frame into
   * data[0, len). Returns the bytes read, header included, or -1 when none waits. No copy.
   */
  read(hdr: Uint8Array, data: Uint8Array, len: number): number {
    try {
      return this.native.tapRead(this.fd, hdr, data, len);
    } catch (e) {
      throw toPlatformError(`TAP ${this.name} read`, e);
    }
  }

  /** One frame: the whole of `hdr`, then data[0, len). Bytes written, or -1 when the queue is full. */
  write(hdr: Uint8Array, data: Uint8Array, len: number): number {
    try {
      return this.native.tapWrite(this.fd, hdr, data, len);
    } catch (e) {
      throw toPlatformError(`TAP ${this.name} write`, e);
    }
  }

  /** Closes the fd; a non-persistent interface disappears with it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.native.close(this.fd);
    } catch (e) {
      throw toPlatformError(`TAP ${this.name} close`, e);
    }
  }
}
