/**
 * virtio-net (5.1): transmit buffers (virtio_net_hdr with any flags, gso type, csum offsets,
 * then a frame) on the transmit queue, control commands (class, command, data: RX mode, MAC
 * table, VLAN, MQ, RSS, offloads, coalescing, announce) on the control queue, and buffers on
 * the receive queue, with every feature the device offers accepted or only EVENT_IDX.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { NetDevice } from '../../src/devices/net/net-device.js';

/** rx 0, tx 1, control 2 (one queue pair). */
const CTRL = 2;

function header(queue: number, r: ByteReader): Uint8Array {
  if (queue === CTRL) {
    // class (0 RX .. 6 NOTF_COAL, 7 STATS), command, then data.
    return new ByteWriter().u8(r.below(4) === 0 ? r.u8() : r.below(8)).u8(r.below(4) === 0 ? r.u8() : r.below(6)).finish();
  }
  if (queue === 1) {
    // virtio_net_hdr_v1 (12 bytes): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers.
    return new ByteWriter()
      .u8(r.below(8))
      .u8(r.pick([0, 1, 3, 4, 5, 0x80, r.u8()]))
      .u16(r.below(4) === 0 ? r.u16() : 14 + r.below(60))
      .u16(r.below(4) === 0 ? r.u16() : r.pick([0, 536, 1448, 1460]))
      .u16(r.below(4) === 0 ? r.u16() : 14 + r.below(40))
      .u16(r.pick([6, 16, r.u16()]))
      .u16(r.u8())
      .finish();
  }
  return new Uint8Array(0);
}

const spec: DeviceChainsSpec = { device: () => ({ device: new NetDevice({ queueSize: 8, queuePairs: 1 }) }), queues: 3, heldQueues: [0], header };

function seeds(): Uint8Array[] {
  // all features; one round of 2 chains: a tx frame, a ctrl RX_PROMISC command.
  const tx = new ByteWriter().u8(1).u8(0).u8(1).u8(1).u8(0).u8(0).u8(1).u8(0).u8(1).u8(0).u8(0).u8(0).u8(1).u8(60).u8(0).u8(0);
  const ctrl = new ByteWriter().u8(1).u8(0).u8(2).u8(1).u8(0).u8(1).u8(0).u8(1).u8(1).u8(0).u8(1);
  const rx = new ByteWriter().u8(1).u8(0).u8(0).u8(1).u8(0).u8(0).u8(7);
  return [tx.finish(), ctrl.finish(), rx.finish()];
}

export const target: FuzzTarget = { name: 'net-header-ctrl', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
