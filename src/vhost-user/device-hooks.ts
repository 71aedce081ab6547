/**
 * What a device may add to the vhost-user protocol, for the devices that need more than rings,
 * config and status (net's RARP and MTU, gpu's socket, fs's DAX window, vsock, crypto...):
 *
 *  - extra protocol features it implements, advertised in GET_PROTOCOL_FEATURES along with the
 *    back-end's own;
 *  - front-end requests the back-end does not handle itself, handed to the device already
 *    size-checked, under the dispatcher's fd and REPLY_ACK rules;
 *  - the back-end request channel (BACKEND_REQ), to send its own requests (typed, acknowledged
 *    with REPLY_ACK when negotiated).
 *
 * A device opts in with a `vhostUser` property; the device stays transport-free otherwise (it
 * sees the same DeviceContext on every transport).
 *
 * Shared memory regions (2.10, `VirtioDevice.sharedMemoryRegions`): PCI and MMIO present them to
 * the driver. The vhost-user protocol of /work/shared/vhost-user.rst (QEMU 7.2) has no message to
 * advertise or map them (no GET_SHMEM_CONFIG / SHMEM_MAP; the 7.2 text's FS_MAP back-end
 * requests were never merged): the VMM defines such regions itself, so on vhost-user a device's
 * regions are not advertised. A device that maps into a VMM-defined window would do so with
 * back-end requests through `session.sendBackendRequest`.
 */
import type { VirtioDevice } from '../device/types.js';
import type { BackendRequestOptions } from './backend-channel.js';
import type { BackendReq, VhostUserMessage } from './messages.js';

/** The session as a device sees it through its hooks. */
export interface VhostUserSession {
  /** Protocol features the front-end acknowledged (SET_PROTOCOL_FEATURES). */
  readonly protocolFeatures: bigint;
  /** Whether every bit of `mask` was acknowledged. */
  hasProtocolFeatures(mask: bigint): boolean;
  /**
   * Sends a back-end request on the BACKEND_REQ channel. Resolves with the front-end's u64 answer
   * (0: success) when REPLY_ACK was negotiated, else with 0n once sent; rejects (VhostUserError)
   * when BACKEND_REQ was not negotiated, no channel fd was handed over, or the channel fails.
   * The fds stay the caller's.
   */
  sendBackendRequest(request: BackendReq, payload?: Uint8Array, fds?: readonly number[], options?: BackendRequestOptions): Promise<bigint>;
}

/** A device-specific front-end request's outcome: an explicit reply payload, or null. */
export type DeviceRequestReply = Uint8Array | null;

/**
 * What a device adds to the vhost-user back-end beyond the virtio device: protocol features of its
 * own, the front-end requests they bring, and state to restore on reconnect (crypto sessions, net's
 * control).
 */
export interface VhostUserDeviceHooks {
  /** Protocol features the device implements beyond the back-end's (ProtocolFeature masks). */
  readonly protocolFeatures?: bigint;
  /**
   * Handles a front-end request the back-end does not implement itself (the device must check
   * that the protocol feature gating it was negotiated). Returns the explicit reply payload
   * (requests that have one, e.g. GET_*), or null: the back-end then acknowledges per REPLY_ACK.
   * Throws a VirtioError to refuse; return `undefined` for "not mine" (refused as UNSUPPORTED).
   * Fds it keeps must be taken from `msg.fds` (set the slot to -1); the rest are closed.
   */
  handleRequest?(msg: VhostUserMessage, session: VhostUserSession): DeviceRequestReply | undefined;
  /** A front-end connected: the session to use until `sessionEnded`. */
  sessionStarted?(session: VhostUserSession): void;
  /** The front-end disconnected (after the device was reset). */
  sessionEnded?(): void;
}

/** A VirtioDevice that extends the vhost-user protocol. */
export interface VhostUserDevice extends VirtioDevice {
  /** The device's vhost-user hooks; absent for a device that needs nothing beyond the standard protocol. */
  readonly vhostUser?: VhostUserDeviceHooks;
}

/** The device's hooks, or null when it has none. */
export function vhostUserHooks(device: VirtioDevice): VhostUserDeviceHooks | null {
  return (device as VhostUserDevice).vhostUser ?? null;
}
