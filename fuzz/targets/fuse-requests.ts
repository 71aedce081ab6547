/**
 * virtio-fs (5.11): FUSE requests on the request queue and the hiprio queue, served by FsDevice
 * from a shared directory rebuilt before each input (harness/shared-dir.ts: a file, a directory,
 * symlinks pointing out of the tree). A request is fuse_in_header (len, opcode: every defined
 * one mostly, any u32 sometimes; unique, nodeid small or any, uid/gid/pid) then the opcode's
 * fixed part from the input (FUSE_INIT well formed mostly), then its names (from a list that
 * includes "..", ".", the escaping symlinks, long and empty names, or raw bytes), then raw bytes;
 * len is the message's length unless the input forces it. Checks (device-chains): no throw,
 * every chain completed, used.len within the writable bytes, guards; and the shared
 * directory's parent untouched. SETLKW is sent as SETLK: without VIRTIO_FS_F_NOTIFICATION a
 * SETLKW on a lock held by another owner rightly keeps its chain until the lock ends.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { SharedDirFixture } from '../harness/shared-dir.js';
import { FsDevice } from '../../src/devices/fs/fs-device.js';
import { FuseOpcode } from '../../src/spec/fs.js';

const OPS = Object.values(FuseOpcode).filter((o) => o !== FuseOpcode.SETLKW);
/** Bytes of each opcode's fixed part (Linux include/uapi/linux/fuse.h, protocol 7.31+). */
const FIXED: Partial<Record<number, number>> = {
  [FuseOpcode.FORGET]: 8,
  [FuseOpcode.GETATTR]: 16,
  [FuseOpcode.SETATTR]: 88,
  [FuseOpcode.MKNOD]: 16,
  [FuseOpcode.MKDIR]: 8,
  [FuseOpcode.RENAME]: 8,
  [FuseOpcode.LINK]: 8,
  [FuseOpcode.OPEN]: 8,
  [FuseOpcode.READ]: 40,
  [FuseOpcode.WRITE]: 40,
  [FuseOpcode.RELEASE]: 24,
  [FuseOpcode.FSYNC]: 16,
  [FuseOpcode.SETXATTR]: 8,
  [FuseOpcode.GETXATTR]: 8,
  [FuseOpcode.LISTXATTR]: 8,
  [FuseOpcode.FLUSH]: 24,
  [FuseOpcode.OPENDIR]: 8,
  [FuseOpcode.READDIR]: 40,
  [FuseOpcode.RELEASEDIR]: 24,
  [FuseOpcode.FSYNCDIR]: 16,
  [FuseOpcode.GETLK]: 48,
  [FuseOpcode.SETLK]: 48,
  [FuseOpcode.ACCESS]: 8,
  [FuseOpcode.CREATE]: 16,
  [FuseOpcode.INTERRUPT]: 8,
  [FuseOpcode.BMAP]: 16,
  [FuseOpcode.IOCTL]: 32,
  [FuseOpcode.POLL]: 24,
  [FuseOpcode.BATCH_FORGET]: 8,
  [FuseOpcode.FALLOCATE]: 32,
  [FuseOpcode.READDIRPLUS]: 40,
  [FuseOpcode.RENAME2]: 16,
  [FuseOpcode.LSEEK]: 24,
  [FuseOpcode.COPY_FILE_RANGE]: 56,
  [FuseOpcode.SETUPMAPPING]: 40,
  [FuseOpcode.REMOVEMAPPING]: 8,
  [FuseOpcode.SYNCFS]: 8,
  [FuseOpcode.TMPFILE]: 16,
};
/** Names after the fixed part. */
const NAMES_OF: Partial<Record<number, number>> = {
  [FuseOpcode.LOOKUP]: 1,
  [FuseOpcode.SYMLINK]: 2,
  [FuseOpcode.MKNOD]: 1,
  [FuseOpcode.MKDIR]: 1,
  [FuseOpcode.UNLINK]: 1,
  [FuseOpcode.RMDIR]: 1,
  [FuseOpcode.RENAME]: 2,
  [FuseOpcode.RENAME2]: 2,
  [FuseOpcode.LINK]: 1,
  [FuseOpcode.SETXATTR]: 1,
  [FuseOpcode.GETXATTR]: 1,
  [FuseOpcode.REMOVEXATTR]: 1,
  [FuseOpcode.CREATE]: 1,
  [FuseOpcode.TMPFILE]: 1,
};
const NAMES = ['a.txt', 'd', 'b.txt', 'up', 'abs', '..', '.', 'new', 'user.x', 'security.capability', '../outside.txt', 'x'.repeat(300), ''];
const encoder = new TextEncoder();
const NAME_BYTES = NAMES.map((n) => encoder.encode(n));
/** Whether the header's len was taken from the input (then `finish` leaves it). */
let forcedLen = false;

function header(_queue: number, r: ByteReader): Uint8Array {
  const kind = r.u8();
  const opcode = (kind & 0x80) !== 0 ? r.u32() : OPS[r.below(OPS.length)]!;
  const w = new ByteWriter();
  forcedLen = (kind & 0x20) !== 0;
  w.u32(forcedLen ? r.u32() : 0).u32(opcode === FuseOpcode.SETLKW ? FuseOpcode.SETLK : opcode);
  w.u64(r.u8()).u64((kind & 0x40) !== 0 ? r.u64() : r.below(8));
  w.u32(r.pick([0, 0, 1000])).u32(r.pick([0, 0, 1000])).u32(r.u8()).u16((kind & 0x10) !== 0 ? r.u16() : 0).u16(0);
  if (opcode === FuseOpcode.INIT) {
    // major 7, a minor of the 7.31 / 7.36 / 7.38 forms or any, max_readahead, flags; 64 bytes from 7.36.
    const minor = (kind & 0x08) !== 0 ? r.u32() : r.pick([31, 36, 38, 12]);
    w.u32((kind & 0x04) !== 0 ? r.u8() : 7).u32(minor).u32(r.u32()).u32(r.u32());
    if (minor >= 36) w.u32(r.u32()).bytes(new Uint8Array(44));
  } else {
    const fixed = FIXED[opcode] ?? 0;
    const part = r.bytes(fixed);
    w.bytes(part).bytes(new Uint8Array(fixed - part.length));
  }
  const names = NAMES_OF[opcode] ?? 0;
  for (let i = 0; i < names; i++) {
    const sel = r.u8();
    w.bytes((sel & 0x80) !== 0 ? r.bytes(sel & 0x0f) : NAME_BYTES[sel % NAME_BYTES.length]!).u8(0);
  }
  return w.finish();
}

function finish(_queue: number, msg: Uint8Array): void {
  if (forcedLen || msg.length < 4) return;
  new DataView(msg.buffer, msg.byteOffset, msg.byteLength).setUint32(0, msg.length, true);
}

let fixture: SharedDirFixture | null = null;
const spec: DeviceChainsSpec = {
  device: () => {
    fixture ??= new SharedDirFixture('vts-fuzz-fuse-');
    const f = fixture;
    return { device: new FsDevice({ sharedDir: f.dir, tag: 'fuzz', queueSize: 16, maxWrite: 8192 }), resetHost: () => f.restore() };
  },
  queues: 2,
  heldQueues: [],
  queueSize: 16,
  rounds: 6,
  header,
  finish,
  checkHost: () => fixture?.checkParent(),
  memoryInFingerprint: false,
  // Closed when replaced: FsDevice holds host descriptors (the shared directory's among them).
  freshDevice: { dispose: (d) => (d as FsDevice).close() },
};

/** Seeds: FUSE_INIT (7.31) then one request of an opcode, on the request queue (queue 1). */
function seeds(): Uint8Array[] {
  const req = (opcode: number, nodeid: number, fixed: number[], names: number[] = []): number[] => {
    const w = new ByteWriter().u8(0).u8(OPS.indexOf(opcode as never)).u8(1).u8(nodeid).u8(0).u8(0).u8(0);
    if (opcode === FuseOpcode.INIT) w.u8(0).u32(0x20000).u32(0xffffffff);
    else w.bytes([...fixed, ...new Array<number>(Math.max(0, (FIXED[opcode] ?? 0) - fixed.length)).fill(0)].slice(0, FIXED[opcode] ?? 0));
    for (const n of names) w.u8(n);
    return [...w.finish()];
  };
  // A chain: queue 1, the request, no raw rest, one descriptor, 4096... writable.
  const chain = (body: number[]): number[] => [1, ...body, 1, 0, 0, 7];
  const session = (...reqs: number[][]): Uint8Array => {
    const w = new ByteWriter().u8(1);
    // Rounds of one chain each (1 + below(4) = 1).
    for (const r of reqs) w.u8(0).bytes(chain(r));
    return w.finish();
  };
  const init = req(FuseOpcode.INIT, 0, []);
  const A = 0; // 'a.txt'
  const D = 1; // 'd'
  const UP = 3;
  return [
    session(init, req(FuseOpcode.LOOKUP, 1, [], [A]), req(FuseOpcode.GETATTR, 2, [])),
    session(init, req(FuseOpcode.LOOKUP, 1, [], [A]), req(FuseOpcode.OPEN, 2, [2]), req(FuseOpcode.READ, 2, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16])),
    session(init, req(FuseOpcode.OPENDIR, 1, []), req(FuseOpcode.READDIRPLUS, 1, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16])),
    session(init, req(FuseOpcode.MKDIR, 1, [0xed, 1], [7]), req(FuseOpcode.CREATE, 1, [0x42, 0, 0, 0, 0xa4, 1], [7]), req(FuseOpcode.UNLINK, 1, [], [A])),
    session(init, req(FuseOpcode.LOOKUP, 1, [], [UP]), req(FuseOpcode.READLINK, 2, []), req(FuseOpcode.LOOKUP, 1, [], [D])),
    session(init, req(FuseOpcode.STATFS, 1, []), req(FuseOpcode.RENAME, 1, [1], [A, 7]), req(FuseOpcode.FORGET, 2, [1])),
  ];
}

export const target: FuzzTarget = { name: 'fuse-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
