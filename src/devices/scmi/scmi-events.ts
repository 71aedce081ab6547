/**
 * 5.17.6.3 eventq Operation: the driver's buffers wait here until the platform has a
 * notification or a delayed response for the agent. Each buffer takes one message (header and
 * payload).
 *
 * Delayed responses are never dropped (device/scmi/13): they wait for a buffer; their number is
 * bounded by the commands that may be pending (the sensor protocol refuses more with BUSY).
 * Notifications raised while no buffer waits are kept, up to MAX_PENDING_NOTIFICATIONS, and then
 * dropped (device/scmi/9). A buffer too small for the next message (the driver broke
 * driver/scmi/6) is used at once with length 0: a notification meant for it is omitted
 * (device/scmi/12), a delayed response waits for the next buffer.
 */
import type { QueueServer, QueueRequest } from '../../device/queue-server.js';
import { ChainCursor } from '../../queue/chain.js';
import { ScmiHeader, ScmiMessageType, scmiHeader } from '../../spec/scmi.js';

/** Notifications kept while the driver has no buffer in the eventq. */
export const MAX_PENDING_NOTIFICATIONS = 16;

interface P2aMessage {
  readonly bytes: Uint8Array;
  readonly delayed: boolean;
}

/**
 * The device's eventq (5.17.6.2, with VIRTIO_SCMI_F_P2A_CHANNELS): P2A messages go into the
 * buffers the driver posted; delayed responses wait for a buffer, notifications are kept up to
 * MAX_PENDING_NOTIFICATIONS and then dropped.
 */
export class ScmiEventQueue {
  private buffers: QueueRequest[] = [];
  private pending: P2aMessage[] = [];
  private active = false;
  private readonly writer = new ChainCursor(true);
  /** Notifications dropped for want of buffers (device/scmi/9) or too small ones (device/scmi/12). */
  dropped = 0;
  /** The eventq handler: the buffer waits for a message. */
  readonly serve = (req: QueueRequest): number | void => this.take(req);

  constructor(private readonly server: QueueServer) {}

  /** DRIVER_OK with VIRTIO_SCMI_F_P2A_CHANNELS: the eventq exists. */
  start(): void {
    this.active = true;
  }

  /** Driver buffers waiting for a message. */
  get buffersWaiting(): number {
    return this.buffers.length;
  }

  /** Messages waiting for a buffer. */
  get messagesWaiting(): number {
    return this.pending.length;
  }

  /** Delayed responses waiting for a buffer. */
  get delayedWaiting(): number {
    let n = 0;
    for (const m of this.pending) if (m.delayed) n++;
    return n;
  }

  /** Sends a delayed response to command (`protocolId`, `messageId`, `token`): never dropped. */
  delayedResponse(protocolId: number, messageId: number, token: number, payload: Uint8Array): void {
    if (!this.active) return;
    this.pending.push({ bytes: message(scmiHeader(protocolId, messageId, ScmiMessageType.DELAYED_RESPONSE, token), payload), delayed: true });
    this.deliver();
  }

  /** Sends a notification, or keeps it for later, or drops it when too many wait (device/scmi/9). */
  notify(protocolId: number, messageId: number, payload: Uint8Array): void {
    if (!this.active) return;
    let kept = 0;
    for (const m of this.pending) if (!m.delayed) kept++;
    if (kept >= MAX_PENDING_NOTIFICATIONS && this.buffers.length === 0) {
      this.dropped++;
      return;
    }
    this.pending.push({ bytes: message(scmiHeader(protocolId, messageId, ScmiMessageType.NOTIFICATION, 0), payload), delayed: false });
    this.deliver();
  }

  /** The eventq stopped (reset, queue reset): its buffers are the driver's again. */
  queueStopped(): void {
    this.buffers = [];
  }

  /** Device reset: nothing pending survives. */
  reset(): void {
    this.buffers = [];
    this.pending = [];
    this.active = false;
  }

  private take(req: QueueRequest): number | void {
    // driver/scmi/5: a buffer with device-readable parts (or unmapped) is not used for messages.
    if (req.chain.fault !== null || req.chain.readableCount > 0 || req.chain.writableBytes < ScmiHeader.SIZE) return 0;
    this.buffers.push(req);
    this.deliver();
  }

  private deliver(): void {
    while (this.buffers.length > 0 && this.pending.length > 0) {
      const req = this.buffers.shift()!;
      if (!this.server.isLive(req)) continue;
      const m = this.pending[0]!;
      if (req.chain.writableBytes < m.bytes.length) {
        // Too small for the message (driver/scmi/6): given back unused.
        if (!m.delayed) {
          this.pending.shift();
          this.dropped++;
        }
        this.server.complete(req, 0);
        continue;
      }
      this.pending.shift();
      this.server.complete(req, this.writer.reset(req.chain).write(m.bytes));
    }
  }
}

function message(header: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(ScmiHeader.SIZE + payload.length);
  new DataView(b.buffer).setUint32(0, header, true);
  b.set(payload, ScmiHeader.SIZE);
  return b;
}
