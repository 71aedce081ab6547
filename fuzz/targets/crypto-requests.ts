/**
 * virtio-crypto (5.9): control requests (virtio_crypto_ctrl_header: session create / destroy of
 * every service, any opcode sometimes, an algorithm, then a 56-byte op_flf with small key and
 * IV lengths mostly, then keys as raw bytes) on the control queue, and data requests
 * (virtio_crypto_op_header: every data opcode, algorithm, a session id among the first ones,
 * then a 48-byte op_flf with small lengths mostly, then IV and data as raw bytes) on the data
 * queue. Checks (device-chains): no throw, every chain completed, used.len within the writable
 * bytes, guards.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { CryptoDevice } from '../../src/devices/crypto/crypto-device.js';
import { CryptoCtrlOp, CryptoDataOp } from '../../src/spec/crypto.js';

/** Data queue 0, control queue 1 (one data queue). */
const CTRL = 1;
const CTRL_OPS = Object.values(CryptoCtrlOp);
const DATA_OPS = Object.values(CryptoDataOp);
const LENGTHS = [0, 1, 8, 16, 24, 32, 64];

/** A u32 length: small mostly, any sometimes. */
function len(r: ByteReader, sel: number, bit: number): number {
  return (sel & bit) !== 0 ? r.u32() : r.pick(LENGTHS);
}

function header(queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  const w = new ByteWriter();
  if (queue === CTRL) {
    w.u32((sel & 0x80) !== 0 ? r.u32() : r.pick(CTRL_OPS)).u32(r.below(24)).u32(r.below(4)).u32(0);
    // op_flf (56 bytes): the service's session parameters, lengths first.
    w.u32(r.below(24)).u32(len(r, sel, 0x40)).u32(len(r, sel, 0x20)).u32(r.below(4)).u32(len(r, sel, 0x10)).u32(r.below(4));
    const rest = r.bytes(32);
    w.bytes(rest).bytes(new Uint8Array(32 - rest.length));
    return w.finish();
  }
  w.u32((sel & 0x80) !== 0 ? r.u32() : r.pick(DATA_OPS)).u32(r.below(24)).u64((sel & 0x08) !== 0 ? r.u64() : r.below(4)).u32(r.below(4)).u32(0);
  // op_flf (48 bytes): iv_len, src_data_len, dst_data_len, ... (lengths of the op_vlf that follows).
  w.u32(len(r, sel, 0x40)).u32(len(r, sel, 0x20)).u32(len(r, sel, 0x10)).u32(len(r, sel, 0x04)).u32(len(r, sel, 0x02)).u32(r.below(4));
  const rest = r.bytes(24);
  return w.bytes(rest).bytes(new Uint8Array(24 - rest.length)).finish();
}

const spec: DeviceChainsSpec = { device: () => ({ device: new CryptoDevice({ queueSize: 8 }) }), queues: 2, heldQueues: [], header };

/** Seeds: a cipher (AES-CBC) session create then an encrypt on session 0; a hash session. */
function seeds(): Uint8Array[] {
  const ctrl = (op: number, algo: number, keyIdx: number): number[] => [CTRL, 0, CTRL_OPS.indexOf(op as never), algo, 0, algo, keyIdx, 0, 1, 0, 0];
  const data = (op: number, algo: number): number[] => [0, 0, DATA_OPS.indexOf(op as never), algo, 0, 0, 4, 5, 5, 0, 0, 0];
  const chain = (body: number[], w = 7): number[] => [...body, 1, 16, 0, w];
  return [
    new ByteWriter().u8(1).u8(1).bytes(chain(ctrl(CryptoCtrlOp.CIPHER_CREATE_SESSION, 3, 4))).u8(0).bytes(chain(data(CryptoDataOp.CIPHER_ENCRYPT, 3))).finish(),
    new ByteWriter().u8(1).u8(0).bytes(chain(ctrl(CryptoCtrlOp.HASH_CREATE_SESSION, 5, 0))).finish(),
  ];
}

export const target: FuzzTarget = { name: 'crypto-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
