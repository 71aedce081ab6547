/**
 * 5.17 SCMI Device, device side: the virtio transport of an SCMI platform served by the host
 * (the Base and Sensor protocols). Each cmdq buffer holds one command (header and parameters,
 * device-readable) and room for its response (header and return values, device-writable); the
 * eventq (with VIRTIO_SCMI_F_P2A_CHANNELS) carries notifications and delayed responses.
 * Commands are served as they arrive; one whose sensor source answers later completes later,
 * others meanwhile (device/scmi/3), so IN_ORDER is not offered.
 *
 * The guest is untrusted: a command shorter than a header, of another message type, for an
 * unknown protocol or message, or with missing parameters gets an SCMI error status
 * (PROTOCOL_ERROR / NOT_SUPPORTED); a buffer without room for a header and a status is used with
 * length 0; nothing throws.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { SCMI_CONFIG_SIZE, ScmiCommonMessage, ScmiF, ScmiHeader, ScmiMessageType, ScmiQueue, ScmiStatus } from '../../spec/scmi.js';
import { type ScmiBaseIdentity, ScmiBaseProtocol } from './scmi-base-protocol.js';
import { SCMI_MAX_PARAMS, SCMI_MAX_RETURN, type ScmiCommand, type ScmiProtocolHandler, ScmiRequest } from './scmi-command.js';
import { ScmiEventQueue } from './scmi-events.js';
import { type ScmiSensorSpec, ScmiSensorProtocol } from './scmi-sensor-protocol.js';

/** Options of ScmiDevice. */
export interface ScmiDeviceOptions extends ScmiBaseIdentity {
  /** The sensors of the Sensor protocol (none: the protocol is still listed, with 0 sensors). */
  sensors?: readonly ScmiSensorSpec[];
  /** Maximum queue size of each queue. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/**
 * The virtio-scmi device (5.17): an SCMI platform with the base and sensor protocols. What it
 * implements and its normative coverage: docs/devices/scmi.md.
 */
export class ScmiDevice implements VirtioDevice {
  readonly deviceId = DeviceId.SCMI;
  /**
   * device/scmi/1: P2A_CHANNELS, as the sensor protocol has notifications and delayed responses.
   * device/scmi/2: not SHARED_MEMORY: no statistics shared memory region is implemented.
   */
  readonly offeredFeatures = ScmiF.P2A_CHANNELS | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = SCMI_CONFIG_SIZE;
  /** The Sensor protocol (0x15): set values with it, read its pending asynchronous readings. */
  readonly sensors: ScmiSensorProtocol;
  /** The eventq side (5.17.6.2): notifications and delayed responses waiting for buffers. */
  readonly events: ScmiEventQueue;

  private readonly server: QueueServer<ScmiRequest>;
  private readonly protocols: ScmiProtocolHandler[];
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly headerBytes = new Uint8Array(ScmiHeader.SIZE);
  private readonly headerView = new DataView(this.headerBytes.buffer);
  private p2a = false;
  /** Responses cut short because the driver's buffer was too small (it broke driver/scmi/2). */
  shortResponses = 0;

  constructor(opts: ScmiDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs];
    const serve = (req: ScmiRequest): number | Promise<number> => this.serve(req);
    this.server = new QueueServer<ScmiRequest>({
      name: 'virtio-scmi',
      numQueues: 2,
      logger: opts.logger,
      newRequest: (chain, i) => new ScmiRequest(chain, i),
      handler: (i) => (i === ScmiQueue.CMDQ ? serve : i === ScmiQueue.EVENTQ ? this.events.serve : null),
      queueStopped: (i) => {
        if (i === ScmiQueue.EVENTQ) this.events.queueStopped();
      },
    });
    this.events = new ScmiEventQueue(this.server as unknown as QueueServer<QueueRequest>);
    this.sensors = new ScmiSensorProtocol(opts.sensors ?? [], this.events);
    const base = new ScmiBaseProtocol([this.sensors.protocolId], opts);
    this.protocols = [base, this.sensors];
  }

  /** One command; resolves with the bytes of the response written. */
  private serve(req: ScmiRequest): number | Promise<number> {
    const { chain, command: cmd } = req;
    if (chain.fault !== null || chain.writableBytes < ScmiHeader.SIZE + 4) return 0;
    cmd.p2a = this.p2a;
    cmd.retRoom = Math.min(SCMI_MAX_RETURN, chain.writableBytes - ScmiHeader.SIZE);
    const r = this.reader.reset(chain);
    if (r.read(this.headerBytes) !== ScmiHeader.SIZE) {
      cmd.header = 0;
      return this.respond(chain, cmd, cmd.status(ScmiStatus.PROTOCOL_ERROR));
    }
    cmd.header = this.headerView.getUint32(0, true);
    cmd.paramsLength = r.read(cmd.params, 0, Math.min(SCMI_MAX_PARAMS, chain.readableBytes - ScmiHeader.SIZE));
    if (cmd.paramsLength < SCMI_MAX_PARAMS) cmd.params.fill(0, cmd.paramsLength);
    if (cmd.type !== ScmiMessageType.COMMAND) return this.respond(chain, cmd, cmd.status(ScmiStatus.PROTOCOL_ERROR));
    const protocol = this.protocols.find((p) => p.protocolId === cmd.protocolId);
    if (protocol === undefined) return this.respond(chain, cmd, cmd.status(ScmiStatus.NOT_SUPPORTED));
    if (!protocol.implements(cmd.messageId, cmd.p2a) && cmd.messageId > ScmiCommonMessage.PROTOCOL_MESSAGE_ATTRIBUTES) {
      return this.respond(chain, cmd, cmd.status(ScmiStatus.NOT_SUPPORTED));
    }
    const n = protocol.handle(cmd);
    if (typeof n === 'number') return this.respond(chain, cmd, n);
    // A reset or queue reset meanwhile: the buffer is no longer the device's to write (device/content/8).
    return n.then((len) => (this.server.isLive(req) ? this.respond(chain, cmd, len) : 0));
  }

  /** The response: the command's header, then the return values (status first). */
  private respond(chain: DescriptorChain, cmd: ScmiCommand, retLength: number): number {
    // device/scmi/5: a status other than SUCCESS is the whole of ret_values.
    const len = cmd.retView.getInt32(0, true) !== ScmiStatus.SUCCESS ? 4 : Math.min(retLength, cmd.retRoom);
    if (len < retLength) this.shortResponses++;
    const w = this.writer.reset(chain);
    this.headerView.setUint32(0, cmd.header, true);
    w.write(this.headerBytes);
    w.write(cmd.ret, 0, len);
    return w.moved;
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // 5.17.4: no configuration
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.p2a = (ctx.features & ScmiF.P2A_CHANNELS) !== 0n;
    this.events.reset();
    if (this.p2a) this.events.start();
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    this.server.reset();
    this.events.reset();
    this.sensors.resetAgentConfiguration();
    this.p2a = false;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
