/**
 * virtio-9p (9P2000.L over the 9P transport device): T-messages on the request queue, served by
 * P9Device from a shared directory rebuilt before each input (harness/shared-dir.ts: a file, a
 * directory, symlinks pointing out of the tree). A message is size[4] type[1] tag[2] then the
 * type's fields from the input, each a fid (small, or NOFID, or any), an integer, a string (a
 * name from a list with "..", ".", the escaping symlinks, long and empty names, or raw bytes),
 * a walk's name list or a write's data; then raw bytes; size is the message's length unless the
 * input forces it. Checks (device-chains): no throw, every chain completed, used.len within the
 * writable bytes, guards; and the shared directory's parent untouched.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { SharedDirFixture } from '../harness/shared-dir.js';
import { P9Device } from '../../src/devices/9p/p9-device.js';
import { P9_NOFID, P9Type } from '../../src/spec/9p.js';

/**
 * Fields of each T-message: f fid, 1/2/4/8 integers, s string, S walk names (nwname + names),
 * d count[4] + data.
 */
const FIELDS: Record<number, string> = {
  [P9Type.TVERSION]: '4v',
  [P9Type.TAUTH]: 'fss4',
  [P9Type.TATTACH]: 'ffss4',
  [P9Type.TFLUSH]: '2',
  [P9Type.TWALK]: 'ffS',
  [P9Type.TREAD]: 'f84',
  [P9Type.TWRITE]: 'f8d',
  [P9Type.TCLUNK]: 'f',
  [P9Type.TREMOVE]: 'f',
  [P9Type.TSTATFS]: 'f',
  [P9Type.TLOPEN]: 'f4',
  [P9Type.TLCREATE]: 'fs444',
  [P9Type.TSYMLINK]: 'fss4',
  [P9Type.TMKNOD]: 'fs4444',
  [P9Type.TRENAME]: 'ffs',
  [P9Type.TREADLINK]: 'f',
  [P9Type.TGETATTR]: 'f8',
  [P9Type.TSETATTR]: 'f444488888',
  [P9Type.TXATTRWALK]: 'ffs',
  [P9Type.TXATTRCREATE]: 'fs84',
  [P9Type.TREADDIR]: 'f84',
  [P9Type.TFSYNC]: 'f4',
  [P9Type.TLOCK]: 'f14884s',
  [P9Type.TGETLOCK]: 'f1884s',
  [P9Type.TLINK]: 'ffs',
  [P9Type.TMKDIR]: 'fs44',
  [P9Type.TRENAMEAT]: 'fsfs',
  [P9Type.TUNLINKAT]: 'fs4',
  [P9Type.TLERROR]: '',
};
const TYPES = Object.keys(FIELDS).map(Number);
const NAMES = ['a.txt', 'd', 'b.txt', 'up', 'abs', '..', '.', 'new', 'user.x', 'x'.repeat(300), '', 'a/b', 'root'];
const VERSIONS = ['9P2000.L', '9P2000', '9P2000.u', 'unknown'];
const encoder = new TextEncoder();
const NAME_BYTES = NAMES.map((n) => encoder.encode(n));
const VERSION_BYTES = VERSIONS.map((n) => encoder.encode(n));
const INTS = [0, 1, 2, 0o644, 0o755, 0x8000, 4096, 8192, 0xffff_ffff];
let forcedSize = false;

function str(w: ByteWriter, b: Uint8Array): void {
  w.u16(b.length).bytes(b);
}

function name(r: ByteReader): Uint8Array {
  const sel = r.u8();
  return (sel & 0x80) !== 0 ? r.bytes(sel & 0x1f) : NAME_BYTES[sel % NAME_BYTES.length]!;
}

function header(_queue: number, r: ByteReader): Uint8Array {
  const kind = r.u8();
  const type = (kind & 0x80) !== 0 ? r.u8() : TYPES[r.below(TYPES.length)]!;
  forcedSize = (kind & 0x20) !== 0;
  const w = new ByteWriter().u32(forcedSize ? r.u32() : 0).u8(type);
  w.u16(type === P9Type.TVERSION ? 0xffff : r.below(4));
  for (const f of FIELDS[type] ?? '') {
    const sel = r.u8();
    switch (f) {
      case 'f':
        w.u32((sel & 0x80) !== 0 ? r.u32() : (sel & 0x40) !== 0 ? P9_NOFID : sel & 7);
        break;
      case '1':
        w.u8(sel);
        break;
      case '2':
        w.u16((sel & 0x80) !== 0 ? r.u16() : sel & 7);
        break;
      case '4':
        w.u32((sel & 0x80) !== 0 ? r.u32() : INTS[sel % INTS.length]!);
        break;
      case '8':
        w.u64((sel & 0x80) !== 0 ? r.u64() : (sel & 0x7f) * 512);
        break;
      case 's':
        str(w, (sel & 0x80) !== 0 ? r.bytes(sel & 0x1f) : NAME_BYTES[sel % NAME_BYTES.length]!);
        break;
      case 'v':
        str(w, (sel & 0x80) !== 0 ? r.bytes(sel & 0x1f) : VERSION_BYTES[sel % VERSION_BYTES.length]!);
        break;
      case 'S': {
        const n = (sel & 0x80) !== 0 ? sel & 0x7f : sel % 4;
        w.u16(n);
        for (let i = 0; i < Math.min(n, 20); i++) str(w, name(r));
        break;
      }
      default: {
        // d: count[4] then data (a count that disagrees with the data sometimes).
        const data = r.bytes(sel & 0x3f);
        w.u32((sel & 0x80) !== 0 ? r.u32() : data.length).bytes(data);
      }
    }
  }
  return w.finish();
}

function finish(_queue: number, msg: Uint8Array): void {
  if (forcedSize || msg.length < 4) return;
  new DataView(msg.buffer, msg.byteOffset, msg.byteLength).setUint32(0, msg.length, true);
}

let fixture: SharedDirFixture | null = null;
const spec: DeviceChainsSpec = {
  device: () => {
    fixture ??= new SharedDirFixture('vts-fuzz-9p-');
    const f = fixture;
    return { device: new P9Device({ sharedDir: f.dir, tag: 'fuzz', queueSize: 16, maxMsize: 8192 }), resetHost: () => f.restore() };
  },
  queues: 1,
  heldQueues: [],
  queueSize: 16,
  rounds: 6,
  header,
  finish,
  checkHost: () => fixture?.checkParent(),
  memoryInFingerprint: false,
};

/** Seeds: Tversion, Tattach fid 0, then walks, opens, reads, creates. */
function seeds(): Uint8Array[] {
  const t = (type: number, fields: number[]): number[] => [0, TYPES.indexOf(type), ...(type === P9Type.TVERSION ? [] : [0]), ...fields];
  const version = t(P9Type.TVERSION, [INTS.indexOf(8192), 0]);
  const attach = t(P9Type.TATTACH, [0, 0x40, NAMES.indexOf('root'), NAMES.indexOf(''), 0]);
  const walk = (fid: number, newfid: number, names: number[]): number[] => t(P9Type.TWALK, [fid, newfid, names.length, ...names]);
  // One queue: the chain has no queue byte (below(1) reads none).
  const chain = (body: number[]): number[] => [...body, 1, 0, 0, 7];
  const session = (...msgs: number[][]): Uint8Array => {
    const w = new ByteWriter().u8(1);
    for (const m of msgs) w.u8(0).bytes(chain(m));
    return w.finish();
  };
  const A = NAMES.indexOf('a.txt');
  const D = NAMES.indexOf('d');
  return [
    session(version, attach, walk(0, 1, [A]), t(P9Type.TGETATTR, [1, 0x7f])),
    session(version, attach, walk(0, 1, [A]), t(P9Type.TLOPEN, [1, 0]), t(P9Type.TREAD, [1, 0, INTS.indexOf(4096)])),
    session(version, attach, walk(0, 1, [D]), t(P9Type.TLOPEN, [1, 0]), t(P9Type.TREADDIR, [1, 0, INTS.indexOf(4096)])),
    session(version, attach, walk(0, 1, []), t(P9Type.TLCREATE, [1, NAMES.indexOf('new'), 2, INTS.indexOf(0o644), 0]), t(P9Type.TWRITE, [1, 0, 5, 1, 2, 3, 4, 5])),
    session(version, attach, t(P9Type.TMKDIR, [0, NAMES.indexOf('new'), INTS.indexOf(0o755), 0]), t(P9Type.TUNLINKAT, [0, A, 0]), walk(0, 2, [NAMES.indexOf('up')])),
  ];
}

export const target: FuzzTarget = { name: '9p-messages', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
