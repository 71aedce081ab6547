/**
 * The clocks of the RTC device (5.23.6.1): readings in nanoseconds as 64-bit values, computed
 * from the host's POSIX clock, its monotonic clock, and a leap second table for TAI and the
 * smeared clocks. No BigInt and no allocation per reading: a reading is two 32-bit halves in a
 * reusable `U64`.
 *
 * - UTC: the host's POSIX clock (whose kernel steps back at a positive leap second and forward
 *   at a negative one, device/rtc/23, /24).
 * - UTC_MAYBE_SMEARED: the same (it "steps like UTC", one of the two behaviours 5.23 allows).
 * - TAI: POSIX time + TAI-UTC from the table (device/rtc/33, /34).
 * - UTC_SMEARED: POSIX time with every leap second of the table smeared linearly, NOON_LINEAR
 *   (noon to noon, 1/86400) or UTC_SLS (the last 1000 s of the day, 0.1 %) (device/rtc/25-32).
 * - MONOTONIC: the host's monotonic clock since this process started (before any device
 *   reset, device/rtc/35, /36).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ErrorCode, VirtioError } from '../../errors.js';
import { RtcClockType, RtcSmear } from '../../spec/rtc.js';

const NS = 1e9;
const U32 = 0x1_0000_0000;

/** A 64-bit unsigned value as two 32-bit halves. */
export class U64 {
  /** The high 32 bits (unsigned). */
  hi = 0;
  /** The low 32 bits (unsigned). */
  lo = 0;
  /** Sets seconds * 1e9 + nanoseconds exactly (seconds < 2^34, nanoseconds < 1e9). */
  setNs(seconds: number, nanoseconds: number): this {
    // seconds * 1e9 needs up to 64 bits: split seconds in 16-bit limbs so every product and sum
    // stays below 2^53 (exact in a double).
    const sh = Math.floor(seconds / 65536);
    const sl = seconds - sh * 65536;
    const a = sh * NS; // < 2^53
    const b = sl * NS + nanoseconds; // < 2^53
    const ahi = Math.floor(a / 65536);
    const c = (a - ahi * 65536) * 65536 + b; // < 2^53
    const carry = Math.floor(c / U32);
    this.hi = ahi + carry;
    this.lo = c - carry * U32;
    return this;
  }
  /** -1, 0 or 1 as this is below, equal to or above `o`. */
  compare(o: U64): number {
    if (this.hi !== o.hi) return this.hi < o.hi ? -1 : 1;
    return this.lo === o.lo ? 0 : this.lo < o.lo ? -1 : 1;
  }
  /** this - o in nanoseconds as a double (approximate beyond 2^53). */
  minusNs(o: U64): number {
    return (this.hi - o.hi) * U32 + (this.lo - o.lo);
  }
  /** Sets this to the value of `o`. */
  copy(o: U64): this {
    this.hi = o.hi;
    this.lo = o.lo;
    return this;
  }
}

/** Where the clocks come from. Tests inject their own. */
export interface RtcTimeSource {
  /** POSIX time: whole seconds into out[0], nanoseconds (0..1e9) into out[1]. */
  realtime(out: Float64Array): void;
  /** Monotonic nanoseconds since an epoch before the device was created (never decreases). */
  monotonicNs(): number;
}

/** The host: Date.now() (millisecond resolution) and performance.now() (monotonic). */
export const HOST_TIME_SOURCE: RtcTimeSource = {
  realtime(out) {
    const ms = Date.now();
    const s = Math.floor(ms / 1000);
    out[0] = s;
    out[1] = (ms - s * 1000) * 1e6;
  },
  monotonicNs() {
    return Math.floor(performance.now() * 1e6);
  },
};

/** TAI - UTC from `at` (POSIX seconds, a midnight UTC) on. */
export interface LeapSecondEntry {
  /** POSIX seconds (UTC, a midnight) from which the offset applies. */
  readonly at: number;
  /** TAI - UTC in seconds from then on (37 since 2017). */
  readonly taiMinusUtc: number;
}

/** A leap second table (IERS leap-seconds.list): entries ascending, valid until `expires`. */
export interface LeapSecondTable {
  /** The offsets in force, ascending by `at`. */
  readonly entries: readonly LeapSecondEntry[];
  /** POSIX second after which the table is no longer known to be complete. */
  readonly expires: number;
}

/** Seconds from the NTP epoch (1900) to the POSIX epoch (1970). */
const NTP_TO_POSIX = 2_208_988_800;

/** Parses the IERS/tzdata `leap-seconds.list` format (NTP seconds, TAI-UTC, `#@` expiry). */
export function parseLeapSecondsList(text: string): LeapSecondTable {
  const entries: LeapSecondEntry[] = [];
  let expires = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#@')) expires = Number(line.slice(2).trim()) - NTP_TO_POSIX;
    if (line === '' || line.startsWith('#')) continue;
    const [ntp, offset] = line.split(/\s+/);
    const at = Number(ntp) - NTP_TO_POSIX;
    const taiMinusUtc = Number(offset);
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(taiMinusUtc)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `leap-seconds.list: bad line "${line}"`);
    if (entries.length > 0 && (at <= entries.at(-1)!.at || Math.abs(taiMinusUtc - entries.at(-1)!.taiMinusUtc) !== 1)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `leap-seconds.list: line "${line}" is not one leap second after the previous`);
    }
    entries.push({ at, taiMinusUtc });
  }
  if (entries.length === 0 || !Number.isSafeInteger(expires) || expires <= 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'leap-seconds.list: no entries or no expiry (#@)');
  return { entries, expires };
}

/** The system's table (tzdata), or null when absent or unreadable. */
export function systemLeapSeconds(path = '/usr/share/zoneinfo/leap-seconds.list'): LeapSecondTable | null {
  try {
    return parseLeapSecondsList(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** One clock the device provides. */
export interface RtcClockSpec {
  /** What the clock counts (VIRTIO_RTC_CLOCK_*: UTC, TAI, MONOTONIC, UTC_SMEARED...). */
  readonly type: RtcClockType;
  /** UTC_SMEARED only: NOON_LINEAR (default) or UTC_SLS. */
  readonly smearing?: RtcSmear;
  /** Whether the clock supports an alarm (with ALARM negotiated). */
  readonly alarm?: boolean;
}

/** Smear window before and after the leap (POSIX seconds), by variant. */
const SMEAR_WINDOW: Record<number, { before: number; after: number }> = {
  [RtcSmear.NOON_LINEAR]: { before: 43_200, after: 43_200 },
  [RtcSmear.UTC_SLS]: { before: 1000, after: 0 },
};

/**
 * Reads clocks. Keeps the last POSIX reading to tell the two passes through the repeated
 * second of a positive leap second apart (the host clock steps back 1 s at its start): a reading
 * below the previous one inside that second is the second pass.
 */
export class RtcClockReader {
  private readonly posix = new Float64Array(2);
  private lastSec = -1;
  private lastNs = 0;
  /** The leap (its `at`) whose repeated second the host clock is in for the second time, or -1. */
  private secondPass = -1;

  constructor(
    private readonly source: RtcTimeSource,
    private readonly leaps: LeapSecondTable | null,
  ) {}

  /** Reads clock `spec` into `out`; false when it cannot be read (no leap table for TAI/smeared). */
  read(spec: RtcClockSpec, out: U64): boolean {
    if (spec.type === RtcClockType.MONOTONIC) {
      const ns = this.source.monotonicNs();
      const s = Math.floor(ns / NS);
      out.setNs(s, ns - s * NS);
      return true;
    }
    this.source.realtime(this.posix);
    const sec = this.posix[0]!;
    const ns = this.posix[1]!;
    this.trackSteps(sec, ns);
    switch (spec.type) {
      case RtcClockType.UTC:
      case RtcClockType.UTC_MAYBE_SMEARED:
        out.setNs(sec, ns);
        return true;
      case RtcClockType.TAI: {
        if (this.leaps === null) return false;
        out.setNs(sec + this.taiMinusUtc(sec), ns);
        return true;
      }
      case RtcClockType.UTC_SMEARED:
        if (this.leaps === null) return false;
        this.smeared(sec, ns, spec.smearing ?? RtcSmear.NOON_LINEAR, out);
        return true;
      default:
        return false;
    }
  }

  private trackSteps(sec: number, ns: number): void {
    if (this.leaps !== null && (sec < this.lastSec || (sec === this.lastSec && ns < this.lastNs))) {
      const leap = this.leapAt(sec + 1, +1);
      if (leap >= 0 && this.lastSec === sec) this.secondPass = leap;
    }
    if (this.secondPass >= 0 && sec >= this.secondPass) this.secondPass = -1;
    this.lastSec = sec;
    this.lastNs = ns;
  }

  /** TAI - UTC at POSIX second `sec` (the second pass of a repeated second already counts the leap). */
  private taiMinusUtc(sec: number): number {
    const e = this.leaps!.entries;
    const probe = this.secondPass >= 0 ? this.secondPass : sec;
    let off = e[0]!.taiMinusUtc;
    for (let i = 0; i < e.length && e[i]!.at <= probe; i++) off = e[i]!.taiMinusUtc;
    return off;
  }

  /** The `at` of a leap of sign `delta` taking effect at POSIX second `at`, or -1. */
  private leapAt(at: number, delta: number): number {
    const e = this.leaps!.entries;
    for (let i = 1; i < e.length; i++) if (e[i]!.at === at && e[i]!.taiMinusUtc - e[i - 1]!.taiMinusUtc === delta) return at;
    return -1;
  }

  /**
   * Smeared UTC: inside a leap's window [L - before, L + after) the clock runs at
   * span / (span + delta) of real time, so it meets UTC again at the window's end without a step.
   * Real time since the window start is POSIX time since it, plus delta once the leap happened.
   */
  private smeared(sec: number, ns: number, variant: RtcSmear, out: U64): void {
    const w = SMEAR_WINDOW[variant] ?? SMEAR_WINDOW[RtcSmear.NOON_LINEAR]!;
    const e = this.leaps!.entries;
    for (let i = 1; i < e.length; i++) {
      const at = e[i]!.at;
      const delta = e[i]!.taiMinusUtc - e[i - 1]!.taiMinusUtc;
      const start = at - w.before;
      if (sec < start || sec >= at + w.after) continue;
      const happened = sec >= at || this.secondPass === at;
      const realNs = (sec - start + (happened ? delta : 0)) * NS + ns;
      const span = w.before + w.after;
      const smearedNs = Math.floor((realNs * span) / (span + delta));
      const s = Math.floor(smearedNs / NS);
      out.setNs(start + s, smearedNs - s * NS);
      return;
    }
    out.setNs(sec, ns);
  }
}
