/**
 * virtio-net as a vhost-user back-end (`virtio-ts net`): the NetDevice plus what the vhost-user
 * protocol adds for net (vhost-user.rst), through the device hooks of src/vhost-user/:
 *
 *  - PROTOCOL_F_RARP, SEND_RARP: after a migration QEMU asks the back-end to broadcast a RARP
 *    for the guest's MAC (for guests without GUEST_ANNOUNCE) so switches learn where it is now.
 *    The frame goes out of this device's switch port: the switch learns the MAC there too.
 *  - PROTOCOL_F_MTU, NET_SET_MTU: QEMU tells the back-end the MTU it gave the guest
 *    (`-device virtio-net-pci,host_mtu=N`); accepted up to the MTU the device was made for (its
 *    frame buffers), refused above.
 *  - Queue pairs: QEMU keeps the control queue, so VQ_PAIRS_SET never reaches the back-end;
 *    it enables and disables each pair's rings with SET_VRING_ENABLE instead. With MQ and no
 *    control queue the device therefore spreads received frames over every pair, and the
 *    device kit hands it only the rings that are enabled (a disabled pair is skipped).
 *
 * Per-queue counters (`queueStats`): the driver's kicks and the device's used notifications
 * per queue (one per received frame on a receive queue, one per batch on a transmit queue), so a
 * test can see that every pair carries traffic.
 */
import type { DeviceContext } from '../../device/types.js';
import type { DeviceQueue } from '../../queue/types.js';
import { NetF } from '../../spec/net.js';
import { VhostUserError, VhostUserFault, decodeU64 } from '../../vhost-user/codec.js';
import type { VhostUserDevice, VhostUserDeviceHooks, VhostUserSession } from '../../vhost-user/device-hooks.js';
import { FrontendReq, PF, type VhostUserMessage } from '../../vhost-user/messages.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { NET_MTU_MIN } from '../../spec/net.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { NetPacket } from './packet.js';
import type { NetSwitch, SwitchPort, SwitchPortOptions } from './switch.js';
import type { QueueStats } from '../../device/queue-stats.js';

/** RARP (RFC 903) over Ethernet: the ethertype and a frame's minimum length. */
export const ETHERTYPE_RARP = 0x8035;
const RARP_FRAME = 60;

/** Per-queue counters of a vhost-user net device. */
export interface NetQueueStats {
  /** Driver notifications (kicks) per queue index. */
  readonly kicks: number[];
  /** Used-buffer notifications the device asked for, per queue index. */
  readonly used: number[];
}

/**
 * Writes the RARP a VMM announces a migrated guest with (as QEMU's announce_self): broadcast,
 * opcode 3 (reverse request), sender and target hardware address `mac`, addresses 0.
 */
export function writeRarp(p: NetPacket, mac: Uint8Array): void {
  const d = p.data;
  d.fill(0, 0, RARP_FRAME);
  d.fill(0xff, 0, 6);
  d.set(mac.subarray(0, 6), 6);
  d.set([ETHERTYPE_RARP >> 8, ETHERTYPE_RARP & 0xff, 0, 1, 0x08, 0x00, 6, 4, 0, 3], 12);
  d.set(mac.subarray(0, 6), 22);
  d.set(mac.subarray(0, 6), 32);
  p.length = RARP_FRAME;
  p.needsCsum = false;
}

/** The context the device sees, counting used notifications per queue on the way. */
class CountingContext implements DeviceContext {
  constructor(
    private readonly inner: DeviceContext,
    private readonly used: number[],
  ) {}
  get memory(): GuestMemory {
    return this.inner.memory;
  }
  get features(): bigint {
    return this.inner.features;
  }
  get littleEndian(): boolean {
    return this.inner.littleEndian;
  }
  /** The transport's queue counters pass through (the queue server counts into them). */
  get stats(): QueueStats | undefined {
    return this.inner.stats;
  }
  queue(index: number): DeviceQueue | null {
    return this.inner.queue(index);
  }
  notifyUsed(index: number): void {
    this.used[index] = (this.used[index] ?? 0) + 1;
    this.inner.notifyUsed(index);
  }
  notifyConfigChange(): void {
    this.inner.notifyConfigChange();
  }
  needsReset(reason: string, cause?: unknown): void {
    this.inner.needsReset(reason, cause);
  }
}

export class VhostUserNetDevice extends NetDevice implements VhostUserDevice {
  /** Per queue: the driver's kicks and the used notifications the device sent. */
  readonly queueStats: NetQueueStats;
  /** RARPs sent for SEND_RARP. */
  rarpsSent = 0;
  /** The MTU the front-end announced with NET_SET_MTU (0: none). */
  frontendMtu = 0;
  private switchPort: SwitchPort | null = null;
  private readonly rarp = new NetPacket(RARP_FRAME);

  /** The vhost-user extras: offers the RARP and MTU protocol features and serves SEND_RARP and NET_SET_MTU. */
  readonly vhostUser: VhostUserDeviceHooks = {
    protocolFeatures: PF.RARP | PF.MTU,
    handleRequest: (msg, session) => this.handleVhostUserRequest(msg, session),
  };

  constructor(opts: NetDeviceOptions = {}) {
    super(opts);
    const n = this.queueMaxSizes.length;
    this.queueStats = { kicks: new Array<number>(n).fill(0), used: new Array<number>(n).fill(0) };
  }

  override attachTo(sw: NetSwitch, opts?: SwitchPortOptions): SwitchPort {
    const sp = opts === undefined ? super.attachTo(sw) : this.attachWith(sw, opts);
    this.switchPort = sp;
    return sp;
  }

  override activate(ctx: DeviceContext): void {
    super.activate(new CountingContext(ctx, this.queueStats.used));
    const f = ctx.features;
    // No control queue over vhost-user: every pair the front-end enables is in use.
    if ((f & NetF.MQ) !== 0n && (f & NetF.CTRL_VQ) === 0n) this.setQueuePairs(this.maxPairs);
  }

  override onQueueNotify(index: number): void {
    if (index >= 0 && index < this.queueStats.kicks.length) this.queueStats.kicks[index]!++;
    super.onQueueNotify(index);
  }

  private attachWith(sw: NetSwitch, opts: SwitchPortOptions): SwitchPort {
    const sp = sw.attach(this, opts);
    this.connect(sp);
    return sp;
  }

  private handleVhostUserRequest(msg: VhostUserMessage, session: VhostUserSession): null | undefined {
    switch (msg.request) {
      case FrontendReq.SEND_RARP: {
        if (!session.hasProtocolFeatures(PF.RARP)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'RARP', msg.request);
        const mac = msg.payload.subarray(0, 6);
        if ((mac[0]! & 1) !== 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'RARP for a group address', msg.request);
        writeRarp(this.rarp, mac);
        this.switchPort?.send(this.rarp);
        this.rarpsSent++;
        return null;
      }
      case FrontendReq.NET_SET_MTU: {
        if (!session.hasProtocolFeatures(PF.MTU)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'MTU', msg.request);
        const mtu = decodeU64(msg.request, msg.payload);
        // The frame buffers were sized for this.mtu: a larger MTU cannot be honoured.
        if (mtu < NET_MTU_MIN || mtu > this.mtu) throw new VhostUserError(VhostUserFault.BAD_VALUE, `mtu ${mtu} not in ${NET_MTU_MIN}..${this.mtu} (start virtio-ts net with --mtu)`, msg.request);
        this.frontendMtu = mtu;
        return null;
      }
      default:
        return undefined;
    }
  }
}
