/**
 * `--inspect HOST:PORT`: a live queue inspector over node:http on a loopback address. It serves
 * a static page (ui/inspector/ in the package: HTML, a script drawing on canvases, CSS) and
 *
 *   GET /api/state                          the whole state as JSON (devices, rates, reset log)
 *   GET /api/events                         the same as Server-Sent Events, one per interval
 *   GET /api/chain?device=D&queue=Q&id=ID   the descriptors of one chain in flight
 *
 * Everything is read when asked for or once per interval, on the back-end's event loop,
 * without writing to a ring or to guest memory (device-snapshot.ts). Requests whose Host is not
 * a loopback name are refused, so a web page elsewhere cannot read it through DNS rebinding.
 */
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, VirtioError } from '../errors.js';
import { type DeviceSnapshot, type InspectedDevice, chainDetail, snapshotDevice } from './device-snapshot.js';
import { RateHistory, type RatePoint } from './rate-history.js';

export type { InspectedDevice } from './device-snapshot.js';

/** Where the inspector listens (a loopback address; the CLI refuses others). */
export interface InspectorAddress {
  /** The address to listen on: a loopback IP (`127.0.0.1`, `::1`) or `localhost`. */
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
}

export interface InspectorOptions {
  /** Sampling and push period (default 1000 ms). */
  readonly intervalMs?: number;
  /** How far back the plots go (default 300 s). */
  readonly historySeconds?: number;
  /** Where the page's files are (default: ui/inspector/ of this package). */
  readonly assetsDir?: URL;
}

export interface Inspector {
  /** The TCP port it listens on (the one the system chose when the address asked for 0). */
  readonly port: number;
  /** The page's address (`http://127.0.0.1:PORT/`). */
  readonly url: string;
  /** The state the page shows, now. */
  state(): InspectorState;
  /** Stops sampling, ends the event streams and open connections, and closes the server; resolves once it is closed. */
  close(): Promise<void>;
}

/** One line of the reset log: a NEEDS_RESET reason, a broken ring or a refused request, when first seen. */
export interface ResetLogEntry {
  /** When it was first seen, in ms since the epoch (the state read that saw it). */
  readonly t: number;
  /** The device's name ({@link InspectedDevice.name}). */
  readonly device: string;
  /** What happened, in words (`DEVICE_NEEDS_RESET: ...`, `queue 0 broken: ...`, `refused: ...`). */
  readonly what: string;
}

/** Everything the inspector page shows, as `GET /api/state` and each event of `/api/events` return it. */
export interface InspectorState {
  /** When the state was read, in ms since the epoch. */
  readonly now: number;
  /** The sampling and push period in ms. */
  readonly intervalMs: number;
  /** A snapshot of each watched device, in the order given to startInspector. */
  readonly devices: readonly DeviceSnapshot[];
  /** Per device name, its request and byte rates over the history, oldest first. */
  readonly rates: Readonly<Record<string, readonly RatePoint[]>>;
  /** The last 50 resets, broken rings and refusals seen, oldest first. */
  readonly resetLog: readonly ResetLogEntry[];
}

/** Event-stream clients at most (each costs one socket and one write per interval). */
const MAX_STREAMS = 32;
const RESET_LOG_LENGTH = 50;
const ASSETS: Readonly<Record<string, readonly [string, string]>> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/inspector.js': ['inspector.js', 'text/javascript; charset=utf-8'],
  '/inspector.css': ['inspector.css', 'text/css; charset=utf-8'],
};

/** ui/inspector/ beside dist/ (this file is dist/src/inspector/inspector-server.js). */
export const DEFAULT_ASSETS_DIR = new URL('../../../ui/inspector/', import.meta.url);

function loopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** Starts the inspector; resolves once it listens. */
export async function startInspector(devices: readonly InspectedDevice[], address: InspectorAddress, o: InspectorOptions = {}): Promise<Inspector> {
  const intervalMs = o.intervalMs ?? 1000;
  const capacity = Math.ceil(((o.historySeconds ?? 300) * 1000) / intervalMs) + 1;
  const assets = new Map<string, { body: Buffer; type: string }>();
  const dir = o.assetsDir ?? DEFAULT_ASSETS_DIR;
  for (const [path, [file, type]] of Object.entries(ASSETS)) {
    try {
      assets.set(path, { body: readFileSync(new URL(file, dir)), type });
    } catch (e) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `--inspect: the page's file ${file} is missing in ${dir.pathname}: ${(e as Error).message}`, { cause: e });
    }
  }
  const histories = new Map(devices.map((d) => [d.name, new RateHistory(capacity)]));
  const resetLog: ResetLogEntry[] = [];
  const lastSeen = new Map<string, string>();
  const note = (t: number, device: string, key: string, what: string | null): void => {
    const k = `${device}\0${key}`;
    if (what === null || lastSeen.get(k) === what) {
      if (what === null) lastSeen.delete(k);
      return;
    }
    lastSeen.set(k, what);
    resetLog.push({ t, device, what });
    if (resetLog.length > RESET_LOG_LENGTH) resetLog.shift();
  };

  const state = (): InspectorState => {
    const now = Date.now();
    const snaps = devices.map((d) => snapshotDevice(d));
    for (const s of snaps) {
      note(now, s.name, 'needs-reset', s.needsReset === null ? null : `DEVICE_NEEDS_RESET: ${s.needsReset}`);
      for (const q of s.queues) note(now, s.name, `ring ${q.index}`, q.broken === null ? null : `queue ${q.index} broken: ${q.broken}`);
      note(now, s.name, 'refusal', s.refusals?.last ? `refused: ${s.refusals.last}` : null);
    }
    const rates: Record<string, RatePoint[]> = {};
    for (const [name, h] of histories) rates[name] = h.rates();
    return { now, intervalMs, devices: snaps, rates, resetLog: [...resetLog] };
  };

  const streams = new Set<ServerResponse>();
  const tick = (): void => {
    const t = Date.now();
    for (const d of devices) histories.get(d.name)!.sample(t, d.stats);
    if (streams.size === 0) return;
    const data = `data: ${JSON.stringify(state())}\n\n`;
    for (const s of streams) s.write(data);
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  // The inspector must not keep a back-end alive that is otherwise done.
  timer.unref();

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }).end(body);
  };
  const json = (res: ServerResponse, status: number, v: unknown): void => send(res, status, 'application/json', JSON.stringify(v));

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!loopbackHost(req.headers.host)) return send(res, 403, 'text/plain', 'the inspector answers loopback host names only\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'GET only\n');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const asset = assets.get(url.pathname);
    if (asset) return send(res, 200, asset.type, asset.body);
    if (url.pathname === '/api/state') return json(res, 200, state());
    if (url.pathname === '/api/chain') {
      const device = devices.find((d) => d.name === url.searchParams.get('device'));
      const whole = (k: string): number => (/^\d{1,5}$/.test(url.searchParams.get(k) ?? '') ? Number(url.searchParams.get(k)) : -1);
      const queue = whole('queue');
      const id = whole('id');
      if (!device || queue < 0 || id < 0) return json(res, 400, { error: 'give device, queue and id' });
      const detail = chainDetail(device, queue, id);
      return detail ? json(res, 200, detail) : json(res, 404, { error: `no chain ${id} in flight on ${device.name} queue ${queue}` });
    }
    if (url.pathname === '/api/events') {
      if (streams.size >= MAX_STREAMS) return send(res, 503, 'text/plain', 'too many event streams\n');
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(`retry: 2000\n\ndata: ${JSON.stringify(state())}\n\n`);
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    send(res, 404, 'text/plain', 'not found\n');
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      // A snapshot must never take the back-end down: the page shows the error instead.
      if (!res.headersSent) json(res, 500, { error: String(e) });
      else res.end();
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new VirtioError(ErrorCode.PLATFORM, `--inspect: cannot listen on ${address.host}:${address.port}: ${e.message}`, { cause: e })));
      server.listen(address.port, address.host, () => resolve());
    });
  } catch (e) {
    clearInterval(timer);
    throw e;
  }
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return {
    port,
    url: `http://${host}:${port}/`,
    state,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        for (const s of streams) s.end();
        streams.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
