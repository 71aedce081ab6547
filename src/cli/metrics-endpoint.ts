/**
 * `--metrics HOST:PORT`: the queue counters as Prometheus metrics (text exposition format) at
 * `/metrics`, with prom-client's process metrics (CPU seconds, resident memory, event-loop lag,
 * heap). Counters are read from the QueueStats at each scrape, so serving costs nothing between
 * scrapes. The address is a loopback one (options.ts refuses others).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { QueueCounterName, QueueStats } from '../device/queue-stats.js';
import { ErrorCode, VirtioError } from '../errors.js';
import type { MetricsAddress } from './options.js';

export interface MetricsEndpoint {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** Counter name → the QueueStats field it reads, and its help text. */
const COUNTERS: readonly (readonly [string, QueueCounterName, string])[] = [
  ['virtio_queue_kicks_total', 'kicks', 'Available-buffer notifications from the driver'],
  ['virtio_queue_calls_total', 'calls', 'Used-buffer notifications the device sent'],
  ['virtio_queue_requests_total', 'requests', 'Buffers popped from the queue'],
  ['virtio_queue_completed_total', 'completed', 'Buffers returned to the used ring'],
  ['virtio_queue_dropped_total', 'dropped', 'Buffers dropped because their queue stopped (reset, ring restart)'],
  ['virtio_queue_read_bytes_total', 'bytesRead', 'Device-readable bytes of the buffers popped'],
  ['virtio_queue_written_bytes_total', 'bytesWritten', 'Bytes the device wrote into returned buffers'],
  ['virtio_queue_errors_total', 'errors', 'Requests that failed (malformed, or an error status)'],
];

/** One device's counters and the `device` label they carry (`blk`; `net0`, `net1` for net's ports). */
export interface MetricsSource {
  readonly device: string;
  readonly stats: QueueStats;
}

/** Starts the endpoint; resolves once it listens. */
export async function startMetricsEndpoint(sources: readonly MetricsSource[], address: MetricsAddress): Promise<MetricsEndpoint> {
  // Loaded only when asked for: a back-end without --metrics does not pay for it.
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry });
  for (const [name, field, help] of COUNTERS) {
    registry.registerMetric(
      new prom.Counter({
        name,
        help,
        labelNames: ['device', 'queue'],
        registers: [],
        collect() {
          // The QueueStats are the source; the counter is refilled from them at each scrape.
          this.reset();
          for (const { device, stats } of sources) {
            for (let q = 0; q < stats.queueCount; q++) this.inc({ device, queue: String(q) }, stats.value(q, field));
          }
        },
      }),
    );
  }
  registry.registerMetric(
    new prom.Gauge({
      name: 'virtio_queue_in_flight',
      help: 'Buffers popped and not yet returned or dropped',
      labelNames: ['device', 'queue'],
      registers: [],
      collect() {
        for (const { device, stats } of sources) {
          for (const q of stats.snapshot()) this.set({ device, queue: String(q.queue) }, q.inFlight);
        }
      },
    }),
  );
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new VirtioError(ErrorCode.PLATFORM, `--metrics: cannot listen on ${address.host}:${address.port}: ${e.message}`, { cause: e })));
    server.listen(address.port, address.host, () => resolve());
  });
  // Scrapes must not keep a back-end alive that is otherwise done.
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return {
    port,
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
