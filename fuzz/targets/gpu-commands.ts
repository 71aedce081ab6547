/**
 * virtio-gpu (5.7): commands on the controlq and the cursorq. Each chain carries struct
 * virtio_gpu_ctrl_hdr (a type among every enum virtio_gpu_ctrl_type value mostly, any u32
 * sometimes; flags with FENCE / INFO_RING_IDX; fence_id, ctx_id, ring_idx) and the type's body
 * (5.7.6.8): 2D commands with resource ids among the first few (0 invalid) or any, formats of
 * 5.7.6.8 or any, widths and heights small (a 64x64 cursor, 16x16) or large (past the host
 * bounds) or any, rectangles inside or outside, transfer offsets, scanout ids among the two
 * displays or past them; RESOURCE_ATTACH_BACKING with 1 to 4 virtio_gpu_mem_entry whose
 * addresses lie inside guest memory, across its end, outside it or anywhere, and nr_entries
 * right or large (16384, past maxBackingEntries); GET_EDID, GET_CAPSET_INFO / GET_CAPSET (no
 * capsets), the blob, UUID, context and 3D commands (their features are not offered: ERR_UNSPEC)
 * with their leading fields; cursor commands (UPDATE_CURSOR / MOVE_CURSOR: scanout, position,
 * resource, hotspot) on the cursorq. A request is cut short of its structure sometimes. Then
 * raw bytes. The device's host bounds are small here
 * (64 KiB a resource, 160 KiB in all, 8 resources, 64 backing entries) so allocations stay
 * cheap and ERR_OUT_OF_MEMORY is reached.
 *
 * Checks (device-chains): no throw, every chain completed, used.len within the writable bytes,
 * guards; the reuse fingerprint also holds what the host shows (both scanouts' pictures and the
 * cursor image and position).
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { DATA, GUEST_BASE, GUEST_SIZE } from '../harness/core-rig.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { GpuDevice } from '../../src/devices/gpu/gpu-device.js';
import { GpuCmd, GpuFormat } from '../../src/spec/gpu.js';

const CONTROLQ = 0;
const CURSORQ = 1;
const QUEUE_SIZE = 16;

/** Every enum virtio_gpu_ctrl_type value (the cursor ones too: on the controlq they are unknown). */
const CTRL_TYPES = Object.values(GpuCmd);
const CURSOR_TYPES = [GpuCmd.UPDATE_CURSOR, GpuCmd.MOVE_CURSOR, GpuCmd.GET_DISPLAY_INFO];
const FORMATS = [...Object.values(GpuFormat), 0, 5];
/** Widths, heights, rectangle sizes: the resources the seeds make, a cursor, 0, past the bounds. */
const DIMS = [16, 64, 1, 0, 8, 48, 128, 4096];
const COORDS = [0, 1, 8, 63, 64];
const RESOURCE_IDS = [0, 1, 2, 3];
const SCANOUTS = [0, 1, 2, 16];
const OFFSETS = [0, 64, 1024, 0x4000];
/** Backing entry addresses: inside guest memory (the seeds' backings), at its start, across its end, below it, far above. */
const ADDRS = [DATA + 0x6000, DATA + 0x8000, GUEST_BASE, GUEST_BASE + GUEST_SIZE - 0x100, 0, 0x1_0000_0000];
const LENGTHS = [0x400, 0x1000, 0x4000, 0x100, 1, 0];
/** nr_entries: right for 1..4 entries written, 0, more than written, past maxBackingEntries. */
const NR_ENTRIES = [1, 2, 3, 4, 0, 64, 16384];

/** A value among `choices` (by a byte's index) mostly, any u32 when the byte is 0xf0 or more. */
function choose(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u32();
}

function chooseU64(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u64();
}

/** struct virtio_gpu_ctrl_hdr (24 bytes); returns the type. */
function ctrlHdr(r: ByteReader, w: ByteWriter, types: readonly number[]): number {
  const type = choose(r, types);
  w.u32(type).u32(r.below(4)).u64(r.u8()).u32(r.below(4)).u8(r.below(4)).u8(0).u8(0).u8(0);
  return type;
}

/** struct virtio_gpu_rect. */
function rect(r: ByteReader, w: ByteWriter): void {
  w.u32(choose(r, COORDS)).u32(choose(r, COORDS)).u32(choose(r, DIMS)).u32(choose(r, DIMS));
}

function controlBody(type: number, r: ByteReader, w: ByteWriter): void {
  switch (type) {
    case GpuCmd.GET_DISPLAY_INFO:
      return;
    case GpuCmd.RESOURCE_CREATE_2D:
      w.u32(choose(r, RESOURCE_IDS)).u32(choose(r, FORMATS)).u32(choose(r, DIMS)).u32(choose(r, DIMS));
      return;
    case GpuCmd.RESOURCE_UNREF:
    case GpuCmd.RESOURCE_DETACH_BACKING:
    case GpuCmd.RESOURCE_ASSIGN_UUID:
      w.u32(choose(r, RESOURCE_IDS)).u32(0);
      return;
    case GpuCmd.SET_SCANOUT:
      rect(r, w);
      w.u32(choose(r, SCANOUTS)).u32(choose(r, RESOURCE_IDS));
      return;
    case GpuCmd.RESOURCE_FLUSH:
      rect(r, w);
      w.u32(choose(r, RESOURCE_IDS)).u32(0);
      return;
    case GpuCmd.TRANSFER_TO_HOST_2D:
      rect(r, w);
      w.u64(chooseU64(r, OFFSETS)).u32(choose(r, RESOURCE_IDS)).u32(0);
      return;
    case GpuCmd.RESOURCE_ATTACH_BACKING: {
      w.u32(choose(r, RESOURCE_IDS));
      const nr = choose(r, NR_ENTRIES);
      w.u32(nr);
      // At most 4 entries written here (the raw rest may hold more): nr_entries larger than that is a lie.
      const entries = Math.min(nr, 1 + r.below(4));
      for (let i = 0; i < entries; i++) w.u64(chooseU64(r, ADDRS)).u32(choose(r, LENGTHS)).u32(0);
      return;
    }
    case GpuCmd.GET_CAPSET_INFO:
      w.u32(choose(r, [0, 1])).u32(0);
      return;
    case GpuCmd.GET_CAPSET:
      w.u32(choose(r, [0, 1, 2])).u32(choose(r, [0, 1]));
      return;
    case GpuCmd.GET_EDID:
      w.u32(choose(r, SCANOUTS)).u32(0);
      return;
    case GpuCmd.SET_SCANOUT_BLOB:
      rect(r, w);
      w.u32(choose(r, SCANOUTS)).u32(choose(r, RESOURCE_IDS)).u32(choose(r, DIMS)).u32(choose(r, DIMS)).u32(choose(r, FORMATS));
      return;
    default:
      // RESOURCE_CREATE_BLOB (resource_id, blob_mem, blob_flags, nr_entries, ...), the context
      // and 3D commands (ctx ids, resource ids, sizes): a resource id then small words.
      w.u32(choose(r, RESOURCE_IDS));
      for (let i = r.below(8); i > 0; i--) w.u32(choose(r, [0, 1, 2, 3, 4, 0x1000]));
  }
}

/** The request whole mostly; cut to 0..56 bytes (shorter than its structure) when the byte is 0xf8 or more. */
function maybeShort(r: ByteReader, msg: Uint8Array): Uint8Array {
  const v = r.u8();
  return v < 0xf8 ? msg : msg.subarray(0, Math.min(msg.length, (v & 7) * 8));
}

function header(queue: number, r: ByteReader): Uint8Array {
  const w = new ByteWriter();
  if (queue === CONTROLQ) {
    controlBody(ctrlHdr(r, w, CTRL_TYPES), r, w);
    return maybeShort(r, w.finish());
  }
  // struct virtio_gpu_update_cursor: hdr, pos (scanout_id, x, y, padding), resource_id, hot_x, hot_y, padding.
  ctrlHdr(r, w, CURSOR_TYPES);
  w.u32(choose(r, SCANOUTS)).u32(choose(r, COORDS)).u32(choose(r, COORDS)).u32(0);
  w.u32(choose(r, RESOURCE_IDS)).u32(choose(r, COORDS)).u32(choose(r, COORDS)).u32(0);
  return maybeShort(r, w.finish());
}

const cursorState = new Uint32Array(7);
const shownState = new Uint32Array(6);

const spec: DeviceChainsSpec = {
  device: () => {
    const d = new GpuDevice({
      displays: [{ width: 64, height: 48 }, { width: 32, height: 16, enabled: false }],
      queueSize: QUEUE_SIZE,
      maxResourceBytes: 64 * 1024,
      maxTotalBytes: 160 * 1024,
      maxResources: 8,
      maxBackingEntries: 64,
    });
    const hostState = (): Uint8Array[] => {
      const c = d.cursor;
      cursorState.set([c.visible ? 1 : 0, c.scanoutId, c.x, c.y, c.hotX, c.hotY, c.resourceId]);
      d.scanouts.forEach((s, i) => shownState.set([s.resourceId, s.width, s.height], i * 3));
      return [...d.scanouts.map((s) => s.rgba), new Uint8Array(shownState.buffer), c.rgba, new Uint8Array(cursorState.buffer)];
    };
    return { device: d, hostState };
  },
  queues: 2,
  heldQueues: [],
  queueSize: QUEUE_SIZE,
  header,
};

// ---- seeds: a driver's normal sessions (choice bytes are indexes into the lists above) ----

const cmd = (type: number, fields: readonly number[], writable: SeedChain['writable'] = 64, queue = CONTROLQ, flags = 0): SeedChain => ({
  queue,
  header: (w) => {
    // type (index), flags, fence_id, ctx_id, ring_idx
    const types: readonly number[] = queue === CONTROLQ ? CTRL_TYPES : CURSOR_TYPES;
    w.u8(types.indexOf(type)).u8(flags).u8(flags === 0 ? 0 : 7).u8(0).u8(0);
    for (const f of fields) w.u8(f);
    w.u8(0); // whole, not cut short
  },
  writable,
});
const idx = (list: readonly number[], v: number): number => list.indexOf(v);
const rectOf = (x: number, y: number, wd: number, ht: number): number[] => [idx(COORDS, x), idx(COORDS, y), idx(DIMS, wd), idx(DIMS, ht)];
const create2d = (id: number, format: number, wd: number, ht: number): SeedChain => cmd(GpuCmd.RESOURCE_CREATE_2D, [id, idx(FORMATS, format), idx(DIMS, wd), idx(DIMS, ht)]);
/** One backing entry (nr_entries 1: the count byte of entries below(4) is 0). */
const attach = (id: number, addr: number, len: number): SeedChain => cmd(GpuCmd.RESOURCE_ATTACH_BACKING, [id, idx(NR_ENTRIES, 1), 0, idx(ADDRS, addr), idx(LENGTHS, len)]);
const transfer = (id: number, wd: number, ht: number): SeedChain => cmd(GpuCmd.TRANSFER_TO_HOST_2D, [...rectOf(0, 0, wd, ht), idx(OFFSETS, 0), id]);

function seeds(): Uint8Array[] {
  const displayInfo = cmd(GpuCmd.GET_DISPLAY_INFO, [], 512);
  const edid = cmd(GpuCmd.GET_EDID, [idx(SCANOUTS, 0)], 2048);
  const fb = 1;
  const cursor = 2;
  return [
    // Mode query: GET_DISPLAY_INFO, GET_EDID of scanout 0, GET_CAPSET_INFO 0 (no capsets).
    deviceChainsSeed(true, [[displayInfo, edid, cmd(GpuCmd.GET_CAPSET_INFO, [0], 64)]], spec),
    // A framebuffer: create 16x16, attach 1 KiB of backing, transfer, show on scanout 0, flush, then tear down.
    deviceChainsSeed(true, [
      [create2d(fb, GpuFormat.B8G8R8X8_UNORM, 16, 16), attach(fb, ADDRS[0]!, 0x400), transfer(fb, 16, 16), cmd(GpuCmd.SET_SCANOUT, [...rectOf(0, 0, 16, 16), idx(SCANOUTS, 0), fb])],
      [cmd(GpuCmd.RESOURCE_FLUSH, [...rectOf(0, 0, 16, 16), fb]), cmd(GpuCmd.RESOURCE_DETACH_BACKING, [fb]), cmd(GpuCmd.RESOURCE_UNREF, [fb])],
    ], spec),
    // The pointer: a 64x64 resource with 16 KiB of backing, transferred, UPDATE_CURSOR then MOVE_CURSOR on the cursorq.
    deviceChainsSeed(false, [
      [create2d(cursor, GpuFormat.R8G8B8A8_UNORM, 64, 64), attach(cursor, ADDRS[1]!, 0x4000), transfer(cursor, 64, 64)],
      [cmd(GpuCmd.UPDATE_CURSOR, [idx(SCANOUTS, 0), idx(COORDS, 8), idx(COORDS, 8), cursor, idx(COORDS, 1), idx(COORDS, 1)], 64, CURSORQ), cmd(GpuCmd.MOVE_CURSOR, [idx(SCANOUTS, 0), idx(COORDS, 63), idx(COORDS, 1), 0, 0, 0], 0, CURSORQ)],
    ], spec),
    // Commands of features not offered (a context, a blob, a UUID), fenced: ERR_UNSPEC with the fence copied.
    deviceChainsSeed(true, [[cmd(GpuCmd.CTX_CREATE, [1, 0], 64, CONTROLQ, 1), cmd(GpuCmd.RESOURCE_CREATE_BLOB, [1, 3, 1, 1, 0], 64, CONTROLQ, 1), cmd(GpuCmd.RESOURCE_ASSIGN_UUID, [1], 64, CONTROLQ, 1)]], spec),
  ];
}

export const target: FuzzTarget = { name: 'gpu-commands', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
