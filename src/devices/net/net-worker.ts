/**
 * virtio-net on worker threads (`virtio-ts net --threads T`): what each ring thread runs. A
 * thread serves whole ports (socket i on thread i mod T, all its queue pairs): its own learning
 * switch with those ports, joined to the other threads' switches by SharedArrayBuffer rings
 * (switch-mesh.ts). Per front-end session it builds the port's VhostUserNetDevice (header
 * parsing, offloads, segmentation, mergeable buffers, RSS steering: the whole data path) and
 * attaches it to its switch with the port's VLANs; the session's end detaches it (its addresses
 * are forgotten here; the other threads relearn them from the next frame).
 *
 * The main thread keeps the vhost-user sockets, the features, the status and the config space
 * (link status, announce, MTU), as it does for blk; QEMU keeps the control queue.
 */
import type { Logger } from '../../log.js';
import type { WorkerDeviceFactory, WorkerDeviceSpec } from '../../device/worker-device.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { NetSwitch, type SwitchPort, type SwitchPortOptions } from './switch.js';
import { SwitchMeshNode, type SwitchMeshSpec } from './switch-mesh.js';
import { VhostUserNetDevice } from './vhost-user-net-device.js';

/** One socket port as every thread knows it. */
export interface NetWorkerPort {
  /** The port's MAC (config space). */
  readonly mac: Uint8Array;
  /** Its VLAN membership (--vlan), or undefined for every VLAN. */
  readonly vlans?: SwitchPortOptions;
  /** The thread serving it. */
  readonly thread: number;
}

/** A session's arguments (WorkerPin.args): the socket port it serves. */
export interface NetSessionArgs {
  /** The socket port's index (--socket-path order). */
  readonly port: number;
}

/** What a net worker is given (structured-cloneable; the mesh's buffers are shared). */
export interface NetWorkerArgs {
  /** The switches' rings: thread t is node t (the main thread, with TAPs or the capture, the last node). */
  readonly mesh: SwitchMeshSpec;
  /** Every socket port, by index. */
  readonly ports: readonly NetWorkerPort[];
  /** MTU every port's device offers (VIRTIO_NET_F_MTU). */
  readonly mtu: number;
  /** Largest ring every device accepts. */
  readonly queueSize: number;
  /** Queue pairs per device. */
  readonly queuePairs: number;
  /** Feature bits the devices do not offer (--no-offload). */
  readonly withoutFeatures: bigint;
  /** NetDeviceOptions.inOrder (`--in-order`). */
  readonly inOrder: boolean;
  /** Learned addresses per thread's switch at most (NetSwitch maxAddresses), or undefined for the default. */
  readonly maxAddresses?: number;
}

/** The spec `runNet` hands the worker pool. */
export function netWorkerSpec(args: NetWorkerArgs): WorkerDeviceSpec {
  return { module: new URL('./net-worker.js', import.meta.url).href, export: 'openNetWorker', args };
}

/** The device of socket port `port` (the same options on every thread: same features and config). */
export function netPortDevice(a: NetWorkerArgs, port: number, logger: Logger): VhostUserNetDevice {
  const p = a.ports[port];
  if (p === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no net port ${port}`);
  return new VhostUserNetDevice({ mac: p.mac, mtu: a.mtu, queueSize: a.queueSize, queuePairs: a.queuePairs, withoutFeatures: a.withoutFeatures, inOrder: a.inOrder, name: `net${port}`, logger });
}

/** Runs in the worker (WorkerDeviceSpec.export): thread `thread`'s switch, its mesh node, its ports' devices. */
export function openNetWorker(args: unknown, logger: Logger, thread: number): WorkerDeviceFactory {
  const a = args as NetWorkerArgs;
  const sw = new NetSwitch(a.maxAddresses !== undefined ? { maxAddresses: a.maxAddresses } : {});
  const node = new SwitchMeshNode(a.mesh, thread, sw);
  node.start();
  /**
   * The current session of each socket port on this thread and its switch port. Session
   * arguments are a fresh object per session (structured clone), so an old session's end never
   * detaches a newer one of the same port.
   */
  const attached = new Map<number, { readonly session: NetSessionArgs; readonly port: SwitchPort }>();
  return {
    device: (session: unknown) => {
      const s = session as NetSessionArgs;
      const port = s.port;
      if (a.ports[port]?.thread !== thread) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `net port ${port} is not served by thread ${thread}`);
      // A fresh device per front-end, as a fresh switch port (the old one leaves with its addresses).
      attached.get(port)?.port.detach();
      const d = netPortDevice(a, port, logger);
      attached.set(port, { session: s, port: d.attachTo(sw, a.ports[port]!.vlans) });
      return d;
    },
    endSession: (session: unknown) => {
      const s = session as NetSessionArgs;
      const cur = attached.get(s.port);
      if (cur?.session !== s) return;
      cur.port.detach();
      attached.delete(s.port);
    },
    close: async () => {
      for (const cur of attached.values()) cur.port.detach();
      attached.clear();
      await node.stop();
    },
  };
}
