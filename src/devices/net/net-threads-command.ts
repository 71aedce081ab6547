/**
 * `virtio-ts net --threads T`: the socket ports served on T ring worker threads (socket i, all
 * its queue pairs, on thread i mod T; net-worker.ts), each thread with its own learning switch,
 * the switches joined in a mesh of SharedArrayBuffer rings (switch-mesh.ts). The main thread
 * keeps the vhost-user sockets and, per connection, a device for the features, status and
 * config space (QEMU keeps the control queue); when there are TAPs or a capture it is one more
 * node of the mesh, serving them.
 *
 * Why per port and not per queue pair: a port's pairs share its address, its receive filter and
 * its RSS table. Spread over threads, a port would need its address learned on every thread
 * that carries one of its pairs (the guest's source address seen from several places: the
 * address would flap between threads) and a flood would have to reach exactly one of its shards.
 * Pinned to one thread, a port is one switch port as without threads; several ports (guests)
 * spread over the threads (docs/worker-threads.md, "net").
 */
import { checkSocketPath } from '../../cli/socket-check.js';
import { EXIT, type CliIo } from '../../cli/options.js';
import { loadPlatform } from '../../cli/serve.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import { QueueStats } from '../../device/queue-stats.js';
import { startMetricsEndpoint, type MetricsEndpoint } from '../../cli/metrics-endpoint.js';
import { startStatsReport } from '../../cli/stats-report.js';
import { startInspector, type Inspector } from '../../inspector/inspector-server.js';
import { serveVhostUser, type VhostUserServer } from '../../vhost-user/server.js';
import { WorkerPool } from '../../vhost-user/worker-pool.js';
import { PF } from '../../vhost-user/messages.js';
import type { VhostUserDeviceHooks } from '../../vhost-user/device-hooks.js';
import { ETH_HEADER, ETH_VLAN_TAG } from '../../spec/net.js';
import { DEFAULT_NET_POLL_US, type NetOptions } from './cli.js';
import { portMac, type RunNetHooks } from './net-command.js';
import { netPortDevice, netWorkerSpec, type NetSessionArgs, type NetWorkerArgs, type NetWorkerPort } from './net-worker.js';
import { formatMac } from './packet.js';
import { PcapCapture } from './pcap-capture.js';
import { NetSwitch, type SwitchPortOptions } from './switch.js';
import { SwitchMeshNode, createSwitchMesh, type SwitchMeshSpec } from './switch-mesh.js';
import { FrameRingProducer } from './frame-ring.js';
import { TapPort } from './tap-port.js';
import type { VhostUserNetDevice } from './vhost-user-net-device.js';

/** Slots of each ring between two threads' switches (a full ring drops). */
export const NET_MESH_SLOTS = 512;

/** Counters of every ring of a mesh, read from its shared storage (any thread). */
export function meshRingCounters(spec: SwitchMeshSpec): { from: number; to: number; sent: number; dropped: number; oversize: number }[] {
  const out: { from: number; to: number; sent: number; dropped: number; oversize: number }[] = [];
  for (let f = 0; f < spec.nodes; f++) {
    for (let t = 0; t < spec.nodes; t++) {
      const r = spec.rings[f * spec.nodes + t];
      if (!r) continue;
      const v = new FrameRingProducer(r);
      out.push({ from: f, to: t, sent: v.pushed, dropped: v.dropped, oversize: v.oversize });
    }
  }
  return out;
}

/**
 * Serves `options` with `options.threads` ring threads until SIGTERM, SIGINT, SIGHUP or
 * `hooks.stop`, then closes the sockets, the threads, the TAPs and the capture (runNet calls it
 * when --threads is given).
 */
export async function runNetThreads(options: NetOptions, io: CliIo, hooks: RunNetHooks = {}): Promise<number> {
  if (hooks.onDevice !== undefined || hooks.onSwitch !== undefined) {
    // The devices and switches live in the workers: a callback cannot cross to them.
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'net --threads: onDevice and onSwitch hooks do not reach the worker threads');
  }
  const threads = options.threads ?? 0;
  const logger = createLogger(options.verbosity, 'virtio-ts net', io.stderr);
  for (const p of options.socketPaths.slice(1)) await checkSocketPath(p);
  const endpoints: { socketPath?: string; fd?: number }[] =
    options.socketPaths.length > 0 ? options.socketPaths.map((socketPath) => ({ socketPath })) : [{ fd: options.fd! }];
  if (!Number.isInteger(threads) || threads < 1 || threads > endpoints.length) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `net --threads ${threads}: 1..${endpoints.length} (a socket port is served by one thread)`);
  }
  const taps = options.taps ?? [];
  // The main thread joins the mesh when it serves ports of its own (TAPs) or writes the capture.
  const mainNode = taps.length > 0 || options.pcap !== undefined ? threads : null;
  const mesh = createSwitchMesh(threads + (mainNode === null ? 0 : 1), {
    slots: NET_MESH_SLOTS,
    frameBytes: options.mtu + ETH_HEADER + ETH_VLAN_TAG,
    captureNode: options.pcap !== undefined ? mainNode : null,
  });
  const ports: NetWorkerPort[] = endpoints.map((_, i) => {
    const v = vlanOptions(options, i);
    return { mac: portMac(options.mac, i), thread: i % threads, ...(v !== undefined ? { vlans: v } : {}) };
  });
  const args: NetWorkerArgs = { mesh, ports, mtu: options.mtu, queueSize: options.queueSize, queuePairs: options.queuePairs ?? 1, withoutFeatures: options.withoutFeatures ?? 0n, inOrder: options.inOrder === true };
  const portStats = endpoints.map(() => QueueStats.shared(QueueStats.sharedBuffer(2 * args.queuePairs + 1)));

  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  let onSignal: (s: NodeJS.Signals) => void = () => undefined;
  let stopWith: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopWith = resolve;
    onSignal = (s) => resolve(s);
    for (const s of signals) process.on(s, onSignal);
    void hooks.stop?.then(() => resolve('stop'));
  });
  let pool: WorkerPool | null = null;
  const servers: VhostUserServer[] = [];
  const tapPorts: TapPort[] = [];
  let pcap: PcapCapture | null = null;
  let node: SwitchMeshNode | null = null;
  let metrics: MetricsEndpoint | null = null;
  let inspector: Inspector | null = null;
  const stopReports: (() => void)[] = [];
  const closeLocal = async (): Promise<void> => {
    for (const stop of stopReports) stop();
    await metrics?.close();
    await inspector?.close();
    for (const s of servers) await s.close();
    await pool?.close();
    await node?.stop();
    for (const t of tapPorts) t.close();
    pcap?.close();
  };
  try {
    const platform = hooks.platform ?? loadPlatform();
    pool = await WorkerPool.start({
      threads,
      numQueues: Math.max(threads, 2 * args.queuePairs + 1),
      device: netWorkerSpec(args),
      platform,
      logger,
      verbosity: options.verbosity,
      pollUs: options.pollUs ?? DEFAULT_NET_POLL_US,
      name: 'virtio-ts net',
      placement: `${endpoints.length} socket port${endpoints.length === 1 ? '' : 's'} (socket i, all its queue pairs, on thread i mod ${threads})`,
    });
    hooks.onPool?.(pool, mesh, portStats);
    if (mainNode !== null) {
      const sw = new NetSwitch();
      if (options.pcap !== undefined) pcap = new PcapCapture(options.pcap, sw, logger);
      node = new SwitchMeshNode(mesh, mainNode, sw, pcap?.port);
      node.start();
      for (const name of taps) {
        const tap = new TapPort({ ifname: name, platform, onError: (e) => logger.error(`tap ${name}: ${e.message}; port stopped`) });
        tapPorts.push(tap);
        tap.attachTo(sw, vlanOptions(options, name));
        logger.info(`TAP port ${tap.ifname} attached (main thread)`);
      }
    }
    if (options.metrics !== undefined) {
      metrics = await startMetricsEndpoint(portStats.map((stats, i) => ({ device: `net${i}`, stats })), options.metrics);
      logger.info(`metrics at ${metrics.url}`);
    }
    if (options.statsIntervalMs !== undefined) {
      for (let i = 0; i < portStats.length; i++) stopReports.push(startStatsReport(portStats[i]!, `net port ${i}`, options.statsIntervalMs, (line) => io.stderr(line)));
      const timer = setInterval(() => io.stderr(`net threads: ${formatMesh(mesh)}\n`), options.statsIntervalMs);
      timer.unref();
      stopReports.push(() => clearInterval(timer));
    }
    for (let i = 0; i < endpoints.length; i++) {
      const server = await servePort(pool, args, i, endpoints[i]!, portStats[i]!, platform, logger);
      servers.push(server);
      hooks.onServer?.(server, i);
      if (endpoints[i]!.fd !== undefined) void server.closed.then(() => stopWith('front-end gone'));
    }
    if (options.inspect !== undefined) {
      inspector = await startInspector(
        servers.map((server, i) => ({ name: `net${i}`, stats: portStats[i]!, backend: () => server.backend })),
        options.inspect,
      );
      logger.info(`inspector at ${inspector.url}`);
    }
  } catch (e) {
    for (const s of signals) process.off(s, onSignal);
    await closeLocal();
    throw e;
  }
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const why = await stopped;
  for (const s of signals) process.off(s, onSignal);
  clearInterval(keepAlive);
  logger.info(`${why}: shutting down`);
  let code: number = EXIT.OK;
  try {
    await closeLocal();
  } catch (e) {
    logger.error(`shutting down: ${(e as Error).message}`);
    code = EXIT.RUNTIME;
  }
  logger.info(`thread links: ${formatMesh(mesh)}`);
  for (const t of tapPorts) logger.info(`${t.name}: ${JSON.stringify(t.stats)}`);
  if (pcap !== null) logger.info(pcap.summary);
  return code;
}

function formatMesh(mesh: SwitchMeshSpec): string {
  return meshRingCounters(mesh)
    .map((c) => `${c.from}->${c.to} sent ${c.sent} dropped ${c.dropped + c.oversize}`)
    .join(', ');
}

function vlanOptions(o: NetOptions, port: number | string): SwitchPortOptions | undefined {
  const v = o.vlans?.find((x) => x.port === port);
  return v === undefined ? undefined : { vlans: v.vlans, untagged: v.untagged };
}

/**
 * The main thread's device of a port: features, status and config only (its rings are served
 * on the port's thread). It offers no RARP: SEND_RARP follows a live migration, which sessions
 * with threads do not support (no LOG_SHMFD), and the port's switch is on another thread.
 */
function mainThreadDevice(args: NetWorkerArgs, port: number, logger: Logger): VhostUserNetDevice {
  const d = netPortDevice(args, port, logger);
  const hooks: VhostUserDeviceHooks = { ...d.vhostUser, protocolFeatures: PF.MTU };
  (d as { vhostUser: VhostUserDeviceHooks }).vhostUser = hooks;
  return d;
}

async function servePort(
  pool: WorkerPool,
  args: NetWorkerArgs,
  i: number,
  where: { socketPath?: string; fd?: number },
  stats: QueueStats,
  platform: ReturnType<typeof loadPlatform>,
  logger: Logger,
): Promise<VhostUserServer> {
  const name = where.socketPath ?? `fd ${where.fd}`;
  const thread = args.ports[i]!.thread;
  let server: VhostUserServer;
  try {
    server = await serveVhostUser({
      device: () => mainThreadDevice(args, i, logger),
      platform,
      logger,
      // Each session-start carries its own copy of the arguments (structured clone): the thread
      // tells sessions of one port apart by it.
      backend: pool.backendOptions({ thread, args: { port: i } satisfies NetSessionArgs, stats }),
      ...(where.socketPath !== undefined ? { socketPath: where.socketPath } : { fd: where.fd! }),
    });
  } catch (e) {
    throw new VirtioError(ErrorCode.PLATFORM, `cannot listen on ${name}: ${(e as Error).message}`, { cause: e });
  }
  logger.info(`serving virtio-net port ${i} on thread ${thread} (mac ${formatMac(args.ports[i]!.mac)}, mtu ${args.mtu}, ${args.queuePairs} queue pair(s)) on ${name}`);
  return server;
}
