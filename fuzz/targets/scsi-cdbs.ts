/**
 * virtio-scsi (5.6): command requests (virtio_scsi_cmd_req: LUN address, tag, task attribute,
 * priority, CRN, a 32-byte CDB: INQUIRY, READ/WRITE 6-16, REPORT LUNS, MODE SENSE, READ
 * CAPACITY, UNMAP, WRITE SAME... or any opcode) with data out and in, task management and
 * asynchronous-notification requests on the control queue, buffers on the event queue; two
 * LUNs on memory backends.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { ScsiDevice } from '../../src/devices/scsi/scsi-device.js';

const OPCODES = [0x00, 0x03, 0x08, 0x0a, 0x12, 0x1a, 0x25, 0x28, 0x2a, 0x35, 0x41, 0x42, 0x5a, 0x88, 0x8a, 0x93, 0x9e, 0xa0, 0xa3];

/** The LUN field: 1, target, (0x40 | lun >> 8), lun & 0xff, zeros (5.6.6.1). */
function lun(r: ByteReader, w: ByteWriter): void {
  if (r.below(4) === 0) w.bytes(r.bytes(8));
  else w.u8(1).u8(r.below(2)).u8(0x40).u8(r.below(3)).u32(0);
}

function header(queue: number, r: ByteReader): Uint8Array {
  const w = new ByteWriter();
  if (queue === 0) {
    // Control: type (0 TMF, 1 AN query, 2 AN subscribe), subtype, lun, tag.
    w.u32(r.below(4)).u32(r.below(8));
    lun(r, w);
    return w.u64(r.u8()).finish();
  }
  if (queue === 1) return w.finish();
  lun(r, w);
  w.u64(r.u8()).u8(r.below(4)).u8(0).u8(0);
  const cdb = new Uint8Array(32);
  cdb[0] = r.below(4) === 0 ? r.u8() : r.pick(OPCODES);
  cdb.set(r.bytes(15).subarray(0, 15), 1);
  return w.bytes(cdb).finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const disks = [new MemoryBackend(64 * 512), new MemoryBackend(16 * 512)];
    const device = new ScsiDevice(
      disks.map((backend) => ({ backend })),
      { queueSize: 8, numQueues: 1 },
    );
    return { device, resetHost: () => disks.forEach((d) => d.data.fill(0)), hostState: () => disks.map((d) => d.data) };
  },
  queues: 3,
  heldQueues: [1],
  header,
};

function seeds(): Uint8Array[] {
  // INQUIRY, READ CAPACITY(10), READ(10) of LUN 0 on the request queue.
  const cmd = (opcode: number, cdb: number[]): Uint8Array =>
    new ByteWriter().u8(1).u8(0).u8(2).u8(1).u8(0).u8(0).u8(0).u8(0).u8(0).u8(OPCODES.indexOf(opcode)).bytes([...cdb, ...new Array(15 - cdb.length).fill(0)]).u8(1).u8(0).u8(0).u8(6).finish();
  return [cmd(0x12, [0, 0, 0, 96]), cmd(0x25, []), cmd(0x28, [0, 0, 0, 0, 1, 0, 0, 1]), cmd(0xa0, [0, 0, 0, 0, 0, 0, 0, 64])];
}

export const target: FuzzTarget = { name: 'scsi-cdbs', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
