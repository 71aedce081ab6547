/**
 * The device parts of a member device's DeviceCore (device-parts.tex): what a get captures, how a
 * set is checked before anything changes, and how the parts a set staged take effect when the
 * member resumes (2.12.1.5 VIRTIO_ADMIN_CMD_DEV_PARTS_SET: "take effect when the device is
 * resumed").
 */
import type { DeviceCoreApi } from '../../device/types.js';
import { createDeviceQueue } from '../../queue/create-queue.js';
import { queueSizeProblem } from '../../device/queue-register-file.js';
import type { QueueState } from '../../queue/types.js';
import { QueueArea } from '../../device/types.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import {
  DEV_PART_F_OPTIONAL,
  type DevicePart,
  DevicePartLength,
  DevicePartType,
  PCI_COMMON_CFG_NUM_QUEUES,
  type VqCfgPart,
  type VqPositionPart,
  decodeFeatures,
  decodeVqCfg,
  decodeVqNotify,
  decodeVqPosition,
  encodeFeatures,
  encodeVqCfg,
  encodeVqNotify,
  encodeVqPosition,
  partOrderRank,
} from './device-part-format.js';

/** What the device parts commands need of a member's core beyond DeviceCoreApi (DeviceCore has it). */
export interface StoppableMemberCore extends DeviceCoreApi {
  /** Stopping or stopped by the group owner. */
  readonly stoppedByOwner: boolean;
  /** Stops the member; resolves once nothing is outstanding. */
  stopForOwner(): Promise<void>;
  /** Resumes the member (`kickAll`: notify every queue once). */
  resumeForOwner(kickAll?: boolean): void;
  /** Ring positions used at the next activation. */
  restoreQueueStatesAtActivation(states: readonly (QueueState | null)[]): void;
  /** Why FEATURES_OK would be refused for `accepted`, or null. */
  checkFeatures(accepted: bigint): string | null;
  /** Bumped at every reset. */
  readonly epochNow: number;
}

/** Whether `core` can be stopped and restored (a DeviceCore). */
export function isStoppableMemberCore(core: DeviceCoreApi): core is StoppableMemberCore {
  const c = core as Partial<StoppableMemberCore>;
  return typeof c.stopForOwner === 'function' && typeof c.resumeForOwner === 'function' && typeof c.restoreQueueStatesAtActivation === 'function';
}

const part = (type: number, value: Uint8Array, selector = 0, flags = 0): DevicePart => ({ header: { type, flags, selector, length: value.length }, value });

/**
 * Every part of the member, in the order of the table "Device parts order"
 * (device/admin-cmds-device-parts/3, /15, /16, /17): device features (optional), driver features,
 * num_queues of the common configuration, status, then per queue VQ_CFG, VQ_NOTIFY_CFG and the
 * implementation's VQ_POSITION for live queues. Capturing changes nothing (it can be repeated,
 * device/admin-cmds-device-parts/2).
 */
export function captureMemberParts(core: DeviceCoreApi): DevicePart[] {
  const parts: DevicePart[] = [
    part(DevicePartType.DEV_FEATURES, encodeFeatures(core.deviceFeatures()), 0, DEV_PART_F_OPTIONAL),
    part(DevicePartType.DRV_FEATURES, encodeFeatures(core.driverFeatures)),
  ];
  const nq = new Uint8Array(2);
  new DataView(nq.buffer).setUint16(0, core.numQueues, true);
  parts.push(part(DevicePartType.PCI_COMMON_CFG, nq, PCI_COMMON_CFG_NUM_QUEUES));
  parts.push(part(DevicePartType.DEVICE_STATUS, Uint8Array.of(core.status & 0xff)));
  for (let i = 0; i < core.numQueues; i++) {
    const r = core.queueRegisters(i)!;
    const cfg = { size: r.size, vector: r.msixVector, enabled: r.enabled, descAddr: r.descAddr, driverAddr: r.driverAddr, deviceAddr: r.deviceAddr };
    parts.push(part(DevicePartType.VQ_CFG, encodeVqCfg(cfg), i));
  }
  // queue_notify_off is the queue index on this library's PCI transport (pci-common-config.ts).
  for (let i = 0; i < core.numQueues; i++) {
    parts.push(part(DevicePartType.VQ_NOTIFY_CFG, encodeVqNotify({ notifyOff: i, notifyConfigData: core.queueRegisters(i)!.notifyData }), i));
  }
  for (let i = 0; i < core.numQueues; i++) {
    const q = core.queue(i);
    if (q === null) continue;
    const s = q.state();
    parts.push(part(DevicePartType.VQ_POSITION, encodeVqPosition(s), i, q.packed ? 0 : DEV_PART_F_OPTIONAL));
  }
  return parts;
}

/** The value length the member has for a part (device/admin-cmds-device-parts/6), or -1: no such part. */
export function partLengthInDevice(core: DeviceCoreApi, type: number, selector: number): number {
  switch (type) {
    case DevicePartType.DEV_FEATURES:
    case DevicePartType.DRV_FEATURES:
      return DevicePartLength.FEATURES;
    case DevicePartType.PCI_COMMON_CFG:
      return selector === PCI_COMMON_CFG_NUM_QUEUES ? DevicePartLength.NUM_QUEUES : -1;
    case DevicePartType.DEVICE_STATUS:
      return DevicePartLength.DEVICE_STATUS;
    case DevicePartType.VQ_CFG:
      return selector < core.numQueues ? DevicePartLength.VQ_CFG : -1;
    case DevicePartType.VQ_NOTIFY_CFG:
      return selector < core.numQueues ? DevicePartLength.VQ_NOTIFY_CFG : -1;
    case DevicePartType.VQ_POSITION:
      return selector < core.numQueues ? DevicePartLength.VQ_POSITION : -1;
    default:
      return -1;
  }
}

/**
 * Parts a set staged on a stopped member, applied when it resumes. `epoch` ties them to the
 * member's life: a reset voids them (device/admin-cmds-device-parts/13).
 */
export interface StagedParts {
  /** The member's reset epoch the parts belong to. */
  epoch: number;
  /** Driver features set (null: keep the member's). */
  driverFeatures: bigint | null;
  /** Device status set (null: keep the member's). */
  status: number | null;
  /** Types seen so far since the stop (for the "mandatory preceding parts" rule). */
  readonly seen: Set<number>;
  /** VQ_CFG set, per queue index. */
  readonly vqCfg: Map<number, VqCfgPart>;
  /** VQ_POSITION set, per queue index. */
  readonly positions: Map<number, VqPositionPart>;
}

/** An empty staging for `core` in its current life. */
export function emptyStaging(core: StoppableMemberCore): StagedParts {
  return { epoch: core.epochNow, driverFeatures: null, status: null, seen: new Set(), vqCfg: new Map(), positions: new Map() };
}

/** Parts that must come before each part (table "Device parts order"; DEV_FEATURES is optional). */
function requiredBefore(type: number): readonly number[] {
  const T = DevicePartType;
  switch (type) {
    case T.PCI_COMMON_CFG:
      return [T.DRV_FEATURES];
    case T.DEVICE_STATUS:
      return [T.DRV_FEATURES, T.PCI_COMMON_CFG];
    case T.VQ_CFG:
      return [T.DRV_FEATURES, T.PCI_COMMON_CFG, T.DEVICE_STATUS];
    case T.VQ_NOTIFY_CFG:
      return [T.DRV_FEATURES, T.PCI_COMMON_CFG, T.DEVICE_STATUS, T.VQ_CFG];
    default:
      return [];
  }
}

const STATUS_RESTORABLE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK;

/** Whether `s` is a status a driver reaches by 3.1.1 (each bit with those before it). */
function statusProblem(s: number): string | null {
  if ((s & ~STATUS_RESTORABLE) !== 0) return `status 0x${s.toString(16)} has bits that cannot be restored`;
  if (s & Status.DRIVER && !(s & Status.ACKNOWLEDGE)) return 'DRIVER without ACKNOWLEDGE';
  if (s & Status.FEATURES_OK && !(s & Status.DRIVER)) return 'FEATURES_OK without DRIVER';
  if (s & Status.DRIVER_OK && !(s & Status.FEATURES_OK)) return 'DRIVER_OK without FEATURES_OK';
  return null;
}

/**
 * Checks `parts` of a VIRTIO_ADMIN_CMD_DEV_PARTS_SET against the member and what was staged
 * before, and answers the new staging, or why the command fails. Nothing is changed here: a
 * failing set has no side effect (2.12.1.5). Rules: lengths equal to the device's
 * (device/admin-cmds-device-parts/6); device features, num_queues and queue_notify_off only verified,
 * never set (/7, /19); the table order and its mandatory preceding parts; at most one instance of
 * a part (device-parts.tex); an unknown part is an error unless optional (the device may ignore
 * those).
 */
export function stageParts(core: StoppableMemberCore, parts: readonly DevicePart[], before: StagedParts): StagedParts | string {
  const next: StagedParts = {
    epoch: before.epoch,
    driverFeatures: before.driverFeatures,
    status: before.status,
    seen: new Set(before.seen),
    vqCfg: new Map(before.vqCfg),
    positions: new Map(before.positions),
  };
  const inThisSet = new Set<string>();
  let lastRank = -1;
  for (const p of parts) {
    const { type, selector, flags } = p.header;
    const rank = partOrderRank(type);
    if (rank < 0) {
      if (flags & DEV_PART_F_OPTIONAL) continue;
      return `unknown part type 0x${type.toString(16)}`;
    }
    const want = partLengthInDevice(core, type, selector);
    if (want < 0) return `part 0x${type.toString(16)} selector ${selector}: no such part in the device`;
    if (p.value.length !== want) return `part 0x${type.toString(16)}: length ${p.value.length}, the device's is ${want}`;
    if (rank < lastRank) return `part 0x${type.toString(16)} out of the table order`;
    lastRank = rank;
    const key = `${type}:${selector}`;
    if (inThisSet.has(key)) return `part 0x${type.toString(16)} selector ${selector} given twice`;
    inThisSet.add(key);
    for (const r of requiredBefore(type)) {
      if (!next.seen.has(r)) return `part 0x${type.toString(16)} without the part 0x${r.toString(16)} before it`;
    }
    const problem = stageOne(core, next, p);
    if (problem !== null) return problem;
    next.seen.add(type);
  }
  // The driver features must be acceptable for the status restored (FEATURES_OK, 3.1.1).
  const status = next.status ?? core.status;
  const drv = next.driverFeatures ?? core.driverFeatures;
  if (status & Status.FEATURES_OK) {
    const why = core.checkFeatures(drv);
    if (why !== null) return `driver features refused: ${why}`;
  }
  const packed = (drv & F.RING_PACKED) !== 0n;
  for (const [i, c] of next.vqCfg) {
    if (!c.enabled && c.size === 0) continue;
    const sizeProblem = queueSizeProblem(c.size, core.device.queueMaxSizes[i] ?? 0, packed);
    if (sizeProblem !== null) return `queue ${i}: ${sizeProblem}`;
    if (!c.enabled) continue;
    if (!(status & Status.FEATURES_OK)) return `queue ${i} enabled without FEATURES_OK`;
    try {
      // Only checks the ring fits guest memory and is aligned: nothing is read.
      createDeviceQueue(core.memory, { size: c.size, descAddr: c.descAddr, driverAddr: c.driverAddr, deviceAddr: c.deviceAddr, features: drv, index: i });
    } catch (e) {
      return `queue ${i}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  for (const [i, pos] of next.positions) {
    const size = next.vqCfg.get(i)?.size ?? core.queueRegisters(i)!.size;
    if (packed && (pos.nextAvail >= size || pos.nextUsed >= size)) return `queue ${i}: position beyond the ring of ${size}`;
  }
  return next;
}

function stageOne(core: StoppableMemberCore, next: StagedParts, p: DevicePart): string | null {
  const T = DevicePartType;
  const v = new DataView(p.value.buffer, p.value.byteOffset, p.value.length);
  switch (p.header.type) {
    case T.DEV_FEATURES: {
      // device/admin-cmds-device-parts/7: verified, never set.
      const f = decodeFeatures(p.value);
      return f === core.deviceFeatures() ? null : `device features 0x${f.toString(16)} differ from the device's 0x${core.deviceFeatures().toString(16)}`;
    }
    case T.DRV_FEATURES: {
      const f = decodeFeatures(p.value);
      const extra = f & ~core.deviceFeatures();
      if (extra !== 0n) return `driver features 0x${extra.toString(16)} not offered by the device`;
      next.driverFeatures = f;
      return null;
    }
    case T.PCI_COMMON_CFG: {
      // device/admin-cmds-device-parts/19: num_queues is read-only: verified, not applied.
      const n = v.getUint16(0, true);
      return n === core.numQueues ? null : `num_queues ${n} differs from the device's ${core.numQueues}`;
    }
    case T.DEVICE_STATUS: {
      const s = v.getUint8(0);
      const why = statusProblem(s);
      if (why !== null) return why;
      next.status = s;
      return null;
    }
    case T.VQ_CFG: {
      const c = decodeVqCfg(p.value);
      if (typeof c === 'string') return `queue ${p.header.selector}: ${c}`;
      next.vqCfg.set(p.header.selector, c);
      return null;
    }
    case T.VQ_NOTIFY_CFG: {
      const n = decodeVqNotify(p.value);
      if (typeof n === 'string') return `queue ${p.header.selector}: ${n}`;
      // Both fields are read-only for the driver (4.1.4.3): verified, not applied.
      const i = p.header.selector;
      if (n.notifyOff !== i) return `queue ${i}: queue_notify_off ${n.notifyOff} differs from the device's ${i}`;
      const data = core.queueRegisters(i)!.notifyData;
      return n.notifyConfigData === data ? null : `queue ${i}: queue_notif_config_data ${n.notifyConfigData} differs from the device's ${data}`;
    }
    case T.VQ_POSITION: {
      const pos = decodeVqPosition(p.value);
      if (typeof pos === 'string') return `queue ${p.header.selector}: ${pos}`;
      next.positions.set(p.header.selector, pos);
      return null;
    }
    default:
      return `unknown part type 0x${p.header.type.toString(16)}`;
  }
}

/**
 * Makes the staged parts the member's state (at resume): the member is reset (nothing is
 * outstanding: it is stopped) and brought up again as its driver had it, with the staged parts
 * over what it had. Ring positions: the staged VQ_POSITION, else for a split ring the used
 * ring's idx (a stop wrote back every observed buffer, so the next available entry is the next
 * used one), else (packed) the position the member's own queue had.
 */
export function applyStagedParts(core: StoppableMemberCore, staged: StagedParts): void {
  const drv = staged.driverFeatures ?? core.driverFeatures;
  const status = staged.status ?? core.status;
  const packed = (drv & F.RING_PACKED) !== 0n;
  const regs = [];
  const states: (QueueState | null)[] = [];
  for (let i = 0; i < core.numQueues; i++) {
    const r = core.queueRegisters(i)!;
    const c = staged.vqCfg.get(i) ?? { size: r.size, vector: r.msixVector, enabled: r.enabled, descAddr: r.descAddr, driverAddr: r.driverAddr, deviceAddr: r.deviceAddr };
    regs.push(c);
    const pos = staged.positions.get(i);
    const live = core.queue(i);
    if (pos) states.push({ ...pos });
    else if (!c.enabled) states.push(null);
    else if (!packed && core.memory.isMapped(c.deviceAddr + 2, 2)) {
      const idx = core.memory.readU16(c.deviceAddr + 2, core.littleEndian);
      states.push({ nextAvail: idx, nextUsed: idx, availWrap: true, usedWrap: true });
    } else states.push(live && live.packed === packed && staged.vqCfg.get(i) === undefined ? live.state() : null);
  }
  core.setStatus(0);
  if (status & Status.ACKNOWLEDGE) core.setStatus(Status.ACKNOWLEDGE);
  if (status & Status.DRIVER) core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  core.setDriverFeatures(drv);
  if (status & Status.FEATURES_OK) core.setStatus(status & ~Status.DRIVER_OK);
  for (let i = 0; i < regs.length; i++) {
    const c = regs[i]!;
    if (c.size !== 0) core.setQueueSize(i, c.size);
    core.setQueueAddress(i, QueueArea.DESC, c.descAddr);
    core.setQueueAddress(i, QueueArea.DRIVER, c.driverAddr);
    core.setQueueAddress(i, QueueArea.DEVICE, c.deviceAddr);
    core.setQueueMsixVector(i, c.vector);
    if (c.enabled) core.setQueueEnabled(i);
  }
  core.restoreQueueStatesAtActivation(states);
  if (status & Status.DRIVER_OK) core.setStatus(status);
}
