/**
 * virtio-can (5.20): virtio_can_tx_out frames on the txq (msg_type TX mostly, RX / START / STOP
 * or any sometimes; flags none, EXTENDED, FD, RTR and their combinations mostly, any u32
 * sometimes; can_id in the frame's range mostly (0, a middle one, the largest extended),
 * any u32 sometimes; length one the frame type allows mostly, too long or any sometimes, with as
 * many payload bytes; reserved_classic_dlc 9..15 sometimes), SET_CTRL_MODE_START / STOP (any u16
 * sometimes) on the controlq, and rx buffers on the rxq, which the device holds until a frame
 * comes: the rxq is a held queue. Features: every one (CAN FD, RTR, LATE_TX_ACK) or CAN_CLASSIC
 * only (the device refuses FEATURES_OK with neither frame type, 5.20.3.1).
 *
 * The bus (capacity 4, so a full bus refuses frames) carries frames in a later event-loop turn:
 * with LATE_TX_ACK a tx chain stays outstanding until then, and the harness takes those turns.
 * A host node on it answers each frame with another identifier (at most 8 per input), and
 * before an rx buffer the input may have another node's frame (any type, identifier, length)
 * arrive; both reach the device through its `receive`, as the bus delivers, at once (the
 * harness takes no event-loop turn once no chain is outstanding). A new device and bus per
 * input (`freshDevice`): a frame still on the bus when an input ends would reach the next
 * input's controller otherwise.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { CanBus, type CanBusNode, CanBusSlot } from '../../src/devices/can/can-bus.js';
import { CanDevice } from '../../src/devices/can/can-device.js';
import { CAN_EXT_ID_MAX, CAN_FD_LENGTHS, CanF, CanFlags, CanMsgType, CanQueue } from '../../src/spec/can.js';

const FLAG_SETS = [0, 0, CanFlags.EXTENDED, CanFlags.FD, CanFlags.RTR, CanFlags.FD | CanFlags.EXTENDED, CanFlags.RTR | CanFlags.EXTENDED, CanFlags.RTR | CanFlags.FD];
const OTHER_TYPES = [CanMsgType.RX, CanMsgType.SET_CTRL_MODE_START, CanMsgType.SET_CTRL_MODE_STOP];
const EXT_IDS = [0, 0x1234567, CAN_EXT_ID_MAX];
const BAD_LENGTHS = [9, 13, 65];

/** One of `list` mostly, `any()` for the index past its end. */
function choice(r: ByteReader, list: readonly number[], any: () => number): number {
  const i = r.below(list.length + 1);
  return i === list.length ? any() : list[i]!;
}

/** The device the current input runs on (set as its rig starts): host frames go to it. */
let current: CanDevice | null = null;

/**
 * A host node on the bus that answers each frame it receives with the same frame, identifier
 * bit 0 flipped (8 per bus). Its answer reaches the device at once, through the device's
 * `receive` as the bus would call it: a bus frame takes another event-loop turn, which the
 * harness does not take once no chain is outstanding.
 */
class EchoNode implements CanBusNode {
  private left = 8;
  private readonly answer = new CanBusSlot();

  constructor(
    bus: CanBus,
    private readonly device: () => CanDevice | null,
  ) {
    bus.attach(this);
  }

  receive(slot: CanBusSlot): void {
    if (this.left-- <= 0) return;
    const a = this.answer;
    a.id = slot.id ^ 1;
    a.extended = slot.extended;
    a.fd = slot.fd;
    a.rtr = slot.rtr;
    a.length = slot.length;
    a.dlc = slot.dlc;
    a.data.set(slot.data);
    this.device()?.receive(a);
  }
}

const hostSlot = new CanBusSlot();

/** A frame from another node (rxq selector bits 1 FD, 2 RTR, 3 extended), delivered before the rx buffer. */
function hostFrame(sel: number, r: ByteReader): CanBusSlot {
  const s = hostSlot;
  s.fd = (sel & 2) !== 0;
  s.rtr = !s.fd && (sel & 4) !== 0;
  s.extended = (sel & 8) !== 0;
  s.id = s.extended ? r.pick(EXT_IDS) : r.below(0x800);
  s.length = s.fd ? r.pick(CAN_FD_LENGTHS) : r.below(9);
  s.dlc = 0;
  s.data.fill(r.u8());
  return s;
}

/**
 * txq selector bits: 0 another or any msg_type, 1 any flags, 2 any can_id, 3 a wrong length, 4 a
 * reserved_classic_dlc. controlq: 0 any msg_type. rxq: 0 a frame from another node first.
 */
function header(queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  if (queue === CanQueue.RXQ) {
    if ((sel & 1) !== 0 && current) current.receive(hostFrame(sel, r));
    return new Uint8Array(0);
  }
  if (queue === CanQueue.CONTROLQ) {
    return new ByteWriter().u16((sel & 1) !== 0 ? r.u16() : r.pick([CanMsgType.SET_CTRL_MODE_START, CanMsgType.SET_CTRL_MODE_STOP])).finish();
  }
  const type = (sel & 1) !== 0 ? choice(r, OTHER_TYPES, () => r.u16()) : CanMsgType.TX;
  const flags = (sel & 2) !== 0 ? r.u32() : r.pick(FLAG_SETS);
  const fd = (flags & CanFlags.FD) !== 0;
  const id = (sel & 4) !== 0 ? r.u32() : (flags & CanFlags.EXTENDED) !== 0 ? r.pick(EXT_IDS) : r.below(0x800);
  const len = (sel & 8) !== 0 ? choice(r, BAD_LENGTHS, () => r.u16()) : fd ? r.pick(CAN_FD_LENGTHS) : r.below(9);
  const dlc = (sel & 0x10) !== 0 ? 9 + r.below(7) : 0;
  const fill = r.u8();
  const w = new ByteWriter().u16(type).u16(len).u8(dlc).u8(0).u16(0).u32(flags).u32(id);
  for (let i = 0; i < Math.min(len, 64); i++) w.u8(fill + i);
  return w.finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const bus = new CanBus(4);
    const device = new CanDevice(bus, { queueSize: 16, rxBacklog: 4 });
    new EchoNode(bus, () => (current === device ? device : null));
    return { device, resetHost: () => void (current = device) };
  },
  queues: 3,
  heldQueues: [CanQueue.RXQ],
  header,
  queueSize: 16,
  requiredFeatures: CanF.CAN_CLASSIC,
  freshDevice: { dispose: (d) => (d as CanDevice).close() },
};

const START = [0, 0];
const STOP = [0, 1];
/** txq shaper input: selector 0, flags index, identifier (u16 standard or index of EXT_IDS), length (value or index), fill. */
function tx(flags: number, id: number, len: number): number[] {
  const ext = (flags & CanFlags.EXTENDED) !== 0;
  const idBytes = ext ? [EXT_IDS.indexOf(id)] : [id & 0xff, id >> 8];
  const lenByte = (flags & CanFlags.FD) !== 0 ? CAN_FD_LENGTHS.indexOf(len) : len;
  return [0, FLAG_SETS.indexOf(flags), ...idBytes, lenByte, 0x40];
}

/**
 * Seeds: classic only: START, a 4-byte frame, STOP; every feature: an rx buffer, START, a 12-byte
 * FD frame acknowledged late (it comes back into the rx buffer); an RTR frame with an extended
 * identifier, a classic frame from another node into an rx buffer, and an 8-byte classic frame
 * with DLC 15.
 */
function seeds(): Uint8Array[] {
  return [
    deviceChainsSeed(false, [[{ queue: 2, header: START, writable: 1 }, { queue: 0, header: tx(0, 0x123, 4), writable: 1 }], [{ queue: 2, header: STOP, writable: 1 }]], spec),
    deviceChainsSeed(true, [[{ queue: 1, header: [0], writable: 512, emptyMessage: true }, { queue: 2, header: START, writable: 1 }, { queue: 0, header: tx(CanFlags.FD, 0x55, 12), writable: 1 }], [{ queue: 1, header: [0], writable: 512, emptyMessage: true }]], spec),
    deviceChainsSeed(true, [[{ queue: 2, header: START, writable: 1 }, { queue: 0, header: tx(CanFlags.RTR | CanFlags.EXTENDED, 0x1234567, 2), writable: 1 }], [{ queue: 1, header: [1, 0x21, 0x03, 5, 0x77], writable: 512, emptyMessage: true }, { queue: 0, header: [0x10, 0, 0x21, 0x01, 8, 15 - 9, 0x11], writable: 1 }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'can-frames', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
