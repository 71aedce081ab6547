/**
 * Device parser targets: a device on the real DeviceCore with all its queues set up (split,
 * size 8), and descriptor chains whose readable part is a message built from the input (the
 * device's header shaped by the target, then raw bytes) and whose writable part has lengths the
 * input picks, placed on any of its queues. Checks: guards intact, used.len within the writable
 * bytes of its chain, and every chain popped from a request-style queue completed (or the device
 * in NEEDS_RESET); queues where the device holds buffers for later (receive, event) are listed
 * in `heldQueues` and not counted.
 */
import { ByteReader } from '../engine/byte-reader.js';
import { check } from '../engine/target.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import type { VirtioDevice } from '../../src/device/types.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { AVAIL, CoreRig, DATA, DESC, GUEST_BASE, GUEST_SIZE, USED, queueAreaOffset } from './core-rig.js';
import { GuardedMemory } from './guarded-memory.js';
import { Reusable, harnessMode } from './reuse.js';

export const QSIZE = 8;
const SLOT = 0x1000;
/** The writable lengths a chain picks from (index read from the input). */
export const WRITABLE = [0, 1, 4, 8, 16, 64, 512, 1500, 2048];

export interface DeviceChainsSpec {
  /** Builds the device and, when it has a host side with state, how to put that back as built. */
  readonly device: () => { readonly device: VirtioDevice; readonly resetHost?: () => void; readonly hostState?: () => readonly Uint8Array[] };
  readonly queues: number;
  readonly heldQueues: readonly number[];
  /**
   * Writes the device's header for a chain on `queue` (the rest of the message is raw input).
   * `core` is the device's core (its `device` the one in use for this input), for a target that
   * interleaves host actions (a resize, a clock step) or config writes with the chains.
   */
  readonly header: (queue: number, r: ByteReader, core: DeviceCore) => Uint8Array;
  /** Completes the whole message in place (a length field that counts the raw rest). */
  readonly finish?: (queue: number, msg: Uint8Array) => void;
  /** An invariant of the host side, checked after the input (the shared directory's parent untouched). */
  readonly checkHost?: () => void;
  /**
   * Whether guest memory is part of the reuse fingerprint (default true). Not for the file
   * system devices: their replies carry inode numbers and times of a tree rebuilt per input,
   * so their fingerprint is the used elements (queue, id, used.len) and the status.
   */
  readonly memoryInFingerprint?: boolean;
  /** Queue size (default QSIZE; at most 32 so a queue's rings fit its 1 KiB area, 16 with more than 8 queues: see queueAreaOffset). */
  readonly queueSize?: number;
  /**
   * A new device for every input (guest memory still reused), the previous one handed to
   * `dispose`: for a device whose reset does not bring it back to its state as built in a way
   * inputs can see (FsDevice keeps counting FUSE node ids across a reset, so a nodeid an input
   * hard-codes would name another inode on a reused device).
   */
  readonly freshDevice?: { readonly dispose: (device: VirtioDevice) => void };
  /** Rounds of chains per input (default 4): a round makes chains available, notifies, checks. */
  readonly rounds?: number;
  /**
   * Device-type features always accepted, also when the input takes only EVENT_IDX: those the
   * device refuses FEATURES_OK without (i2c's ZERO_LENGTH_REQUEST, can's CAN_CLASSIC or CAN_FD).
   */
  readonly requiredFeatures?: bigint;
}

const rigs = new WeakMap<DeviceChainsSpec, Reusable<CoreRig>>();
const lastFresh = new WeakMap<DeviceChainsSpec, CoreRig>();

const freshRigs = new WeakMap<DeviceChainsSpec, { guarded: GuardedMemory; last: CoreRig | null }>();

function rigFor(spec: DeviceChainsSpec): CoreRig {
  if (spec.freshDevice && harnessMode.reuse) {
    let f = freshRigs.get(spec);
    if (!f) freshRigs.set(spec, (f = { guarded: new GuardedMemory(GUEST_BASE, GUEST_SIZE), last: null }));
    if (f.last) {
      f.last.core.setStatus(0);
      spec.freshDevice.dispose(f.last.core.device);
    }
    const { device, resetHost, hostState } = spec.device();
    f.last = new CoreRig({ device, queueSize: spec.queueSize ?? QSIZE, queues: spec.queues, heldQueues: spec.heldQueues, resetHost, hostState, memoryInFingerprint: spec.memoryInFingerprint, guarded: f.guarded });
    lastFresh.set(spec, f.last);
    return f.last;
  }
  let reusable = rigs.get(spec);
  if (!reusable) {
    reusable = new Reusable(() => {
      const { device, resetHost, hostState } = spec.device();
      return new CoreRig({ device, queueSize: spec.queueSize ?? QSIZE, queues: spec.queues, heldQueues: spec.heldQueues, resetHost, hostState, memoryInFingerprint: spec.memoryInFingerprint });
    });
    rigs.set(spec, reusable);
  }
  return reusable.get();
}

export async function runDeviceChains(spec: DeviceChainsSpec, data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const allFeatures = r.bool();
  const rig = rigFor(spec);
  rig.start(false, allFeatures ? ((1n << 64n) - 1n) & ~F.RING_PACKED : F.EVENT_IDX | (spec.requiredFeatures ?? 0n));
  const m = rig.memory;
  const availIdx = new Array<number>(spec.queues).fill(0);
  const nextDesc = new Array<number>(spec.queues).fill(0);
  const writable = new Map<string, number>();
  const usedSeen = new Array<number>(spec.queues).fill(0);
  let slot = 0;
  const qsize = spec.queueSize ?? QSIZE;
  const rounds = spec.rounds ?? 4;
  for (let round = 0; round < rounds && !r.done && !rig.needsReset; round++) {
    const chains = 1 + r.below(4);
    for (let c = 0; c < chains && slot < 12; c++) {
      const q = r.below(spec.queues);
      const off = queueAreaOffset(q, spec.queues);
      if (nextDesc[q]! > qsize - 3) continue;
      const base = DATA + slot++ * SLOT;
      const hdr = spec.header(q, r, rig.core);
      const rest = r.bytes(r.below(4) === 0 ? r.below(200) : r.below(24));
      const msg = new Uint8Array(hdr.length + rest.length);
      msg.set(hdr);
      msg.set(rest, hdr.length);
      spec.finish?.(q, msg);
      const descs: [number, number, boolean][] = [];
      if (msg.length > 0) {
        const cut = r.bool() && msg.length > 1 ? 1 + r.below(msg.length - 1) : msg.length;
        m.write(base, msg);
        descs.push([base, cut, false]);
        if (cut < msg.length) descs.push([base + cut, msg.length - cut, false]);
      }
      const w = r.pick(WRITABLE);
      if (w > 0 || descs.length === 0) descs.push([base + 0x800, Math.max(w, 1), true]);
      const head = nextDesc[q]!;
      descs.forEach(([addr, len, wr], i) => {
        const at = DESC + off + 16 * nextDesc[q]!;
        m.writeAddr(at, addr);
        m.writeU32(at + 8, len);
        m.writeU16(at + 12, (i < descs.length - 1 ? 1 : 0) | (wr ? 2 : 0));
        m.writeU16(at + 14, nextDesc[q]! + 1);
        nextDesc[q]!++;
      });
      writable.set(`${q}:${head}`, descs.filter((d) => d[2]).reduce((a, d) => a + d[1], 0));
      m.writeU16(AVAIL + off + 4 + 2 * (availIdx[q]! % qsize), head);
      availIdx[q] = (availIdx[q]! + 1) & 0xffff;
      m.writeU16(AVAIL + off + 2, availIdx[q]!);
      rig.core.notifyQueue(q);
    }
    await rig.settle();
    for (let q = 0; q < spec.queues; q++) {
      const off = queueAreaOffset(q, spec.queues);
      const usedIdx = m.readU16(USED + off + 2);
      for (; usedSeen[q] !== usedIdx; usedSeen[q] = (usedSeen[q]! + 1) & 0xffff) {
        const at = USED + off + 4 + 8 * (usedSeen[q]! % qsize);
        const id = m.readU32(at);
        const len = m.readU32(at + 4);
        const cap = writable.get(`${q}:${id}`);
        check(cap !== undefined, 'protocol', `queue ${q}: used id ${id} was not made available`);
        check(len <= cap, 'protocol', `queue ${q}: used.len ${len} > ${cap} writable bytes (2.7.8.2)`);
        rig.noteUsed(q, id, len);
      }
    }
  }
  await rig.settle();
  rig.guarded.checkGuards();
  spec.checkHost?.();
  if ((rig.core.status & Status.DEVICE_NEEDS_RESET) === 0) {
    for (let q = 0; q < spec.queues; q++) {
      if (spec.heldQueues.includes(q)) continue;
      check(rig.completedBy[q] === rig.poppedBy[q], 'chain-not-completed', `queue ${q}: ${rig.poppedBy[q]} chains popped, ${rig.completedBy[q]} completed`);
    }
  }
}

/** The fingerprint of what the last input of `spec` left (see CoreRig.fingerprint). */
export function deviceChainsOutcome(spec: DeviceChainsSpec): string {
  const rig = spec.freshDevice && harnessMode.reuse ? lastFresh.get(spec) : rigs.get(spec)?.last;
  check(rig != null, 'protocol', 'no input ran yet');
  return rig.fingerprint();
}
