/**
 * Channel command sequences on the CCW transport (4.3): every virtio channel command and unknown
 * ones, with data areas in guest memory written by the input (revision blocks, feature
 * descriptors, vq info blocks, indicators, thin-interrupt areas, status), counts right or wrong,
 * SLI / chaining flags, hypercall notifications with right and wrong subchannel ids and queue
 * indexes, subchannel enables; on the real DeviceCore with a blk device.
 */
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { partsOutcome, reusableTransportParts, takeParts } from '../harness/blk-rig.js';
import { drain } from '../harness/reuse.js';
import { AVAIL, DESC, GUEST_BASE, GUEST_SIZE, USED } from '../harness/core-rig.js';
import { readValue } from '../harness/register-ops.js';
import { splitBlkReadImage } from '../harness/ring-image.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { CcwDeviceTransport } from '../../src/transport/ccw/ccw-device.js';
import { CcwCmd, CcwFlag, CcwSize } from '../../src/transport/ccw/constants.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';

const SCHID = 0x0001_0000;
const COMMANDS = Object.values(CcwCmd);
const SIZES = [...Object.values(CcwSize), 0, 2, 8, 24, 64];
/** Where the command data areas go (offset in guest memory). */
const AREA = 0xe000;
const MAX_STEPS = 48;

const Step = { EXECUTE: 0, NOTIFY: 1, DATA: 2, ENABLE: 3, SETTLE: 4 } as const;

const parts = reusableTransportParts();
/** The device behind the transport completes synchronously: a microtask drain is its event-loop turn. */
const settle = (): Promise<void> => drain(() => false);

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const { mem, device } = takeParts(parts);
  const bus = new LoopbackBus(mem.memory, r.bool());
  const ccw = new CcwDeviceTransport(bus, deviceCoreFactory(device, mem.memory), { subchannelId: SCHID, transitional: r.bool(), onBadAccess: () => {} });
  for (let s = 0; s < MAX_STEPS && !r.done; s++) {
    const op = r.u8();
    switch (op % 5) {
      case Step.EXECUTE: {
        const cmd = (op & 0x80) !== 0 ? r.u8() : r.pick(COMMANDS);
        const addr = (op & 0x40) !== 0 ? readValue(r) : GUEST_BASE + AREA;
        const count = (op & 0x20) !== 0 ? r.u16() : r.pick(SIZES);
        const flags = r.u8() & (CcwFlag.CD | CcwFlag.CC | CcwFlag.SLI | CcwFlag.SKIP);
        const out = ccw.execute(cmd, addr, count, flags);
        check(typeof out.status === 'string', 'protocol', 'execute gave no outcome');
        break;
      }
      case Step.NOTIFY: {
        const gpr2 = (op & 0x80) !== 0 ? r.u32() : SCHID;
        const v = ccw.hypercallNotify(gpr2, r.below(4) === 0 ? r.u32() : r.below(3));
        check(Number.isInteger(v), 'protocol', 'hypercall gave no return code');
        break;
      }
      case Step.DATA: {
        const off = (op & 0x80) !== 0 ? r.u16() % GUEST_SIZE : AREA + r.below(32);
        const bytes = r.bytes(1 + r.below(40));
        mem.bytes.set(bytes.subarray(0, Math.min(bytes.length, GUEST_SIZE - off)), off);
        break;
      }
      case Step.ENABLE:
        ccw.enableSubchannel();
        break;
      default:
        await settle();
    }
  }
  await settle();
  mem.checkGuards();
}

/** Seeds: the revision 1 bring-up of a driver (as Linux does it) and a notification. */
function seeds(): Uint8Array[] {
  const w = new ByteWriter().u8(0).u8(1);
  const dataStep = (bytes: Uint8Array): void => void w.u8(Step.DATA).u8(0).u8(bytes.length - 1).bytes(bytes);
  const exec = (cmd: number, count: number): void => void w.u8(Step.EXECUTE | 0x20).u8(COMMANDS.indexOf(cmd as (typeof COMMANDS)[number])).u16(count).u8(0);
  const be = (...parts: [number, number][]): Uint8Array => {
    const out: number[] = [];
    for (const [v, n] of parts) for (let i = n - 1; i >= 0; i--) out.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
    return Uint8Array.from(out);
  };
  dataStep(be([1, 2], [0, 2]));
  exec(CcwCmd.SET_VIRTIO_REV, CcwSize.REV_INFO);
  dataStep(be([0x03000000, 4]));
  exec(CcwCmd.WRITE_STATUS, 1);
  dataStep(Uint8Array.from([0, 0, 0, 0, 0]));
  exec(CcwCmd.READ_FEAT, CcwSize.FEATURE_DESC);
  dataStep(Uint8Array.from([1, 0, 0, 0, 1]));
  exec(CcwCmd.WRITE_FEAT, CcwSize.FEATURE_DESC);
  dataStep(be([0x0b000000, 4]));
  exec(CcwCmd.WRITE_STATUS, 1);
  dataStep(be([0, 2], [0, 2]));
  exec(CcwCmd.READ_VQ_CONF, CcwSize.VQ_CONFIG);
  dataStep(be([DESC, 8], [AVAIL, 8], [USED, 8], [0, 2], [0, 2], [8, 2]));
  exec(CcwCmd.SET_VQ, CcwSize.VQ_INFO);
  dataStep(be([0x0f000000, 4]));
  exec(CcwCmd.WRITE_STATUS, 1);
  const img = splitBlkReadImage();
  for (const wr of img.writes)
    for (let i = 0; i < wr.bytes.length; i += 40) {
      const part = wr.bytes.subarray(i, i + 40);
      w.u8(Step.DATA | 0x80).u16(wr.offset + i).u8(part.length - 1).bytes(part);
    }
  w.u8(Step.NOTIFY).u8(1).u8(0).u8(Step.SETTLE);
  return [w.finish()];
}

export const target: FuzzTarget = { name: 'ccw-commands', maxLen: 2048, seeds, run, outcome: () => partsOutcome(parts) };
