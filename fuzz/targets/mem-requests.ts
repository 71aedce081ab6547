/**
 * virtio-mem (5.15): requests on the guestq (struct virtio_mem_req: le16 type PLUG, UNPLUG,
 * UNPLUG_ALL, STATE mostly, any u16 sometimes; padding zero mostly; addr a block of the usable
 * region mostly, near the region's end, below it, unaligned, above 2^53 or any u64 sometimes;
 * nb_blocks 0, 1, a few, 0xffff mostly, any u16 sometimes; the 24 bytes whole mostly, cut short
 * sometimes; then raw bytes) with 0 to 2048 writable bytes for struct virtio_mem_resp. Between
 * chains the input acts as the host: a resize (requested_size among 0, the initial 16 blocks,
 * 100 blocks, half and all of the region), busy on and off, a system reset.
 *
 * The region: 65536 blocks of 4 KiB at 1 GiB (outside guest RAM: no host memory behind it, so
 * nothing is released with madvise), 16 blocks requested, the usable region 64 blocks past
 * the request. Block states survive a device reset (device/mem/13), so `resetHost` puts the
 * host side back as built (not busy, the initial requested size, then a system reset unplugs
 * every block and shrinks the usable region); the plugged blocks, sizes and usable region are
 * the host state of the reuse fingerprint. Checks (device-chains): no throw, every chain
 * completed, used.len within the writable bytes, guards.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { MemDevice } from '../../src/devices/mem/mem-device.js';
import { MemRequestType } from '../../src/spec/mem.js';

/** One queue: the largest size the harness allows, so an input's 12 chains all fit. */
const QUEUE_SIZE = 32;
const BLOCK = 4096;
const BLOCKS = 0x10000;
const ADDR = 2 ** 30;
const REQUESTED = 16 * BLOCK;
const REQUESTED_SIZES = [0, REQUESTED, 100 * BLOCK, (BLOCKS / 2) * BLOCK, BLOCKS * BLOCK];
const NB_BLOCKS = [0, 1, 1, 2, 4, 8, 16, 0xffff];
/** Blocks the fingerprint records the state of (past the usable region as built). */
const WATCHED_BLOCKS = 128;

/** A host action before the chain, one time in eight: resize, busy on / off, system reset. */
function hostStep(r: ByteReader, device: MemDevice): void {
  const act = r.u8();
  if (act < 0xe0) return;
  switch (act & 3) {
    case 0:
      device.setRequestedSize(r.pick(REQUESTED_SIZES));
      break;
    case 1:
      device.setBusy(true);
      break;
    case 2:
      device.setBusy(false);
      break;
    default:
      device.systemReset();
  }
}

/** addr: a block of the usable region mostly; odd: near the region's end, below it, unaligned, past 2^53, any. */
function address(w: ByteWriter, r: ByteReader, odd: boolean): void {
  if (!odd) {
    w.u64(ADDR + r.below(24) * BLOCK);
    return;
  }
  switch (r.below(5)) {
    case 0:
      w.u64(ADDR + (BLOCKS - r.below(4)) * BLOCK);
      break;
    case 1:
      w.u64(ADDR - BLOCK * r.below(3));
      break;
    case 2:
      w.u64(ADDR + r.below(24) * BLOCK + 1 + r.below(BLOCK - 1));
      break;
    case 3:
      w.u32(r.u32()).u32(0x20_0000 + r.below(0xffe0_0000));
      break;
    default: {
      const raw = r.bytes(8);
      w.bytes(raw).bytes(new Uint8Array(8 - raw.length));
    }
  }
}

/** Odd fields (a second byte, one time in four): 1 any type, 2 padding raw, 4 addr, 8 any nb_blocks, 16 the request cut short. */
function header(_queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  hostStep(r, core.device as MemDevice);
  const odd = r.u8() >= 0xc0 ? r.u8() : 0;
  const w = new ByteWriter().u16((odd & 1) !== 0 ? r.u16() : r.below(4));
  const padding = (): void => {
    const raw = (odd & 2) !== 0 ? r.bytes(6) : new Uint8Array(0);
    w.bytes(raw).bytes(new Uint8Array(6 - raw.length));
  };
  padding();
  address(w, r, (odd & 4) !== 0);
  w.u16((odd & 8) !== 0 ? r.u16() : r.pick(NB_BLOCKS));
  padding();
  const msg = w.finish();
  return (odd & 16) !== 0 ? msg.subarray(0, r.below(msg.length)) : msg;
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = new MemDevice({ regionSize: BLOCKS * BLOCK, blockSize: BLOCK, addr: ADDR, requestedSize: REQUESTED, usableExtent: 64 * BLOCK, nodeId: 3, queueSize: QUEUE_SIZE });
    const resetHost = (): void => {
      device.setBusy(false);
      device.setRequestedSize(REQUESTED);
      device.systemReset();
    };
    const hostState = (): Uint8Array[] => {
      const plugged = new Uint8Array(WATCHED_BLOCKS);
      for (let b = 0; b < WATCHED_BLOCKS; b++) plugged[b] = device.isPlugged(b) ? 1 : 0;
      return [new Uint8Array(Float64Array.of(device.pluggedSize, device.usableRegionSize, device.requestedSize).buffer), plugged];
    };
    return { device, resetHost, hostState };
  },
  queues: 1,
  heldQueues: [],
  header,
  queueSize: QUEUE_SIZE,
};

/** A request with no host action and no odd field: type, addr block, nb_blocks index. */
function request(type: number, block: number, nb: number, writable = 16): SeedChain {
  return { queue: 0, header: [0, 0, type, block, NB_BLOCKS.indexOf(nb)], writable };
}

/** Seeds: a driver's start (UNPLUG ALL, STATE, PLUG up to the request); a resize then more plugs, an UNPLUG; STATE of a mixed range. */
function seeds(): Uint8Array[] {
  const grow: SeedChain = { queue: 0, header: [0xe0, REQUESTED_SIZES.indexOf(100 * BLOCK), 0, MemRequestType.PLUG, 16, NB_BLOCKS.indexOf(16)], writable: 16 };
  return [
    deviceChainsSeed(true, [[request(MemRequestType.UNPLUG_ALL, 0, 1), request(MemRequestType.STATE, 0, 16), request(MemRequestType.PLUG, 0, 8), request(MemRequestType.PLUG, 8, 8)]], spec),
    deviceChainsSeed(false, [[request(MemRequestType.PLUG, 0, 16)], [grow, request(MemRequestType.UNPLUG, 4, 4), request(MemRequestType.STATE, 0, 8, 64)]], spec),
    deviceChainsSeed(true, [[request(MemRequestType.PLUG, 2, 2), request(MemRequestType.STATE, 0, 4)], [request(MemRequestType.PLUG, 23, 0xffff), request(MemRequestType.UNPLUG_ALL, 0, 1, 1)]], spec),
  ];
}

export const target: FuzzTarget = { name: 'mem-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
