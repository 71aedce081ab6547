/**
 * `--stats-interval`: one line of per-queue counters on stderr every interval, for an operator
 * watching a back-end (the `--metrics` endpoint serves the same counters to a scraper).
 */
import type { QueueCounters, QueueStats } from '../device/queue-stats.js';

/** Bytes as a short human figure (1.5KiB, 3.2MiB). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(1)}${units[u]}`;
}

/**
 * The report line: each queue that saw any traffic, with its request rate over `seconds` since
 * `previous` (the counters of the last report; none on the first).
 */
export function formatStatsLine(command: string, now: readonly QueueCounters[], previous: readonly QueueCounters[], seconds: number): string {
  const parts: string[] = [];
  for (const q of now) {
    if (q.kicks === 0 && q.requests === 0 && q.calls === 0) continue;
    const before = previous[q.queue]?.requests ?? 0;
    const rate = seconds > 0 ? (q.requests - before) / seconds : 0;
    parts.push(
      `q${q.queue} req=${q.requests} (${rate.toFixed(1)}/s) rd=${formatBytes(q.bytesRead)} wr=${formatBytes(q.bytesWritten)} ` +
        `err=${q.errors} inflight=${q.inFlight} kicks=${q.kicks} calls=${q.calls}`,
    );
  }
  return `virtio-ts ${command} stats: ${parts.length === 0 ? 'idle' : parts.join('; ')}\n`;
}

/** Writes a line every `intervalMs` until the returned function is called. */
export function startStatsReport(stats: QueueStats, command: string, intervalMs: number, write: (line: string) => void): () => void {
  let previous = stats.snapshot();
  let at = Date.now();
  const timer = setInterval(() => {
    const now = stats.snapshot();
    const t = Date.now();
    write(formatStatsLine(command, now, previous, (t - at) / 1000));
    previous = now;
    at = t;
  }, intervalMs);
  // A report alone must not keep a back-end alive.
  timer.unref();
  return () => clearInterval(timer);
}
