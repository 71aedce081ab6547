/**
 * `--pcap FILE` of `virtio-ts net` (one switch or the threaded mesh): a PcapPort capturing a
 * switch, written out every second and at exit; a write failure is logged once and stops the
 * capture (the switch keeps forwarding).
 */
import type { Logger } from '../../log.js';
import { PcapPort } from './pcap-port.js';
import type { NetSwitch } from './switch.js';

/** How often the capture is written out (and at exit). */
const PCAP_FLUSH_MS = 1000;

/** A running capture of one switch into a pcap file. */
export class PcapCapture {
  /** The capture port (frames, drops, name for the exit line). */
  readonly port: PcapPort;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    sw: NetSwitch,
    private readonly logger: Logger,
  ) {
    this.port = new PcapPort({ path });
    this.port.captureFrom(sw);
    const p = this.port;
    this.timer = setInterval(() => {
      if (!p.tryFlush()) logger.error(`${path}: ${p.failure?.message ?? 'write failed'}; capture stopped`);
    }, PCAP_FLUSH_MS);
    this.timer.unref();
    logger.info(`capturing to ${path}`);
  }

  /** Stops the timer and writes out and closes the file (a failure is logged, not thrown). */
  close(): void {
    clearInterval(this.timer);
    try {
      this.port.close();
    } catch (e) {
      this.logger.error(`closing ${this.path}: ${(e as Error).message}`);
    }
  }

  /** The line logged at exit. */
  get summary(): string {
    return `${this.port.name}: ${this.port.frames} frames, ${this.port.dropped} not written`;
  }
}
