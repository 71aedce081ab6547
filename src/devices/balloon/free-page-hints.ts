/**
 * 5.5.6.5 Free page hinting, device side: the host's command ID in `free_page_hint_cmd_id`, and
 * the free_page_vq where the driver answers with an output buffer holding that ID, then input
 * buffers naming free pages, then an output buffer holding STOP. Hints are for a host that wants
 * to skip copying free pages (migration); the device never modifies a hinted page (it takes no
 * MAY of device/balloon/15, so device/balloon/16 holds by construction).
 *
 * Untrusted guest: an ID that is not the current one makes the pages after it ignored
 * (device/balloon/14); a short or faulty buffer is used and ignored; the collected ranges are
 * bounded (MAX_KEPT_RANGES); no allocation per buffer beyond the kept ranges.
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { ChainCursor } from '../../queue/chain.js';
import { BALLOON_FIRST_HINT_CMD_ID, BalloonCmdId } from '../../spec/balloon.js';

/** Ranges kept per round for `hints()` at most (the callback sees them all). */
export const MAX_KEPT_RANGES = 4096;
const MAX_CMD_ID = 0xffff_ffff;

/** A free range the driver hinted under command ID `cmdId` (guest-physical). */
export interface FreePageHint {
  /** Guest-physical address of the range's first byte. */
  readonly addr: number;
  /** Length of the range in bytes. */
  readonly len: number;
  /** The free_page_hint_cmd_id the driver's round reported it under (5.5.6.5). */
  readonly cmdId: number;
}

/** Called for each free range the driver hints (VIRTIO_BALLOON_F_FREE_PAGE_HINT): guest-physical `addr`, `len` bytes, under command `cmdId`. */
export type FreePageHintListener = (addr: number, len: number, cmdId: number) => void;

export class FreePageHints {
  /** The value of free_page_hint_cmd_id. */
  private current: number = BalloonCmdId.STOP;
  /** The last ID handed out (IDs only grow: device/balloon/13 is kept without bookkeeping). */
  private lastIssued = BalloonCmdId.DONE as number;
  /** The ID of the driver's latest output buffer (pages after it belong to that round). */
  private driverCmd: number = BalloonCmdId.STOP;
  private kept: FreePageHint[] = [];
  private hintedBytesNow = 0;
  private ignored = 0;
  private stops = 0;
  private stopWaiters: { cmdId: number; resolve: () => void }[] = [];
  /** Round IDs whose STOP arrived (the latest few only: bounded). */
  private readonly stopsAfter = new Set<number>();
  private readonly reader = new ChainCursor(false);
  private readonly word = new Uint8Array(4);
  private readonly wordView = new DataView(this.word.buffer);

  constructor(
    private readonly onHint: FreePageHintListener | undefined,
    private readonly onWarn: (e: unknown) => void,
  ) {}

  /** free_page_hint_cmd_id now. */
  get cmdId(): number {
    return this.current;
  }
  /** Bytes hinted under the current (or last) command ID. */
  get hintedBytes(): number {
    return this.hintedBytesNow;
  }
  /** Hinted ranges ignored: under a stale ID (device/balloon/14) or outside a round. */
  get ignoredHints(): number {
    return this.ignored;
  }
  /** STOP buffers received from the driver. */
  get stopsReceived(): number {
    return this.stops;
  }
  /** The ranges hinted in the current round (at most MAX_KEPT_RANGES; copy what you keep). */
  hints(): readonly FreePageHint[] {
    return this.kept;
  }

  /** Starts a round with a fresh command ID (never one used before: device/balloon/13). */
  start(): number {
    this.lastIssued = this.lastIssued >= MAX_CMD_ID ? BALLOON_FIRST_HINT_CMD_ID : this.lastIssued + 1;
    this.current = this.lastIssued;
    this.kept = [];
    this.hintedBytesNow = 0;
    return this.current;
  }

  /** STOP (device/balloon/12: the host cannot use more hints) or DONE (device/balloon/17). */
  end(value: typeof BalloonCmdId.STOP | typeof BalloonCmdId.DONE): void {
    this.current = value;
  }

  /** Resolves once the driver sent STOP after the round `cmdId` began (the caller bounds it). */
  whenStopped(cmdId: number): Promise<void> {
    if (this.stopsAfter.has(cmdId)) return Promise.resolve();
    return new Promise((resolve) => this.stopWaiters.push({ cmdId, resolve }));
  }
  /** The device was reset: no round, no driver ID; the issued IDs stay used. */
  reset(): void {
    this.current = BalloonCmdId.STOP;
    this.driverCmd = BalloonCmdId.STOP;
  }

  /** One free_page_vq buffer: an output buffer with a command ID and/or input buffers of pages. */
  handle(req: QueueRequest, littleEndian: boolean): number {
    const c = req.chain;
    if (c.fault !== null) return 0;
    if (c.readableBytes >= 4) {
      this.reader.reset(c);
      this.reader.read(this.word, 0, 4);
      // device/balloon/18: a legacy driver writes the ID in its own byte order.
      this.onCommand(this.wordView.getUint32(0, littleEndian));
    }
    for (let i = c.readableCount; i < c.count; i++) this.onPages(c.addrs[i]!, c.lens[i]!);
    return 0;
  }

  private onCommand(id: number): void {
    if (id === BalloonCmdId.STOP) {
      this.stops++;
      const done = this.driverCmd;
      this.driverCmd = BalloonCmdId.STOP;
      if (done >= BALLOON_FIRST_HINT_CMD_ID) {
        if (this.stopsAfter.size >= 16) this.stopsAfter.clear();
        this.stopsAfter.add(done);
        const ready = this.stopWaiters.filter((w) => w.cmdId === done);
        this.stopWaiters = this.stopWaiters.filter((w) => w.cmdId !== done);
        for (const w of ready) w.resolve();
      }
      return;
    }
    this.driverCmd = id;
  }

  private onPages(addr: number, len: number): void {
    // device/balloon/14: only pages under the ID now in free_page_hint_cmd_id count.
    if (this.driverCmd !== this.current || this.current < BALLOON_FIRST_HINT_CMD_ID) {
      this.ignored++;
      return;
    }
    this.hintedBytesNow += len;
    if (this.kept.length < MAX_KEPT_RANGES) this.kept.push({ addr, len, cmdId: this.current });
    if (!this.onHint) return;
    try {
      this.onHint(addr, len, this.current);
    } catch (e) {
      this.onWarn(e);
    }
  }
}
