/**
 * The part of DeviceCore for transports that build their rings themselves (vhost-user): a
 * vhost-user front-end hands over rings in its own terms (user addresses, a saved position, an
 * inflight area), starts and stops them independently of the status byte, and may send no
 * status at all (no STATUS protocol feature). Such a transport builds each queue itself and
 * lends it to the core; the lifecycle (features, status, activation, the DeviceContext, config,
 * DEVICE_NEEDS_RESET) stays the core's, so a device behaves alike on every transport.
 *
 * LentQueueCore is DeviceCore's base class: it holds this API and the lifecycle state it shares
 * with the rest of the core (device-core.ts), so the API lives in its own file while the state
 * stays private to the core's classes.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { DeviceQueue } from '../queue/types.js';
import { Status } from '../spec/status.js';
import type { ActivationContext } from './activation-context.js';
import type { DeviceContext, QueueRegisters, VirtioDevice } from './types.js';

/** DeviceCore's base: the lent-queue API and the lifecycle state it shares with the core. */
export abstract class LentQueueCore {
  /** The device this core drives. */
  readonly device: VirtioDevice;

  /** @internal The device status byte (2.1). */
  protected statusValue = 0;
  /** @internal driver_feature as written so far (2.2). */
  protected driverFeat = 0n;
  /** @internal The features in force: accepted with FEATURES_OK (legacy: as written). */
  protected negotiated = 0n;
  /** @internal The activation epoch, moved by every reset: a context from another epoch is dead. */
  protected epoch = 0;
  /** @internal The DeviceContext of the current activation (null: not active). */
  protected ctx: ActivationContext | null = null;
  /** @internal Whether the legacy interface is in use. */
  protected legacyMode = false;
  /** @internal Whether the driver's fields are little-endian. */
  protected le = true;
  /** @internal The live queues (CoreQueues.live), lent queues included. */
  protected abstract readonly queues: (DeviceQueue | null)[];

  /** `device`: the device the core drives. */
  constructor(device: VirtioDevice) {
    this.device = device;
  }

  /** Device reset (2.4): status 0, features and queues forgotten, device-specific reset. */
  abstract reset(): void;
  /** 2.1.2: sets DEVICE_NEEDS_RESET (see DeviceCore.setNeedsReset). */
  abstract setNeedsReset(reason: string, cause?: unknown): void;
  /** The registers of queue `index`, or null when the device has no such queue. */
  abstract queueRegisters(index: number): QueueRegisters | null;
  /** @internal The reason FEATURES_OK must be refused for `accepted`, or null (2.2.1, device/content/4). */
  protected abstract featureProblem(accepted: bigint): string | null;
  /** @internal A new activation's DeviceContext, for `epoch`. */
  protected abstract newContext(epoch: number): ActivationContext;

  /**
   * The reason FEATURES_OK would be refused for `accepted` (2.2.1, device/content/4: bits not
   * offered, VERSION_1 missing on a modern interface, the device's validateFeatures), or null.
   */
  checkFeatures(accepted: bigint): string | null {
    try {
      return this.featureProblem(accepted);
    } catch (e) {
      return `validateFeatures threw: ${String(e)}`;
    }
  }

  /**
   * Lends queue `index`, built by the transport, to the core: the device reaches it through
   * `ctx.queue(index)` (once active) and its used-buffer notifications go through the core. The
   * queue registers are not used. Throws INVALID_ARGUMENT for an index the device does not have.
   */
  attachQueue(index: number, queue: DeviceQueue): void {
    if (!this.queueRegisters(index)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no queue ${index}`);
    this.queues[index] = queue;
  }

  /**
   * Takes a lent queue back (the transport stopped or disabled its ring) and returns it. The
   * device is not told: a stopped vhost-user ring is not a queue reset (2.6.1), its position
   * stays the transport's to report and to restart from.
   */
  detachQueue(index: number): DeviceQueue | null {
    const q = this.queues[index] ?? null;
    if (q !== null) this.queues[index] = null;
    return q;
  }

  /**
   * Activates the device with the queues lent so far, as DRIVER_OK would (vhost-user: when the
   * first ring starts, or at DRIVER_OK from a front-end with the STATUS protocol feature).
   * Nothing happens before the features were negotiated (modern: FEATURES_OK; legacy: DRIVER),
   * after FAILED or while DEVICE_NEEDS_RESET is set. Returns whether the device is active and
   * does not need a reset.
   */
  activateWithLentQueues(): boolean {
    const s = this.statusValue;
    if (this.ctx !== null) return (s & Status.DEVICE_NEEDS_RESET) === 0;
    if (s & (Status.FAILED | Status.DEVICE_NEEDS_RESET)) return false;
    if (!(s & Status.DRIVER) || (!this.legacyMode && !(s & Status.FEATURES_OK))) return false;
    this.statusValue = s | Status.DRIVER_OK;
    const epoch = this.epoch;
    this.ctx = this.newContext(epoch);
    try {
      this.device.activate(this.ctx);
    } catch (e) {
      if (this.epoch === epoch) this.setNeedsReset(`device activation failed: ${String(e)}`);
    }
    return this.ctx !== null && (this.statusValue & Status.DEVICE_NEEDS_RESET) === 0;
  }

  /**
   * Stops the device but keeps the negotiation (vhost-user: every ring was stopped; the
   * front-end keeps its features for the next start and may send no status): the device is
   * reset (2.4: in-flight requests dropped, the context goes dead), lent queues are dropped,
   * DRIVER_OK and DEVICE_NEEDS_RESET are cleared; the features and ACKNOWLEDGE, DRIVER,
   * FEATURES_OK stay. Nothing happens when the device is neither active nor in need of a reset.
   */
  deactivate(): void {
    if (this.ctx === null && !(this.statusValue & Status.DEVICE_NEEDS_RESET)) return;
    const kept = this.statusValue & (Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    const driverFeat = this.driverFeat;
    const negotiated = this.negotiated;
    this.reset();
    this.statusValue = kept;
    this.driverFeat = driverFeat;
    this.negotiated = negotiated;
  }

  /** The DeviceContext of the current activation (null when the device is not active). */
  get activeContext(): DeviceContext | null {
    return this.ctx;
  }
}
