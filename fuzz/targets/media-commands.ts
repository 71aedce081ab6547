/**
 * virtio-media (5.22): commands on the commandq: OPEN, CLOSE, IOCTL, MMAP, MUNMAP mostly, any u32
 * sometimes; session ids 0..3 mostly (the ones OPEN hands out are 1, 2, ...), any sometimes;
 * IOCTL of every code media-ioctls.ts parses (ENUM_FMT, G/S/TRY_FMT, REQBUFS, QUERYBUF, QBUF,
 * STREAMON/OFF, G_EXT_CTRLS, SUBSCRIBE/UNSUBSCRIBE_EVENT) mostly, one it refuses (QUERYCAP,
 * DQBUF, EXPBUF) or any sometimes, with the V4L2 structure of the code (its fields among the
 * values that mean something mostly: buffer types, memory types, formats, sizes, indices, event
 * types, control ids; any sometimes), cut short sometimes, then for QBUF of SHARED_PAGES buffers
 * its SG entries and for G_EXT_CTRLS its controls; MMAP of buffer offsets; MUNMAP of mapped
 * addresses. Buffers on the eventq (DQBUF, EVENT, ERROR events), which the device holds until
 * it has an event: the eventq is a held queue.
 *
 * SG entries point into a scratch page of guest memory no ring or chain uses (the last 4 KiB):
 * the pass-through codec writes frames there, and a write over the rings would read back as a
 * protocol error of the harness, not of the device. Wrong entries point outside guest memory
 * or across its edges (EFAULT).
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { GUEST_BASE, GUEST_SIZE } from '../harness/core-rig.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { IOCTLS } from '../../src/devices/media/media-ioctls.js';
import { MediaDevice } from '../../src/devices/media/media-device.js';
import {
  MediaCmd,
  MediaQueue,
  V4l2Buffer,
  V4l2BufType,
  V4l2Cid,
  V4l2EventType,
  V4l2ExtControls,
  V4l2FmtDesc,
  V4l2Format,
  V4l2Memory,
  V4l2PixFmt,
  V4l2RequestBuffers,
  Vidioc,
} from '../../src/spec/media.js';

const SCRATCH = GUEST_BASE + GUEST_SIZE - 0x1000;
const CMDS = [MediaCmd.OPEN, MediaCmd.CLOSE, MediaCmd.IOCTL, MediaCmd.IOCTL, MediaCmd.IOCTL, MediaCmd.MMAP, MediaCmd.MUNMAP];
const CODES = [...IOCTLS.keys()];
const REFUSED = [Vidioc.QUERYCAP, Vidioc.DQBUF, Vidioc.EXPBUF, Vidioc.LOG_STATUS];
const TYPES = [V4l2BufType.VIDEO_OUTPUT, V4l2BufType.VIDEO_CAPTURE];
const MEMORY = [V4l2Memory.MMAP, V4l2Memory.USERPTR, V4l2Memory.DMABUF];
/** Shared-memory offsets of MMAP buffers at the default 320x240 NV12 (115200 bytes: 29 pages). */
const OFFSETS = [0, 29 * 4096, 58 * 4096, 4096];
const BAD_SG = [0, GUEST_BASE - 16, GUEST_BASE + GUEST_SIZE - 8, 2 ** 40];

/**
 * Field values: one of `list`, or with `any` also any u32 (the index past the list's end).
 */
function field(r: ByteReader, list: readonly number[], any: boolean): number {
  if (!any) return r.pick(list);
  const i = r.below(list.length + 1);
  return i === list.length ? r.u32() : list[i]!;
}

/** The payload of ioctl `code`, its fields shaped; null for a code without one. */
function payload(code: number, r: ByteReader, any: boolean): Uint8Array | null {
  const size = IOCTLS.get(code)?.size;
  if (size === undefined) return null;
  const p = new Uint8Array(size);
  const v = new DataView(p.buffer);
  const set = (at: number, list: readonly number[]): void => v.setUint32(at, field(r, list, any) >>> 0, true);
  switch (code) {
    case Vidioc.ENUM_FMT:
      set(V4l2FmtDesc.INDEX, [0, 1, 2]);
      set(V4l2FmtDesc.TYPE, TYPES);
      break;
    case Vidioc.G_FMT:
    case Vidioc.S_FMT:
    case Vidioc.TRY_FMT:
      set(V4l2Format.TYPE, TYPES);
      set(V4l2Format.WIDTH, [320, 640, 16, 1920, 0, 4000]);
      set(V4l2Format.HEIGHT, [240, 480, 16, 1088, 0]);
      set(V4l2Format.PIXELFORMAT, [V4l2PixFmt.NV12, V4l2PixFmt.GREY, 0]);
      break;
    case Vidioc.REQBUFS:
      set(V4l2RequestBuffers.COUNT, [1, 2, 0, 16, 17]);
      set(V4l2RequestBuffers.TYPE, TYPES);
      set(V4l2RequestBuffers.MEMORY, MEMORY);
      break;
    case Vidioc.QUERYBUF:
    case Vidioc.QBUF:
      set(V4l2Buffer.INDEX, [0, 1, 16]);
      set(V4l2Buffer.TYPE, TYPES);
      set(V4l2Buffer.BYTESUSED, [100, 0, 115200, 200000]);
      set(V4l2Buffer.TIMESTAMP_SEC, [0, 7]);
      set(V4l2Buffer.MEMORY, MEMORY);
      set(V4l2Buffer.M, [SCRATCH, 0]);
      set(V4l2Buffer.LENGTH, [256, 0, 4096, 115200]);
      break;
    case Vidioc.G_EXT_CTRLS:
      set(V4l2ExtControls.COUNT, [2, 1, 0, 65]);
      break;
    case Vidioc.SUBSCRIBE_EVENT:
    case Vidioc.UNSUBSCRIBE_EVENT:
      set(0, [V4l2EventType.SOURCE_CHANGE, V4l2EventType.EOS, V4l2EventType.ALL]);
      break;
    default:
      set(0, TYPES); // STREAMON / STREAMOFF: the buffer type
  }
  return p;
}

/** What follows the payload: SG entries of a QBUF, the controls of G_EXT_CTRLS. */
function extra(code: number, r: ByteReader, any: boolean, w: ByteWriter): void {
  if (code === Vidioc.QBUF) {
    for (let n = r.below(3); n > 0; n--) {
      // Within the scratch page mostly; outside guest memory or across its edges sometimes.
      w.u64(r.below(8) === 0 ? r.pick(BAD_SG) : SCRATCH + r.below(0x800));
      w.u32(field(r, [256, 16, 0x800, 0, 0x10000], any)).u32(0);
    }
  } else if (code === Vidioc.G_EXT_CTRLS) {
    for (let n = r.below(4); n > 0; n--) {
      w.u32(field(r, [V4l2Cid.MIN_BUFFERS_FOR_CAPTURE, V4l2Cid.MIN_BUFFERS_FOR_OUTPUT], any)).u32(0).u32(0).u32(0).u32(0);
    }
  }
}

/**
 * Selector bits: 0 any command, 1 any session id, 2 a payload cut short, 3 a refused or any
 * ioctl code, 4 any field values.
 */
function header(queue: number, r: ByteReader): Uint8Array {
  if (queue === MediaQueue.EVENTQ) return new Uint8Array(0);
  const sel = r.u8();
  const any = (sel & 0x10) !== 0;
  const cmd = (sel & 1) !== 0 ? r.u32() : r.pick(CMDS);
  const w = new ByteWriter().u32(cmd).u32(0);
  const session = (): number => ((sel & 2) !== 0 ? r.u32() : r.below(4));
  switch (cmd) {
    case MediaCmd.CLOSE:
      w.u32(session()).u32(0);
      break;
    case MediaCmd.MMAP:
      w.u32(session()).u32(r.below(2)).u32(field(r, OFFSETS, any));
      break;
    case MediaCmd.MUNMAP:
      w.u64(field(r, OFFSETS, any));
      break;
    case MediaCmd.IOCTL: {
      w.u32(session());
      const code = (sel & 8) !== 0 ? field(r, REFUSED, true) : r.pick(CODES);
      w.u32(code);
      const p = payload(code, r, any);
      if (p) w.bytes((sel & 4) !== 0 ? p.subarray(0, r.below(p.length)) : p);
      extra(code, r, any, w);
      break;
    }
    default:
  }
  return w.finish();
}

const spec: DeviceChainsSpec = {
  device: () => ({ device: new MediaDevice({ queueSize: 32, shmSize: 1 << 20, maxSessions: 3 }) }),
  queues: 2,
  heldQueues: [MediaQueue.EVENTQ],
  header,
  queueSize: 32,
  rounds: 6,
};

/** Shaper input of an IOCTL: selector 0, command index, session, code index, then the payload's field indices. */
function ioctl(session: number, code: number, fields: readonly number[] = [], more: readonly number[] = []): number[] {
  return [0, CMDS.indexOf(MediaCmd.IOCTL), session, CODES.indexOf(code as never), ...fields, ...more];
}
const OPEN = [0, CMDS.indexOf(MediaCmd.OPEN)];
const EVQ = { queue: 1, writable: 2048, emptyMessage: true } as const;

/**
 * Seeds: formats enumerated and set with a SOURCE_CHANGE subscription, then CLOSE; MMAP buffers on
 * both queues, streaming, a frame passed through (two DQBUF events); a SHARED_PAGES output buffer
 * with one SG entry, the buffer-count controls, a buffer mapped and unmapped.
 */
function seeds(): Uint8Array[] {
  const out = TYPES.indexOf(V4l2BufType.VIDEO_OUTPUT);
  const cap = TYPES.indexOf(V4l2BufType.VIDEO_CAPTURE);
  const mmap = MEMORY.indexOf(V4l2Memory.MMAP);
  const userptr = MEMORY.indexOf(V4l2Memory.USERPTR);
  // QBUF / QUERYBUF fields: index, type, bytesused, timestamp, memory, m, length (a QBUF then reads its SG entry count).
  const buf = (type: number, memory: number): number[] => [0, type, 0, 1, memory, 0, 0];
  return [
    deviceChainsSeed(false, [
      [{ queue: 0, header: OPEN, writable: 16 }, { queue: 0, header: ioctl(1, Vidioc.ENUM_FMT, [1, out]), writable: 512 }, EVQ],
      [{ queue: 0, header: ioctl(1, Vidioc.SUBSCRIBE_EVENT, [0]), writable: 8 },
        { queue: 0, header: ioctl(1, Vidioc.S_FMT, [out, 1, 1, 1]), writable: 512 },
        { queue: 0, header: ioctl(1, Vidioc.G_FMT, [cap, 0, 0, 0]), writable: 512 }],
      [{ queue: 0, header: [0, CMDS.indexOf(MediaCmd.CLOSE), 1], writable: 8 }],
    ], spec),
    deviceChainsSeed(true, [
      [EVQ, EVQ, { queue: 0, header: OPEN, writable: 16 }, { queue: 0, header: ioctl(1, Vidioc.REQBUFS, [0, out, mmap]), writable: 64 }],
      [{ queue: 0, header: ioctl(1, Vidioc.REQBUFS, [0, cap, mmap]), writable: 64 }, { queue: 0, header: ioctl(1, Vidioc.STREAMON, [out]), writable: 8 }, { queue: 0, header: ioctl(1, Vidioc.STREAMON, [cap]), writable: 8 }],
      [{ queue: 0, header: ioctl(1, Vidioc.QBUF, buf(out, mmap), [0]), writable: 512 }, { queue: 0, header: ioctl(1, Vidioc.QBUF, buf(cap, mmap), [0]), writable: 512 }],
    ], spec),
    deviceChainsSeed(true, [
      [{ queue: 0, header: OPEN, writable: 16 }, { queue: 0, header: ioctl(1, Vidioc.REQBUFS, [0, out, userptr]), writable: 64 }],
      // One SG entry at the scratch page's start (below(8) = 1, offset u16 0), 256 bytes.
      [{ queue: 0, header: ioctl(1, Vidioc.QBUF, [0, out, 0, 0, userptr, 0, 0], [1, 1, 0, 0, 0]), writable: 512 }],
      [{ queue: 0, header: ioctl(1, Vidioc.G_EXT_CTRLS, [0], [2, 0, 1]), writable: 512 }, { queue: 0, header: ioctl(1, Vidioc.REQBUFS, [0, cap, mmap]), writable: 64 }],
      [{ queue: 0, header: [0, CMDS.indexOf(MediaCmd.MMAP), 1, 1, 0], writable: 64 }, { queue: 0, header: [0, CMDS.indexOf(MediaCmd.MUNMAP), 0], writable: 8 }],
    ], spec),
  ];
}

export const target: FuzzTarget = { name: 'media-commands', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
