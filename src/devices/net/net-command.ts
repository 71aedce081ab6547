/**
 * `virtio-ts net`: one learning switch, one vhost-user server per --socket-path (or the --fd
 * socket), each connection a fresh NetDevice attached to the switch as a port for as long as its
 * front-end stays. Ends on SIGTERM, SIGINT or SIGHUP, closing every server (which removes its
 * socket file), as runBackend does for single-socket commands.
 */
import { checkSocketPath } from '../../cli/socket-check.js';
import { EXIT, type CliIo } from '../../cli/options.js';
import { loadPlatform } from '../../cli/serve.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { type Logger, createLogger } from '../../log.js';
import type { Platform } from '../../platform/types.js';
import { serveVhostUser, type VhostUserServer } from '../../vhost-user/server.js';
import { DEFAULT_NET_POLL_US, type NetOptions } from './cli.js';
import { raiseInliningBudgets } from '../../cli/inlining-budgets.js';
import { formatMac } from './packet.js';
import { PcapCapture } from './pcap-capture.js';
import { NetSwitch, type SwitchPort, type SwitchPortOptions } from './switch.js';
import { TapPort } from './tap-port.js';
import { VhostUserNetDevice } from './vhost-user-net-device.js';
import type { WorkerPool } from '../../vhost-user/worker-pool.js';
import type { SwitchMeshSpec } from './switch-mesh.js';
import { QueueStats } from '../../device/queue-stats.js';
import { startMetricsEndpoint, type MetricsEndpoint } from '../../cli/metrics-endpoint.js';
import { startStatsReport } from '../../cli/stats-report.js';
import { startInspector, type Inspector } from '../../inspector/inspector-server.js';

/** Tests: a platform, a stop signal, and a look at the switch. */
export interface RunNetHooks {
  readonly platform?: Platform;
  readonly stop?: Promise<unknown>;
  readonly onSwitch?: (sw: NetSwitch) => void;
  /** Each device as a front-end connects (a fresh one per connection). */
  readonly onDevice?: (device: VhostUserNetDevice, port: number) => void;
  /** With --threads: the worker pool once started, the mesh's rings and each socket port's queue counters. */
  readonly onPool?: (pool: WorkerPool, mesh: SwitchMeshSpec, portStats: readonly QueueStats[]) => void;
  /** Each port's vhost-user server (with --threads: the main thread's), by port. */
  readonly onServer?: (server: VhostUserServer, port: number) => void;
}

/** The MAC of port `i`: the base with `i` added to its last byte (checked by the CLI to fit). */
export function portMac(base: Uint8Array, i: number): Uint8Array {
  const m = Uint8Array.from(base);
  m[5] = (m[5]! + i) & 0xff;
  return m;
}

export async function runNet(options: NetOptions, io: CliIo, hooks: RunNetHooks = {}): Promise<number> {
  // Before any frame is served, so the drain is first optimized with them (src/cli/inlining-budgets.ts).
  raiseInliningBudgets();
  if ((options.threads ?? 0) > 0) {
    const { runNetThreads } = await import('./net-threads-command.js');
    return runNetThreads(options, io, hooks);
  }
  const logger = createLogger(options.verbosity, 'virtio-ts net', io.stderr);
  // The first path was checked by the CLI; the others are checked the same way here.
  for (const p of options.socketPaths.slice(1)) await checkSocketPath(p);
  const sw = new NetSwitch();
  hooks.onSwitch?.(sw);
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  let onSignal: (s: NodeJS.Signals) => void = () => undefined;
  let stopWith: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopWith = resolve;
    onSignal = (s) => resolve(s);
    for (const s of signals) process.on(s, onSignal);
    void hooks.stop?.then(() => resolve('stop'));
  });
  const servers: VhostUserServer[] = [];
  const taps: TapPort[] = [];
  let pcap: PcapCapture | null = null;
  const closePorts = (): void => {
    for (const t of taps) t.close();
    pcap?.close();
  };
  const endpoints: { socketPath?: string; fd?: number }[] =
    options.socketPaths.length > 0 ? options.socketPaths.map((socketPath) => ({ socketPath })) : [{ fd: options.fd! }];
  // Per-port queue counters (every front-end of a port adds to its port's), for --stats-interval
  // and --metrics (device label net0, net1, ...).
  const portStats = endpoints.map(() => new QueueStats());
  let metrics: MetricsEndpoint | null = null;
  let inspector: Inspector | null = null;
  const stopReports: (() => void)[] = [];
  try {
    const platform = hooks.platform ?? loadPlatform();
    if (options.metrics !== undefined) {
      metrics = await startMetricsEndpoint(portStats.map((stats, i) => ({ device: `net${i}`, stats })), options.metrics);
      logger.info(`metrics at ${metrics.url}`);
    }
    if (options.statsIntervalMs !== undefined) {
      for (let i = 0; i < portStats.length; i++) stopReports.push(startStatsReport(portStats[i]!, `net port ${i}`, options.statsIntervalMs, (line) => io.stderr(line)));
    }
    if (options.pcap !== undefined) pcap = new PcapCapture(options.pcap, sw, logger);
    for (const name of options.taps ?? []) {
      const tap = new TapPort({ ifname: name, platform, onError: (e) => logger.error(`tap ${name}: ${e.message}; port stopped`) });
      taps.push(tap);
      tap.attachTo(sw, vlanOptions(options, name));
      logger.info(`TAP port ${tap.ifname} attached`);
    }
    for (let i = 0; i < endpoints.length; i++) {
      const server = await servePort(sw, i, endpoints[i]!, options, platform, logger, stopWith, hooks, portStats[i]!);
      servers.push(server);
      hooks.onServer?.(server, i);
    }
    if (options.inspect !== undefined) {
      const ports = servers.map((server, i) => ({ name: `net${i}`, stats: portStats[i]!, backend: () => server.backend }));
      inspector = await startInspector(ports, options.inspect);
      logger.info(`inspector at ${inspector.url}`);
    }
  } catch (e) {
    for (const s of signals) process.off(s, onSignal);
    for (const stop of stopReports) stop();
    await metrics?.close();
    for (const s of servers) await s.close();
    closePorts();
    throw e;
  }
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const why = await stopped;
  for (const s of signals) process.off(s, onSignal);
  clearInterval(keepAlive);
  for (const stop of stopReports) stop();
  logger.info(`${why}: shutting down`);
  await metrics?.close();
  await inspector?.close();
  let code: number = EXIT.OK;
  for (const s of servers) {
    try {
      await s.close();
    } catch (e) {
      logger.error(`closing a server: ${(e as Error).message}`);
      code = EXIT.RUNTIME;
    }
  }
  for (const p of sw.attached) logger.info(`port ${p.name}: ${JSON.stringify(p.counters)}`);
  for (const t of taps) logger.info(`${t.name}: ${JSON.stringify(t.stats)}`);
  if (pcap !== null) logger.info(pcap.summary);
  closePorts();
  return code;
}

/** The switch attachment options of a port (--vlan), or undefined for every VLAN. */
function vlanOptions(o: NetOptions, port: number | string): SwitchPortOptions | undefined {
  const v = o.vlans?.find((x) => x.port === port);
  return v === undefined ? undefined : { vlans: v.vlans, untagged: v.untagged };
}

async function servePort(
  sw: NetSwitch,
  i: number,
  where: { socketPath?: string; fd?: number },
  o: NetOptions,
  platform: Platform,
  logger: Logger,
  stopWith: (why: string) => void,
  hooks: RunNetHooks,
  stats: QueueStats,
): Promise<VhostUserServer> {
  const mac = portMac(o.mac, i);
  const name = where.socketPath ?? `fd ${where.fd}`;
  let port: SwitchPort | null = null;
  const device = (): VhostUserNetDevice => {
    // A fresh device per front-end, as a fresh switch port (the old one leaves with its addresses).
    port?.detach();
    const d = new VhostUserNetDevice({ mac, mtu: o.mtu, queueSize: o.queueSize, queuePairs: o.queuePairs ?? 1, withoutFeatures: o.withoutFeatures ?? 0n, inOrder: o.inOrder === true, name: `net${i}`, logger });
    port = d.attachTo(sw, vlanOptions(o, i));
    hooks.onDevice?.(d, i);
    return d;
  };
  // QEMU 7.2 runs one vhost device per queue pair over the one connection; with
  // CONFIGURE_MEM_SLOTS each sends ADD_MEM_REG for the same regions, which the back-end counts
  // (vhost-user/memory-map.ts) rather than refusing.
  // --poll-us: the back-end watches a ring it just served before it sleeps on the kick.
  const pollUs = o.pollUs ?? DEFAULT_NET_POLL_US;
  let server: VhostUserServer;
  try {
    server = await serveVhostUser({ device, platform, logger, backend: { stats, pollUs }, ...(where.socketPath !== undefined ? { socketPath: where.socketPath } : { fd: where.fd! }) });
  } catch (e) {
    throw new VirtioError(ErrorCode.PLATFORM, `cannot listen on ${name}: ${(e as Error).message}`, { cause: e });
  }
  server.on('disconnect', () => {
    port?.detach();
    port = null;
  });
  // An inherited connected socket is served once.
  if (where.fd !== undefined) void server.closed.then(() => stopWith('front-end gone'));
  logger.info(`serving virtio-net port ${i} (mac ${formatMac(mac)}, mtu ${o.mtu}, ${o.queuePairs ?? 1} queue pair(s), poll ${pollUs} us) on ${name}`);
  return server;
}
