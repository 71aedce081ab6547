/**
 * A GpuDevice served over vhost-user with QEMU's display protocol: VHOST_USER_GPU_SET_SOCKET
 * (front-end message 33, vhost-user.rst; no protocol feature gates it, QEMU's vhost-user-gpu sends
 * it once the back-end is set up) hands over the socket of vhost-user-gpu.rst, which a
 * GpuDisplaySocket then speaks. A new SET_SOCKET replaces the previous display; a disconnect ends
 * it. The device serves the guest whether or not a display is attached.
 */
import { FrontendReq, type VhostUserMessage } from '../../vhost-user/messages.js';
import { closeSync } from 'node:fs';
import { VhostUserError, VhostUserFault } from '../../vhost-user/codec.js';
import { takeFds } from '../../vhost-user/dispatcher.js';
import type { DeviceRequestReply, VhostUserDeviceHooks } from '../../vhost-user/device-hooks.js';
import { GpuDevice, type GpuDeviceOptions } from './gpu-device.js';
import { GpuDisplaySocket, type GpuDisplaySocketOptions } from './gpu-display-socket.js';

/** Options of a VhostUserGpuDevice: the device's and its display socket's. */
export interface VhostUserGpuDeviceOptions extends GpuDeviceOptions {
  /** How the display socket waits and bounds its queue. */
  readonly display?: GpuDisplaySocketOptions;
}

/** A GpuDevice that accepts the vhost-user-gpu display socket. */
export class VhostUserGpuDevice extends GpuDevice {
  /** The current display socket; null before SET_SOCKET and after a disconnect. */
  display: GpuDisplaySocket | null = null;
  private readonly displayOptions: GpuDisplaySocketOptions;
  private readonly displayListeners = new Set<(d: GpuDisplaySocket) => void>();

  /** The vhost-user hooks: message 33 and the end of the session. */
  readonly vhostUser: VhostUserDeviceHooks = {
    handleRequest: (msg: VhostUserMessage): DeviceRequestReply | undefined => {
      if (msg.request !== FrontendReq.GPU_SET_SOCKET) return undefined;
      const [fd] = takeFds(msg, 1, 1);
      let display: GpuDisplaySocket;
      try {
        display = new GpuDisplaySocket(fd!, this, this.displayOptions);
      } catch (e) {
        // Not a stream socket (a file, a memfd): Node refuses to wrap it.
        closeSync(fd!);
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `the GPU socket fd is not a stream socket: ${(e as Error).message}`, msg.request);
      }
      this.display?.close();
      this.display = display;
      for (const l of this.displayListeners) l(display);
      return null;
    },
    sessionEnded: () => {
      this.display?.close();
      this.display = null;
    },
  };

  constructor(opts: VhostUserGpuDeviceOptions = {}) {
    super(opts);
    this.displayOptions = { ...(opts.logger ? { logger: opts.logger } : {}), ...opts.display };
  }

  /** Calls `listener` with each display socket the front-end hands over; returns the unsubscribe function. */
  onDisplay(listener: (d: GpuDisplaySocket) => void): () => void {
    this.displayListeners.add(listener);
    return () => this.displayListeners.delete(listener);
  }
}
