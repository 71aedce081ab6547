/**
 * The back-end's status messages (vhost-user.rst SET_STATUS, GET_STATUS; STATUS protocol
 * feature): the front-end's device status byte (2.1) mapped onto the device core, which a
 * vhost-user session also drives from its rings (a ring start activates the device with the
 * rings lent so far). Split from backend.ts, which registers these handlers on its dispatcher.
 */
import type { DeviceCore } from '../device/device-core.js';
import { Status } from '../spec/status.js';
import { VhostUserError, VhostUserFault, decodeU64, encodeU64 } from './codec.js';
import { type MessageDispatcher, noFds } from './dispatcher.js';
import { FrontendReq, PF } from './messages.js';

/** What the status messages reach in the back-end (VhostUserBackend). */
export interface BackendStatusHost {
  /** The device lifecycle the status byte is the core's. */
  readonly core: DeviceCore;
  /** Throws NOT_NEGOTIATED unless the protocol feature `mask` was negotiated. */
  requireProto(req: number, mask: bigint): void;
  /** Status 0: every ring stops, keeping its base (QEMU asks GET_VRING_BASE next). */
  stopRings(): void;
  /** DRIVER_OK activated the device: every started and enabled ring is checked for buffers. */
  ringsActivated(): void;
}

/** Registers SET_STATUS and GET_STATUS on `d`. */
export function registerStatusHandlers(d: MessageDispatcher, host: BackendStatusHost): void {
  d.on(FrontendReq.SET_STATUS, (msg) => {
    noFds(msg);
    host.requireProto(msg.request, PF.STATUS);
    const v = decodeU64(msg.request, msg.payload);
    if (v > 0xff) throw new VhostUserError(VhostUserFault.BAD_VALUE, `status 0x${v.toString(16)}`, msg.request);
    setFrontendStatus(host, v);
    return null;
  });
  d.on(FrontendReq.GET_STATUS, (msg) => {
    noFds(msg);
    host.requireProto(msg.request, PF.STATUS);
    return { payload: encodeU64(host.core.status) };
  });
}

/**
 * SET_STATUS (STATUS protocol feature): the core's status. QEMU forwards the guest's
 * milestones alone (FEATURES_OK after SET_FEATURES; ACKNOWLEDGE | DRIVER | DRIVER_OK once the
 * rings are set up), so the earlier steps are implied. DRIVER_OK activates the device with
 * the rings started so far; 0 resets it and stops every ring (QEMU asks GET_VRING_BASE next:
 * the bases are kept).
 */
export function setFrontendStatus(host: BackendStatusHost, v: number): void {
  const core = host.core;
  if (v === 0) {
    core.reset();
    host.stopRings();
    return;
  }
  let s = v & ~Status.DEVICE_NEEDS_RESET;
  if (s & (Status.FEATURES_OK | Status.DRIVER_OK)) s |= Status.ACKNOWLEDGE | Status.DRIVER;
  if (core.active) {
    core.setStatus(s);
    return;
  }
  core.setStatus(s & ~Status.DRIVER_OK);
  if (s & Status.DRIVER_OK && core.activateWithLentQueues()) host.ringsActivated();
}
