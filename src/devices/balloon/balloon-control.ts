/**
 * The balloon's host control: JSON lines on a Unix socket (`virtio-ts balloon --control PATH`).
 * One request per line, one answer line per request:
 *   {"target_pages":N}      sets num_pages (remembered for the next front-end too)
 *   {"stats":true}          asks the driver for fresh statistics (bounded wait), answers the
 *                           latest by name: {"stats":{"free-memory":...},"age_ms":...}
 *   {"query":true}          {"target_pages","actual","ballooned_pages","released_bytes",...}
 *   {"hint":"start"|"stop"|"done"}  free page hinting rounds (5.5.6.5): answers the cmd_id
 * A line that is not one of these gets {"error":"..."}; lines are bounded (a longer one closes
 * the connection) and so is the number of connections.
 */
import { type Server, type Socket, createServer } from 'node:net';
import { unlinkSync } from 'node:fs';
import type { Logger } from '../../log.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { type BalloonDevice, type BalloonNamedStats, balloonStatsByName } from './balloon-device.js';

/** Longest request line accepted. */
export const MAX_CONTROL_LINE = 4096;
const MAX_CONNECTIONS = 16;
/** How long `{"stats":true}` waits for the driver's fresh statistics before answering the last. */
export const STATS_WAIT_MS = 2000;

/** What the control acts on: the current device (null between front-ends) and the target. */
export interface BalloonControlTarget {
  /** The device serving the current front-end, or null while none is connected. */
  device(): BalloonDevice | null;
  /** Sets num_pages, the balloon size the guest should reach, in 4 KiB pages (5.5.6). */
  setTarget(pages: number): void;
  /** The num_pages target last set, in 4 KiB pages. */
  target(): number;
}

type Answer = Record<string, unknown>;

/** Answers one request line. Never throws: a bad request is an `error` answer. */
export async function answerControlLine(line: string, t: BalloonControlTarget): Promise<Answer> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { error: 'not JSON' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return { error: 'not a JSON object' };
  const r = req as Record<string, unknown>;
  const d = t.device();
  try {
    if ('target_pages' in r) {
      const n = r['target_pages'];
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffff_ffff) return { error: 'target_pages must be an integer in 0..2^32-1' };
      t.setTarget(n);
      return { ok: true, target_pages: n };
    }
    if (r['stats'] === true) {
      if (d === null) return { error: 'no driver connected' };
      let stats: BalloonNamedStats | null = d.namedStats;
      let fresh = false;
      const got = await Promise.race([d.requestStats().then((s) => balloonStatsByName(s)), new Promise<null>((res) => setTimeout(() => res(null), STATS_WAIT_MS).unref())]);
      if (got !== null) {
        stats = got;
        fresh = true;
      }
      return { stats, fresh };
    }
    if (r['query'] === true) {
      return {
        target_pages: t.target(),
        connected: d !== null,
        actual: d?.actual ?? 0,
        ballooned_pages: d?.balloonedPages ?? 0,
        refused_pfns: d?.refusedPfns ?? 0,
        released_bytes: d?.releasedBytes ?? 0,
        free_page_hint_cmd_id: d?.freePageHintCmdId ?? 0,
        hinted_bytes: d?.hintedBytes ?? 0,
        poison_val: d?.poisonVal ?? 0,
      };
    }
    if (typeof r['hint'] === 'string') {
      if (d === null) return { error: 'no driver connected' };
      if (r['hint'] === 'start') return { cmd_id: d.startHinting() };
      if (r['hint'] === 'stop') d.stopHinting();
      else if (r['hint'] === 'done') d.finishHinting();
      else return { error: 'hint must be start, stop or done' };
      return { cmd_id: d.freePageHintCmdId };
    }
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
  return { error: 'unknown request (target_pages, stats, query or hint)' };
}

/** A listening control socket; `close()` ends its connections and removes the socket file. */
export interface BalloonControlServer {
  /** Stops listening, ends the open connections and removes the socket file. */
  close(): Promise<void>;
}

/** Listens on `path` (a stale socket file is replaced) for the JSON-line control protocol above, driving `t`. */
export async function serveBalloonControl(path: string, t: BalloonControlTarget, logger: Logger): Promise<BalloonControlServer> {
  try {
    unlinkSync(path); // a stale socket file from an earlier run
  } catch {
    // none
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    if (sockets.size >= MAX_CONNECTIONS) {
      s.end(JSON.stringify({ error: 'too many control connections' }) + '\n');
      return;
    }
    sockets.add(s);
    s.setEncoding('utf8');
    let buf = '';
    // Answers go out in request order, one request at a time.
    let chain: Promise<void> = Promise.resolve();
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        chain = chain.then(async () => {
          const a = await answerControlLine(line, t);
          if (!s.destroyed) s.write(JSON.stringify(a) + '\n');
        });
      }
      if (buf.length > MAX_CONTROL_LINE) {
        logger.warn('control: request line too long; connection closed');
        s.end(JSON.stringify({ error: 'line too long' }) + '\n');
        buf = '';
      }
    });
    s.on('error', () => s.destroy());
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    throw new VirtioError(ErrorCode.PLATFORM, `cannot listen on the control socket ${path}: ${String(e)}`, { cause: e });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
