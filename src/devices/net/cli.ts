/**
 * `virtio-ts net`: its options, usage and checks. Serving is in net-command.ts, loaded only when
 * the command runs.
 */
import {
  BACKEND_COMMON_USAGE,
  CliError,
  CliFault,
  MAX_SOCKET_PATH_BYTES,
  parseIntInRange,
  queueSizeOption,
  stringOption,
  type BackendOptions,
  type OptionValues,
} from '../../cli/options.js';
import { NET_MTU_MAX, NET_MTU_MIN, NET_VLAN_IDS, NetF } from '../../spec/net.js';
import { TAP_NAME_MAX } from '../../platform/tap.js';
import type { DeviceCli } from '../device-type.js';
import { DEFAULT_NET_MAC } from './net-device.js';
import { formatMac, parseMac } from './packet.js';

/** Options of `virtio-ts net`, as parsed from the command line: vhost-user net ports on one switch. */
export interface NetOptions extends BackendOptions {
  /** Every --socket-path, one switch port each (the first is also `socketPath`). */
  readonly socketPaths: readonly string[];
  /** The first port's MAC; port i has the last byte increased by i. */
  readonly mac: Uint8Array;
  /** MTU every port's device reports (VIRTIO_NET_F_MTU, 5.1.4), bytes. */
  readonly mtu: number;
  /** Maximum size of every queue of every port. */
  readonly queueSize: number;
  /** Queue pairs per device (MQ above 1; default 1). */
  readonly queuePairs?: number;
  /** TAP interfaces to attach to the switch (created when missing). */
  readonly taps?: readonly string[];
  /** A pcap capture of every frame the switch forwards. */
  readonly pcap?: string;
  /** Feature bits the devices do not offer (--no-offload). */
  readonly withoutFeatures?: bigint;
  /** `--in-order`: the devices offer VIRTIO_F_IN_ORDER (NetDeviceOptions.inOrder). */
  readonly inOrder?: boolean;
  /** VLAN membership per port (--vlan): socket index (0-based) or TAP name. */
  readonly vlans?: readonly NetVlanOption[];
  /**
   * `--threads T`: socket port i (all its queue pairs) served on worker thread i mod T, the
   * threads' switches joined by SharedArrayBuffer rings (docs/worker-threads.md); 0 or absent:
   * everything on the main thread.
   */
  readonly threads?: number;
  /**
   * `--poll-us N`: busy-poll window after a processing pass, in microseconds (0: sleep on the
   * kick at once); absent: DEFAULT_NET_POLL_US.
   */
  readonly pollUs?: number;
}

/** One --vlan PORT=ID[,ID...][,tagged-only]. */
export interface NetVlanOption {
  /** The socket (0-based, in --socket-path order) or the TAP interface name. */
  readonly port: number | string;
  /** The 802.1Q VLAN ids the port is a member of. */
  readonly vlans: readonly number[];
  /** Whether untagged frames reach and leave the port (false with `tagged-only`). */
  readonly untagged: boolean;
}

/** --no-offload names and the feature bits each removes (dependents go too, 5.1.3.1). */
export const NET_OFFLOAD_NAMES: Readonly<Record<string, bigint>> = {
  csum: NetF.CSUM,
  'guest-csum': NetF.GUEST_CSUM,
  tso4: NetF.HOST_TSO4 | NetF.GUEST_TSO4,
  tso6: NetF.HOST_TSO6 | NetF.GUEST_TSO6,
  ecn: NetF.HOST_ECN | NetF.GUEST_ECN,
  ufo: NetF.HOST_UFO | NetF.GUEST_UFO,
  uso: NetF.HOST_USO | NetF.GUEST_USO4 | NetF.GUEST_USO6,
  gso: NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN | NetF.HOST_UFO | NetF.HOST_USO | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6 | NetF.GUEST_HDRLEN,
  'hdr-len': NetF.GUEST_HDRLEN,
  rss: NetF.RSS | NetF.HASH_REPORT,
  'hash-report': NetF.HASH_REPORT,
  'hash-tunnel': NetF.HASH_TUNNEL,
  rsc: NetF.RSC_EXT,
  coalescing: NetF.NOTF_COAL | NetF.VQ_NOTF_COAL,
  stats: NetF.DEVICE_STATS,
};

export const NET_DEFAULTS = { mtu: 1500, queueSize: 256, queuePairs: 1 } as const;
/** Queue pairs per device from the command line at most (the spec allows 0x8000). */
export const MAX_CLI_QUEUE_PAIRS = 64;
/** TAP ports one process attaches at most. */
export const MAX_TAP_PORTS = 16;
/** Ports one process serves at most. */
export const MAX_NET_PORTS = 64;
/** Largest `--poll-us` (the back-end's MAX_POLL_US). */
export const MAX_NET_POLL_US = 1000;
/**
 * `--poll-us` default: 50 us, as blk's. Against DPDK testpmd's generator (a ring kept full) the
 * back-end then serves back-to-back passes without going through epoll and the kick eventfd, and
 * the generator stops kicking: 2-15 % less back-end CPU per 64-byte packet, more packets per
 * second in ten of eleven alternated pairs (median 8 %; bench/README.md "s18-net"). A ring whose
 * polling finds nothing (a guest sending now and then) is soon served without it
 * (ring-scheduler.ts), so an idle port costs no CPU.
 */
export const DEFAULT_NET_POLL_US = 50;

const COMMAND = 'net';

const NET_USAGE = `Usage: virtio-ts net (--socket-path PATH [--socket-path PATH ...] | --fd N) [options]

Serves virtio-net devices to vhost-user front-ends (QEMU -netdev vhost-user), one per socket,
all attached to one learning L2 switch inside this process: the guests reach each other. Each
socket serves one front-end at a time and waits for the next after a disconnect. Ends cleanly on
SIGTERM or SIGINT, removing its sockets.

  --socket-path PATH      listen on this Unix socket (repeat for more switch ports, at most ${MAX_NET_PORTS})
  --fd N                  serve the Unix socket inherited as file descriptor N (one port)
  --mac MAC               the first port's MAC (default ${formatMac(DEFAULT_NET_MAC)}); port i adds i to
                          the last byte. QEMU's vhost-user-net keeps its own -device mac= for the guest
  --mtu N                 MTU offered with VIRTIO_NET_F_MTU, ${NET_MTU_MIN}..${NET_MTU_MAX} (default ${NET_DEFAULTS.mtu})
  --queue-size N          the largest ring the device accepts, a power of 2 (default ${NET_DEFAULTS.queueSize})
  --queue-pairs N         queue pairs per device, 1..${MAX_CLI_QUEUE_PAIRS} (default 1; MQ above 1: QEMU -netdev
                          vhost-user,queues=N with virtio-net-pci,mq=on)
  --tap NAME              attach the Linux TAP interface NAME to the switch (created when missing;
                          needs root and /dev/net/tun; repeat for more, at most ${MAX_TAP_PORTS})
  --pcap PATH             write every frame the switch forwards to PATH (pcap, Ethernet)
  --no-offload LIST       features not to offer, comma-separated: ${Object.keys(NET_OFFLOAD_NAMES).join(', ')}
                          (features needing a removed one go too: no csum means no host GSO)
  --in-order              offer VIRTIO_F_IN_ORDER (buffers used in the order made available; a
                          pass's transmit chains go back as one used entry); off by default
  --vlan PORT=IDS         VLAN membership of a switch port: PORT is a socket's index (0-based, in
                          --socket-path order) or a --tap name; IDS are VLAN ids 0..${NET_VLAN_IDS - 1}, comma-
                          separated; "tagged-only" keeps untagged frames off the port (repeat per port;
                          a port without --vlan is in every VLAN)
  --threads T             serve the socket ports on T worker threads (1..the number of sockets;
                          socket i, all its queue pairs, on thread i mod T); each thread has its
                          own switch, frames between threads cross bounded shared-memory rings
                          (full: dropped and counted). TAPs and the capture stay on the main thread
  --poll-us N             after serving a ring, keep watching it for N microseconds (0..${MAX_NET_POLL_US})
                          before sleeping on its kick: the front-end need not kick while the
                          back-end watches (a ring whose polling keeps finding nothing is served
                          without it until it pays again; default ${DEFAULT_NET_POLL_US}; 0: off)
${BACKEND_COMMON_USAGE}
`;

/** The `virtio-ts net` sub-command: its options, usage, parsing and run. */
export const NET_CLI: DeviceCli<NetOptions> = {
  options: {
    'socket-path': { type: 'string', multiple: true },
    mac: { type: 'string' },
    mtu: { type: 'string' },
    'queue-size': { type: 'string' },
    'queue-pairs': { type: 'string' },
    tap: { type: 'string', multiple: true },
    pcap: { type: 'string' },
    'no-offload': { type: 'string', multiple: true },
    'in-order': { type: 'boolean' },
    vlan: { type: 'string', multiple: true },
    threads: { type: 'string' },
    'poll-us': { type: 'string' },
  },
  usage: NET_USAGE,
  parse(values: OptionValues, common: BackendOptions): NetOptions {
    const raw = values['socket-path'];
    const socketPaths = (Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : []).filter((p): p is string => typeof p === 'string');
    if (socketPaths.length > MAX_NET_PORTS) throw new CliError(CliFault.BAD_VALUE, `at most ${MAX_NET_PORTS} --socket-path`, COMMAND);
    for (const p of socketPaths) {
      if (p === '' || p.includes('\0') || Buffer.byteLength(p) > MAX_SOCKET_PATH_BYTES) throw new CliError(CliFault.BAD_VALUE, `--socket-path "${p}" is not a usable Unix socket path`, COMMAND);
    }
    if (new Set(socketPaths).size !== socketPaths.length) throw new CliError(CliFault.BAD_VALUE, 'a --socket-path is given twice', COMMAND);
    const macText = stringOption(values, 'mac');
    let mac: Uint8Array = DEFAULT_NET_MAC;
    if (macText !== undefined) {
      const m = parseMac(macText);
      if (m === null || (m[0]! & 1) !== 0) throw new CliError(CliFault.BAD_VALUE, `--mac "${macText}" is not a unicast MAC (xx:xx:xx:xx:xx:xx)`, COMMAND);
      if (m[5]! + Math.max(0, socketPaths.length - 1) > 0xff) throw new CliError(CliFault.BAD_VALUE, `--mac: the last byte leaves no room for ${socketPaths.length} ports`, COMMAND);
      mac = m;
    }
    const mtuText = stringOption(values, 'mtu');
    const mtu = mtuText === undefined ? NET_DEFAULTS.mtu : parseIntInRange(mtuText, '--mtu', NET_MTU_MIN, NET_MTU_MAX, COMMAND);
    const queueSize = queueSizeOption(values, COMMAND, NET_DEFAULTS.queueSize);
    const pairsText = stringOption(values, 'queue-pairs');
    const queuePairs = pairsText === undefined ? NET_DEFAULTS.queuePairs : parseIntInRange(pairsText, '--queue-pairs', 1, MAX_CLI_QUEUE_PAIRS, COMMAND);
    const rawTaps = values['tap'];
    const taps = (Array.isArray(rawTaps) ? rawTaps : typeof rawTaps === 'string' ? [rawTaps] : []).filter((t): t is string => typeof t === 'string');
    if (taps.length > MAX_TAP_PORTS) throw new CliError(CliFault.BAD_VALUE, `at most ${MAX_TAP_PORTS} --tap`, COMMAND);
    for (const t of taps) {
      if (!/^[A-Za-z0-9_.-]+$/.test(t) || Buffer.byteLength(t) > TAP_NAME_MAX) throw new CliError(CliFault.BAD_VALUE, `--tap "${t}" is not an interface name (1..${TAP_NAME_MAX} of A-Z a-z 0-9 _ . -)`, COMMAND);
    }
    if (new Set(taps).size !== taps.length) throw new CliError(CliFault.BAD_VALUE, 'a --tap is given twice', COMMAND);
    const pcap = stringOption(values, 'pcap');
    if (pcap !== undefined && (pcap === '' || pcap.includes('\0'))) throw new CliError(CliFault.BAD_VALUE, '--pcap needs a file path', COMMAND);
    const withoutFeatures = parseNoOffload(listOption(values, 'no-offload'));
    const vlans = parseVlans(listOption(values, 'vlan'), Math.max(1, socketPaths.length), taps);
    const threadsText = stringOption(values, 'threads');
    // A socket port is served by one thread: more threads than sockets would idle.
    const sockets = Math.max(1, socketPaths.length);
    const threads = threadsText === undefined ? 0 : parseIntInRange(threadsText, '--threads', 1, sockets, COMMAND);
    const pollText = stringOption(values, 'poll-us');
    const pollUs = pollText === undefined ? undefined : parseIntInRange(pollText, '--poll-us', 0, MAX_NET_POLL_US, COMMAND);
    return {
      ...common,
      socketPaths,
      mac,
      mtu,
      queueSize,
      queuePairs,
      taps,
      withoutFeatures,
      ...(values['in-order'] === true ? { inOrder: true } : {}),
      vlans,
      ...(pcap !== undefined ? { pcap } : {}),
      ...(threads > 0 ? { threads } : {}),
      ...(pollUs !== undefined ? { pollUs } : {}),
    };
  },
  async run(options, io) {
    const { runNet } = await import('./net-command.js');
    return runNet(options, io);
  },
};

function listOption(values: OptionValues, name: string): string[] {
  const raw = values[name];
  return (Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : []).filter((t): t is string => typeof t === 'string');
}

/** --no-offload a,b --no-offload c: the union of the named feature bits. */
function parseNoOffload(args: readonly string[]): bigint {
  let bits = 0n;
  for (const name of args.flatMap((a) => a.split(','))) {
    const b = NET_OFFLOAD_NAMES[name.trim()];
    if (b === undefined) throw new CliError(CliFault.BAD_VALUE, `--no-offload "${name}": not one of ${Object.keys(NET_OFFLOAD_NAMES).join(', ')}`, COMMAND);
    bits |= b;
  }
  return bits;
}

/** --vlan PORT=ID[,ID...][,tagged-only], at most one per port. */
function parseVlans(args: readonly string[], sockets: number, taps: readonly string[]): NetVlanOption[] {
  const out: NetVlanOption[] = [];
  const seen = new Set<string>();
  for (const a of args) {
    const eq = a.indexOf('=');
    const portText = eq < 0 ? '' : a.slice(0, eq);
    const port: number | string = /^[0-9]+$/.test(portText) ? Number(portText) : portText;
    if (typeof port === 'number' ? port >= sockets : !taps.includes(port)) {
      throw new CliError(CliFault.BAD_VALUE, `--vlan "${a}": PORT must be a socket index 0..${sockets - 1} or a --tap name`, COMMAND);
    }
    if (seen.has(String(port))) throw new CliError(CliFault.BAD_VALUE, `--vlan: port ${port} is given twice`, COMMAND);
    seen.add(String(port));
    const items = a.slice(eq + 1).split(',');
    const untagged = !items.includes('tagged-only');
    const ids = items.filter((t) => t !== 'tagged-only');
    const vlans = ids.map((t) => (/^[0-9]{1,4}$/.test(t) && Number(t) < NET_VLAN_IDS ? Number(t) : -1));
    if (vlans.length === 0 || vlans.includes(-1)) throw new CliError(CliFault.BAD_VALUE, `--vlan "${a}": IDS must be VLAN ids 0..${NET_VLAN_IDS - 1}`, COMMAND);
    out.push({ port, vlans: [...new Set(vlans)], untagged });
  }
  return out;
}
