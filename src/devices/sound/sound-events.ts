/**
 * 5.14.6 the sound device's event queue: the driver's empty buffers (driver/sound/2: at least
 * struct virtio_snd_event, device-writable only, driver/sound/3) wait here for jack and PCM
 * notifications. Events raised while no buffer waits are kept in a fixed ring of
 * MAX_PENDING_EVENTS; beyond it the oldest is overwritten (the chapter has no "events missed"
 * flag) and counted in `dropped`. Nothing is allocated per event.
 */
import type { QueueServer } from '../../device/queue-server.js';
import { ChainCursor } from '../../queue/chain.js';
import { SoundEvent } from '../../spec/sound.js';
import type { SoundRequest } from './pcm-stream.js';

export const MAX_PENDING_EVENTS = 64;

export class SoundEventQueue {
  private le = true;
  private active = false;
  /** Buffers waiting, a FIFO through the slots' `next` links. */
  private head: SoundRequest | null = null;
  private tail: SoundRequest | null = null;
  private readonly codes = new Uint32Array(MAX_PENDING_EVENTS);
  private readonly data = new Uint32Array(MAX_PENDING_EVENTS);
  private first = 0;
  private count = 0;
  /** Events overwritten while no buffer waited. */
  dropped = 0;
  private readonly out = new Uint8Array(SoundEvent.SIZE);
  private readonly view = new DataView(this.out.buffer);
  private readonly writer = new ChainCursor(true);
  /** The eventq handler: a good buffer waits for an event; a bad one returns at once, empty. */
  readonly serve = (req: SoundRequest): number | void => this.take(req);

  constructor(private readonly server: QueueServer<SoundRequest>) {}

  configure(littleEndian: boolean): void {
    this.le = littleEndian;
    this.active = true;
  }

  /** Events waiting for a buffer. */
  get pending(): number {
    return this.count;
  }

  raise(code: number, data: number): void {
    if (!this.active) return;
    if (this.count === MAX_PENDING_EVENTS) {
      this.first = (this.first + 1) % MAX_PENDING_EVENTS;
      this.count--;
      this.dropped++;
    }
    const at = (this.first + this.count) % MAX_PENDING_EVENTS;
    this.codes[at] = code;
    this.data[at] = data;
    this.count++;
    this.deliver();
  }

  /** The eventq stopped (queue reset): its buffers are the driver's again. */
  queueStopped(): void {
    this.head = this.tail = null;
  }

  reset(): void {
    this.head = this.tail = null;
    this.count = 0;
    this.first = 0;
    this.active = false;
  }

  private take(req: SoundRequest): number | void {
    const c = req.chain;
    // driver/sound/2, driver/sound/3: a readable or short buffer cannot carry an event.
    if (c.fault !== null || c.readableBytes !== 0 || c.writableBytes < SoundEvent.SIZE) return 0;
    req.next = null;
    if (this.tail === null) this.head = req;
    else this.tail.next = req;
    this.tail = req;
    this.deliver();
  }

  private deliver(): void {
    while (this.head !== null && this.count > 0) {
      const req = this.head;
      this.head = req.next;
      if (this.head === null) this.tail = null;
      req.next = null;
      if (!this.server.isLive(req)) continue;
      const i = this.first;
      this.first = (this.first + 1) % MAX_PENDING_EVENTS;
      this.count--;
      this.view.setUint32(SoundEvent.CODE, this.codes[i]!, this.le);
      this.view.setUint32(SoundEvent.DATA, this.data[i]!, this.le);
      this.server.complete(req, this.writer.reset(req.chain).write(this.out));
    }
  }
}
