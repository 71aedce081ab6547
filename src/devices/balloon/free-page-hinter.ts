/**
 * 5.5.6.5 Free page hinting, driver side. When free_page_hint_cmd_id shows a new command ID
 * (2 or more) the driver starts a round: one output buffer with that ID (driver/balloon/24-26),
 * then free pages of its DMA memory as input buffers, one block per buffer (driver/balloon/27),
 * checking the ID before each block and stopping when it changed (driver/balloon/28), and ends
 * with an output buffer holding STOP (driver/balloon/29). Hinted pages stay out of use until
 * the device shows DONE, then they go back to the allocator (driver/balloon/33) without being
 * read (driver/balloon/31). Pages released before DONE (detach) are initialized first
 * (driver/balloon/32). It takes no MAY of driver/balloon/30 (early release).
 */
import type { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { BALLOON_CONFIG_LAYOUT, BALLOON_FIRST_HINT_CMD_ID, BALLOON_PAGE_SIZE, BalloonCmdId } from '../../spec/balloon.js';
import { readConfigField } from '../../spec/config-layout.js';

/** Options of a {@link FreePageHinter}. */
export interface FreePageHinterOptions {
  /** Pages hinted per round at most (the "free memory" this driver can spare). Default 256. */
  readonly maxPages?: number;
  /** Pages per input buffer (a block, as Linux hints high-order blocks). Default 16. */
  readonly blockPages?: number;
}

const NO_SEGMENTS: readonly Segment[] = [];
/** Page blocks offered to the device before waiting for the oldest. */
const IN_FLIGHT = 8;

/**
 * Free page hinting on the driver side (VIRTIO_BALLOON_F_FREE_PAGE_HINT, 5.5.6.5): answers each
 * new command ID with a round of free pages from its DMA memory, and takes them back at DONE.
 */
export class FreePageHinter {
  /** The last command ID seen in config (Linux's cmd_id_received_cache). */
  private seen: number = BalloonCmdId.STOP;
  private readonly blocks: number[] = [];
  private round: Promise<void> = Promise.resolve();
  private rounds = 0;
  private readonly maxPages: number;
  private readonly blockPages: number;
  private stopped = false;

  constructor(
    private readonly ctx: DriverContext,
    private readonly q: RequestQueue,
    opts: FreePageHinterOptions = {},
  ) {
    this.maxPages = Math.max(0, Math.floor(opts.maxPages ?? 256));
    this.blockPages = Math.max(1, Math.floor(opts.blockPages ?? 16));
  }

  /** Pages hinted and not yet released (waiting for DONE). */
  get heldPages(): number {
    return this.blocks.length * this.blockPages;
  }
  /** Rounds started. */
  get roundsStarted(): number {
    return this.rounds;
  }
  /** Addresses of the held blocks (each `blockPages` pages). */
  heldBlocks(): readonly number[] {
    return this.blocks;
  }
  /** Resolves when the current round has ended (its STOP was used by the device). */
  whenIdle(): Promise<void> {
    return this.round;
  }

  /** free_page_hint_cmd_id (little-endian config, 5.5.4). */
  cmdId(): number {
    return readConfigField(BALLOON_CONFIG_LAYOUT, 'freePageHintCmdId', (o, l) => this.ctx.readConfig(o, l), true);
  }

  /** On a configuration change: start, stop or finish a round per the command ID. */
  onConfigChange(): void {
    if (this.stopped) return;
    const id = this.cmdId();
    if (id === this.seen) return;
    this.seen = id;
    if (id === BalloonCmdId.DONE) {
      // driver/balloon/33: the device no longer needs them; once the round ended, free them.
      this.round = this.round.then(() => this.releaseAll(false));
    } else if (id >= BALLOON_FIRST_HINT_CMD_ID) {
      this.round = this.round.then(() => this.runRound(id)).catch(() => undefined);
    }
    // STOP: the running round sees the change before its next block (driver/balloon/28).
  }

  /** Stops hinting; held pages are initialized and freed (driver/balloon/32). */
  detach(): void {
    this.stopped = true;
    this.q.detach();
    this.releaseAll(true);
  }

  private async runRound(id: number): Promise<void> {
    this.rounds++;
    // driver/balloon/25, 26: one output buffer with the current ID starts the round.
    await this.sendCmd(id);
    // A few blocks in flight at a time, so a changed ID is seen soon (driver/balloon/28).
    const pending: Promise<unknown>[] = [];
    const len = this.blockPages * BALLOON_PAGE_SIZE;
    for (let hinted = 0; hinted + this.blockPages <= this.maxPages; hinted += this.blockPages) {
      // driver/balloon/28: stop once the device changed the ID (STOP, DONE or a new round).
      if (this.stopped || this.cmdId() !== id) break;
      let addr: number;
      try {
        addr = this.ctx.dma.alloc(len, BALLOON_PAGE_SIZE);
      } catch {
        break; // no more free memory: the round ends (driver/balloon/29)
      }
      this.blocks.push(addr);
      // driver/balloon/27: the pages as one device-writable buffer.
      pending.push(this.q.submit(NO_SEGMENTS, [{ addr, len }]).catch(() => undefined));
      if (pending.length >= IN_FLIGHT) await pending.shift();
    }
    // driver/balloon/29: STOP completes the round.
    await this.sendCmd(BalloonCmdId.STOP);
    await Promise.all(pending);
  }

  /** driver/balloon/24: a 4-byte output buffer, in guest order (device/balloon/18). */
  private async sendCmd(id: number): Promise<void> {
    const addr = this.ctx.dma.alloc(4, 4);
    try {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, id, this.ctx.littleEndian);
      this.ctx.memory.write(addr, b);
      await this.q.submit([{ addr, len: 4 }], NO_SEGMENTS);
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  private releaseAll(early: boolean): void {
    const len = this.blockPages * BALLOON_PAGE_SIZE;
    for (const addr of this.blocks.splice(0)) {
      // driver/balloon/31, 32: their contents are undefined; reused early, they are initialized.
      if (early) this.ctx.memory.fill(addr, len, 0);
      this.ctx.dma.free(addr);
    }
  }
}
