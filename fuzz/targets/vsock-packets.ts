/**
 * virtio-vsock (5.10): packets on the transmit queue (44-byte header: src/dst CID and port,
 * len, type stream or seqpacket, op REQUEST / RESPONSE / RST / SHUTDOWN / RW / CREDIT_UPDATE /
 * CREDIT_REQUEST, flags, buf_alloc, fwd_cnt; then payload), receive and event buffers, against
 * a memory backend listening on port 1234.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { MemoryVsockBackend } from '../../src/devices/vsock/backends/memory-backend.js';
import { VsockDevice } from '../../src/devices/vsock/vsock-device.js';

const CID = 3;

function header(queue: number, r: ByteReader): Uint8Array {
  if (queue !== 1) return new Uint8Array(0);
  const odd = r.u8();
  return new ByteWriter()
    .u64((odd & 1) !== 0 ? r.u32() : CID)
    .u64((odd & 2) !== 0 ? r.u32() : 2)
    .u32((odd & 4) !== 0 ? r.u32() : 1000 + r.below(4))
    .u32((odd & 8) !== 0 ? r.u32() : 1234)
    .u32((odd & 16) !== 0 ? r.u32() : r.below(64))
    .u16((odd & 32) !== 0 ? r.u16() : 1 + r.below(2))
    .u16((odd & 64) !== 0 ? r.u16() : 1 + r.below(7))
    .u32(r.below(4))
    .u32((odd & 128) !== 0 ? r.u32() : 65536)
    .u32(r.u16())
    .finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const backend = new MemoryVsockBackend();
    backend.listen(1234, () => {});
    return { device: new VsockDevice({ guestCid: CID, backend, queueSize: 8 }) };
  },
  queues: 3,
  heldQueues: [0, 2],
  header,
};

function seeds(): Uint8Array[] {
  // A REQUEST to port 1234, then RW with 4 bytes, then SHUTDOWN; rx buffers first.
  const pkt = (op: number, len: number): number[] => [1, 1, 0, 0, len, 0, op - 1, 0, 0, 0];
  const w = new ByteWriter().u8(1).u8(1).u8(0).u8(0).u8(0).u8(6);
  w.u8(2).u8(1).bytes(pkt(1, 0)).u8(0).u8(0).u8(0);
  w.u8(1).bytes(pkt(5, 4)).u8(1).u8(4).u8(0).u8(0);
  return [w.finish()];
}

export const target: FuzzTarget = { name: 'vsock-packets', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
