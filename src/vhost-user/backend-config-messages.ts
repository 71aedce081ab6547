/**
 * The back-end's config space messages (vhost-user.rst GET_CONFIG, SET_CONFIG; CONFIG protocol
 * feature): the front-end reads and writes the device's configuration space (2.5) through the
 * device core, with the protocol's own refusals (a range that wraps, flags other than WRITABLE
 * or MIGRATION, a write beyond the config or to read-only fields). Split from backend.ts, which
 * registers these handlers on its dispatcher.
 */
import type { DeviceCore } from '../device/device-core.js';
import type { VirtioDevice } from '../device/types.js';
import { VhostUserError, VhostUserFault, decodeConfig, encodeConfig } from './codec.js';
import { type MessageDispatcher, noFds } from './dispatcher.js';
import { ConfigFlag, FrontendReq, PF } from './messages.js';

/** What the config messages reach in the back-end (VhostUserBackend). */
export interface BackendConfigHost {
  /** The device served. */
  readonly device: VirtioDevice;
  /** The device lifecycle the config space goes through. */
  readonly core: DeviceCore;
  /** Throws NOT_NEGOTIATED unless the protocol feature `mask` was negotiated. */
  requireProto(req: number, mask: bigint): void;
  /** The device features the front-end set (the vhost-user bits removed). */
  deviceFeatures(): bigint;
}

/** Registers GET_CONFIG and SET_CONFIG on `d`. */
export function registerConfigHandlers(d: MessageDispatcher, host: BackendConfigHost): void {
  const { core, device } = host;
  d.on(FrontendReq.GET_CONFIG, (msg) => {
    noFds(msg);
    host.requireProto(msg.request, PF.CONFIG);
    const c = decodeConfig(msg.request, msg.payload);
    // offset + size past 2^32 wraps in the front-end's 32-bit arithmetic: refused (a
    // zero-length reply), as is any other size the protocol cannot answer.
    if (c.offset + c.size > 0xffff_ffff) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `config read ${c.offset}+${c.size} wraps`, msg.request);
    }
    const data = new Uint8Array(c.size);
    // 2.5: bytes past the config space read 0 (the core asks the device only for the rest).
    core.readConfigBytes(c.offset, data);
    return { payload: encodeConfig({ offset: c.offset, size: c.size, flags: c.flags, data }) };
  });
  d.on(FrontendReq.SET_CONFIG, (msg) => {
    noFds(msg);
    host.requireProto(msg.request, PF.CONFIG);
    const c = decodeConfig(msg.request, msg.payload);
    if (c.flags !== ConfigFlag.WRITABLE && c.flags !== ConfigFlag.MIGRATION) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `config flags ${c.flags}`, msg.request);
    }
    // The core ignores out-of-range writes; the protocol refuses them so the front-end knows.
    if (c.offset + c.size > device.configSize) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `config write ${c.offset}+${c.size} beyond ${device.configSize}`, msg.request);
    }
    // "The back-end MUST NOT accept SET_CONFIG for read-only fields" (vhost-user.rst): a
    // device that knows its writable fields says so; a refused write gets a non-zero ack.
    if (device.configWritable && !device.configWritable(c.offset, c.size, host.deviceFeatures())) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `config write ${c.offset}+${c.size} touches read-only fields`, msg.request);
    }
    core.writeConfigBytes(c.offset, c.data.slice());
    return null;
  });
}
