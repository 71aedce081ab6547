/**
 * Memory statistics (5.5.6.4) of the host virtio-ts runs on, for a BalloonDriver's `stats`
 * supplier: every tag Linux's virtio_balloon sends, from /proc/meminfo and /proc/vmstat with the
 * same definitions (sizes in bytes, faults and hugetlb allocations as counts); elsewhere only
 * what Node knows (free and total memory).
 */
import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { BALLOON_PAGE_SIZE, BalloonStatTag } from '../../spec/balloon.js';
import type { BalloonStats } from './balloon-device.js';

function fields(text: string, sep: RegExp): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.split(sep);
    const n = v === undefined ? NaN : parseInt(v.trim(), 10);
    if (k !== undefined && k !== '' && Number.isSafeInteger(n)) m.set(k.trim(), n);
  }
  return m;
}

/** The statistics from the text of /proc/meminfo and /proc/vmstat (absent fields are left out). */
export function parseLinuxMemoryStats(meminfo: string, vmstat: string): BalloonStats {
  const mi = fields(meminfo, /:/);
  const vm = fields(vmstat, / /);
  const out: Record<number, number> = {};
  const kib = (k: string, tag: number): void => {
    const v = mi.get(k);
    if (v !== undefined) out[tag] = v * 1024;
  };
  const pages = (k: string, tag: number): void => {
    const v = vm.get(k);
    if (v !== undefined) out[tag] = v * BALLOON_PAGE_SIZE;
  };
  const count = (k: string, tag: number): void => {
    const v = vm.get(k);
    if (v !== undefined) out[tag] = v;
  };
  pages('pswpin', BalloonStatTag.SWAP_IN);
  pages('pswpout', BalloonStatTag.SWAP_OUT);
  count('pgmajfault', BalloonStatTag.MAJFLT);
  // Linux reports minor faults as all faults minus the major ones.
  const all = vm.get('pgfault');
  const major = vm.get('pgmajfault');
  if (all !== undefined && major !== undefined) out[BalloonStatTag.MINFLT] = Math.max(0, all - major);
  kib('MemFree', BalloonStatTag.MEMFREE);
  kib('MemTotal', BalloonStatTag.MEMTOT);
  kib('MemAvailable', BalloonStatTag.AVAIL);
  kib('Cached', BalloonStatTag.CACHES);
  count('htlb_buddy_alloc_success', BalloonStatTag.HTLB_PGALLOC);
  count('htlb_buddy_alloc_fail', BalloonStatTag.HTLB_PGFAIL);
  return out;
}

/** This host's statistics now (read synchronously: the supplier runs when a buffer is posted). */
export function hostMemoryStats(): BalloonStats {
  try {
    return parseLinuxMemoryStats(readFileSync('/proc/meminfo', 'utf8'), readFileSync('/proc/vmstat', 'utf8'));
  } catch {
    return { [BalloonStatTag.MEMFREE]: freemem(), [BalloonStatTag.MEMTOT]: totalmem() };
  }
}
