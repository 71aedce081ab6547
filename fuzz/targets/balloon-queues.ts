/**
 * virtio-balloon (5.5), every queue: inflateq and deflateq (arrays of le32 PFNs: a few pages of
 * guest RAM mostly, repeated, just outside it, 0, 0xffffffff or any sometimes; or 255 to 511
 * PFNs in a pattern that strays past RAM, more than the device's 256-PFN batch; a trailing
 * partial PFN from the raw rest), statsq (10-byte virtio_balloon_stat entries: known tags and
 * one past them mostly, any u16 sometimes; the device holds the buffer until it wants fresh
 * statistics, so statsq is in heldQueues), free_page_vq (a command ID: the current one mostly,
 * STOP, DONE, a stale or any ID sometimes, or none; the writable part is the hinted range)
 * and reporting_vq (the writable part is the reported range). Between chains the input acts
 * as the host (a new target num_pages, a hinting round started, stopped or done, a request
 * for statistics) and as the driver's config writes through the core (actual and poison_val,
 * whole or byte by byte, any offset and width).
 *
 * Inflated and reported pages go to a releaser that zero-fills them, as madvise would make
 * them read, except the ring pages (a guest that balloons its own rings breaks only itself,
 * and the harness reads the used ring to check used.len). The device is built per input
 * (`freshDevice`): its hinting command IDs keep growing across a device reset
 * (device/balloon/13) and the host's num_pages stays, so a reused device would answer an input
 * that names the current ID differently. Checks (device-chains): no throw, every chain of the
 * request-style queues completed, used.len within the writable bytes, guards; the balloon's
 * pages, actual, hints and statistics are the host state of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { DATA, GUEST_BASE, GUEST_SIZE } from '../harness/core-rig.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { BalloonDevice } from '../../src/devices/balloon/balloon-device.js';
import type { PageReleaser } from '../../src/devices/balloon/page-release.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { BALLOON_PFN_SHIFT, BalloonCmdId, BalloonConfig, BalloonQueue } from '../../src/spec/balloon.js';

/** Five queues, each with room for an input's chains of it. */
const QUEUE_SIZE = 16;
/** The first page frame of guest RAM (16 pages of 4 KiB). */
const PFN0 = GUEST_BASE >>> BALLOON_PFN_SHIFT;
const TARGETS = [0, 4, 16, 0xffff_ffff];
const HUGE_COUNTS = [255, 256, 257, 300, 511];
const WIDTHS = [1, 2, 4];

/** Zero-fills the released range where it lies in the data area (never the rings). */
const dataPageReleaser: PageReleaser = (memory, addr, len) => {
  const from = Math.max(addr, DATA);
  const to = Math.min(addr + len, GUEST_BASE + GUEST_SIZE);
  if (to <= from) return 0;
  memory.fill(from, to - from, 0);
  return to - from;
};

/** A host API call the device refuses for a feature the driver did not accept (a host's misuse, not the guest's). */
function unlessNotNegotiated(call: () => unknown): void {
  try {
    call();
  } catch (e) {
    if (!(e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT)) throw e;
  }
}

/** A host action or config write before the chain, one time in three. */
function hostStep(r: ByteReader, core: DeviceCore): void {
  const act = r.u8();
  if (act < 0xb0) return;
  const device = core.device as BalloonDevice;
  switch (act & 7) {
    case 0:
      device.setTarget(r.pick(TARGETS));
      break;
    case 1:
      unlessNotNegotiated(() => device.startHinting());
      break;
    case 2:
      unlessNotNegotiated(() => device.stopHinting());
      break;
    case 3:
      unlessNotNegotiated(() => device.finishHinting());
      break;
    case 4:
      // Never answered when the driver sends no new buffer: one pending request, dropped with the device.
      device.requestStats().catch(() => {});
      break;
    case 5:
      core.writeConfig(BalloonConfig.ACTUAL + r.below(4), r.pick(WIDTHS), r.u32());
      break;
    case 6:
      core.writeConfig(BalloonConfig.POISON_VAL + r.below(4), r.pick(WIDTHS), r.u32());
      break;
    default:
      core.writeConfig(r.below(BalloonConfig.SIZE + 4), r.pick(WIDTHS), r.u32());
  }
}

/** PFNs: a few mostly (pages of RAM, a few past it; odd values sometimes), or 255-511 in a pattern (odd & 1). */
function pfns(w: ByteWriter, r: ByteReader, odd: number): void {
  if ((odd & 1) !== 0) {
    const count = r.pick(HUGE_COUNTS);
    const start = r.u8();
    const stride = 1 + r.below(4);
    for (let i = 0; i < count; i++) w.u32(PFN0 + ((start + i * stride) % 24));
    return;
  }
  const count = r.below(9);
  for (let i = 0; i < count; i++) {
    const b = r.u8();
    if (b < 0xe0) w.u32(PFN0 + (b % 20));
    else w.u32((b & 3) === 3 ? r.u32() : [0, 0xffff_ffff, PFN0 - 1][b & 3]!);
  }
}

/** Statistics: up to 11 entries, known tags and one past them, values in pages; odd & 1 any tag, odd & 2 any value. */
function stats(w: ByteWriter, r: ByteReader, odd: number): void {
  const n = r.below(12);
  for (let i = 0; i < n; i++) {
    w.u16((odd & 1) !== 0 ? r.u16() : r.below(11));
    if ((odd & 2) !== 0) {
      const raw = r.bytes(8);
      w.bytes(raw).bytes(new Uint8Array(8 - raw.length));
    } else w.u64(r.u16() * 4096);
  }
}

/** The free page command: none, STOP, DONE, the current ID (twice as likely), the next, the first, any. */
function command(w: ByteWriter, r: ByteReader, device: BalloonDevice): void {
  const kind = r.below(8);
  if (kind === 0) return;
  const current = device.freePageHintCmdId;
  w.u32(kind === 7 ? r.u32() : [0, BalloonCmdId.STOP, BalloonCmdId.DONE, current, current, current + 1, 2][kind]!);
}

/** Odd fields: a second byte, one time in four (see pfns and stats). */
function header(queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  hostStep(r, core);
  const w = new ByteWriter();
  switch (queue) {
    case BalloonQueue.INFLATE:
    case BalloonQueue.DEFLATE:
      pfns(w, r, r.u8() >= 0xc0 ? r.u8() : 0);
      break;
    case BalloonQueue.STATS:
      stats(w, r, r.u8() >= 0xc0 ? r.u8() : 0);
      break;
    case BalloonQueue.FREE_PAGE:
      command(w, r, core.device as BalloonDevice);
      break;
    default:
      break; // reporting_vq: the writable part is the report
  }
  return w.finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = new BalloonDevice({ numPages: 4, queueSize: QUEUE_SIZE, releasePages: dataPageReleaser });
    const state = (): Uint8Array =>
      new TextEncoder().encode(
        JSON.stringify({
          pages: device.balloonedPages,
          refused: device.refusedPfns,
          target: device.numPages,
          actual: device.actual,
          poison: device.poisonVal,
          cmdId: device.freePageHintCmdId,
          hinted: device.hintedBytes,
          ignored: device.ignoredHints,
          released: device.releasedBytes,
          stats: device.stats,
        }),
      );
    return { device, hostState: () => [state()] };
  },
  queues: 5,
  heldQueues: [BalloonQueue.STATS],
  header,
  queueSize: QUEUE_SIZE,
  freshDevice: { dispose: () => {} },
};

/** No host step, no odd field, the PFNs as bytes (PFN0 + b). */
function pfnChain(queue: number, pages: number[], act: number[] = [0]): SeedChain {
  return { queue, header: [...act, 0, pages.length, ...pages], writable: 0 };
}

/** A stats buffer: no host step (or `act`), no odd field, the entries as tag and value in pages. */
function statsChain(entries: [number, number][], act: number[] = [0]): SeedChain {
  return { queue: BalloonQueue.STATS, header: [...act, 0, entries.length, ...entries.flatMap(([tag, pages]) => [tag, pages & 0xff, pages >> 8])], writable: 0 };
}

/**
 * Seeds: a driver following num_pages (inflate 4 pages, commit actual, deflate 2, commit); the
 * statistics protocol (a buffer, the host's request, the answer) and a hinting round (the host
 * starts it, the driver sends the ID, a hinted range, STOP, the host is done); page reports and
 * an inflate of 300 PFNs; without the features, inflate and deflate only.
 */
function seeds(): Uint8Array[] {
  const writeActual = (pages: number): number[] => [0xb5, 0, WIDTHS.indexOf(4), pages, 0, 0, 0];
  const freePage = (kind: number, act: number[] = [0], writable = 0): SeedChain => ({ queue: BalloonQueue.FREE_PAGE, header: [...act, kind], writable, emptyMessage: kind === 0 });
  const report = (writable: number): SeedChain => ({ queue: BalloonQueue.REPORTING, header: [0], writable, emptyMessage: true });
  return [
    deviceChainsSeed(
      true,
      [
        [pfnChain(BalloonQueue.INFLATE, [8, 9, 10, 11]), pfnChain(BalloonQueue.DEFLATE, [10, 11], writeActual(4))],
        [pfnChain(BalloonQueue.INFLATE, [3], writeActual(2))],
      ],
      spec,
    ),
    deviceChainsSeed(
      true,
      [
        [statsChain([[4, 100], [5, 400]]), statsChain([[4, 90], [5, 400], [6, 200]], [0xb4])],
        // startHinting, then the current ID (kind 3) with a hinted range, a second range, STOP (kind 1); then DONE.
        [freePage(3, [0xb1], 512), freePage(0, [0], 2048), freePage(1)],
        [pfnChain(BalloonQueue.INFLATE, [1], [0xb3])],
      ],
      spec,
    ),
    deviceChainsSeed(
      true,
      [
        [report(2048), report(512)],
        [{ queue: BalloonQueue.INFLATE, header: [0xb0, TARGETS.indexOf(16), 0xc0, 1, HUGE_COUNTS.indexOf(300), 4, 1], writable: 0 }],
      ],
      spec,
    ),
    deviceChainsSeed(false, [[pfnChain(BalloonQueue.INFLATE, [1, 2]), pfnChain(BalloonQueue.DEFLATE, [2, 5])]], spec),
  ];
}

export const target: FuzzTarget = { name: 'balloon-queues', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
