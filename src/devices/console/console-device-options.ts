/**
 * The options of the virtio console device (5.3) and the counters of what it ignored.
 */
import type { Logger } from '../../log.js';
import type { ConsolePortOptions } from './console-port.js';

/** Options of ConsoleDevice. */
export interface ConsoleDeviceOptions {
  /** The ports present at start (index = port id). Default: one console port. */
  readonly ports?: readonly (ConsolePortOptions | null)[];
  /** max_nr_ports (1..1024). Default: the number of `ports`, at least 1. */
  readonly maxNrPorts?: number;
  /** Offer VIRTIO_CONSOLE_F_MULTIPORT. Default: when maxNrPorts > 1. */
  readonly multiport?: boolean;
  /** Console size of port 0: offers VIRTIO_CONSOLE_F_SIZE when given. */
  readonly size?: {
    /** Columns (characters per line): `cols` of struct virtio_console_config. */
    readonly cols: number;
    /** Rows (lines): `rows` of struct virtio_console_config. */
    readonly rows: number;
  };
  /** Offer VIRTIO_CONSOLE_F_EMERG_WRITE. Default true. */
  readonly emergencyWrite?: boolean;
  /**
   * Where emergency-write bytes go (device/console/2). Default: port 0's Readable (dropped and
   * counted once it holds more than its highWaterMark, so a guest cannot grow it without bound).
   */
  readonly onEmergencyWrite?: (byte: number) => void;
  /** Maximum size of every queue. Default 128. */
  readonly queueSize?: number;
  /**
   * Called before the device touches guest memory on the host's initiative (a host write, a
   * reader wanting more, a port added or removed, a resize), i.e. outside any driver access.
   * An embedder whose guest RAM can move between accesses refreshes its views here (v86: the
   * adapter's refreshMemory(), as its wasm memory grows while the guest runs).
   */
  readonly beforeHostAccess?: () => void;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/** Counters of what the device ignored (the guest is untrusted). */
export interface ConsoleDeviceStats {
  /** Control messages too short, unmapped, of an unknown event or one the driver does not send. */
  badControl: number;
  /** Control messages naming a port that does not exist (or was not announced). */
  unknownPort: number;
  /** Data buffers with an unmapped segment or of the wrong direction (driver/console/1, 2). */
  badBuffers: number;
  /** Control messages to the driver dropped because too many were waiting. */
  droppedControl: number;
  /** Emergency-write bytes dropped because port 0's reader was not keeping up. */
  droppedEmergency: number;
  /** Guest bytes dropped because the port's host end was destroyed or not connected. */
  droppedOutput: number;
}
