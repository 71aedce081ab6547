/**
 * `--print-capabilities` output and back-end description files, per vhost-user.json
 * (@VHostUserBackendCapabilities, @VhostUserBackend) and the rst "Backend program conventions".
 */
import { VirtioError } from '../errors.js';
import { DeviceId } from '../spec/device-id.js';

/** The back-end types of vhost-user.json's `VHostUserBackendType` enum (QEMU docs/interop/vhost-user.json), in its order: the `type` a descriptor file and `--print-capabilities` name. */
export const VHOST_USER_BACKEND_TYPES = [
  '9p',
  'balloon',
  'block',
  'caif',
  'console',
  'crypto',
  'gpu',
  'input',
  'net',
  'rng',
  'rpmsg',
  'rproc-serial',
  'scsi',
  'vsock',
  'fs',
] as const;
/** One back-end type name of vhost-user.json (`VHostUserBackendType`), e.g. 'block' or 'net'. */
export type VhostUserBackendType = (typeof VHOST_USER_BACKEND_TYPES)[number];

/** Per-type features of the schema (@VHostUserBackendBlockFeature, ...InputFeature, ...GPUFeature). */
export const VHOST_USER_TYPE_FEATURES: { readonly [K in VhostUserBackendType]?: readonly string[] } = {
  block: ['read-only', 'blk-file'],
  input: ['evdev-path', 'no-grab'],
  gpu: ['render-node', 'virgl'],
};

const BY_DEVICE_ID = new Map<number, VhostUserBackendType>([
  [DeviceId.NINEP, '9p'],
  [DeviceId.BALLOON_TRADITIONAL, 'balloon'],
  [DeviceId.BLOCK, 'block'],
  [DeviceId.CAIF, 'caif'],
  [DeviceId.CONSOLE, 'console'],
  [DeviceId.CRYPTO, 'crypto'],
  [DeviceId.GPU, 'gpu'],
  [DeviceId.INPUT, 'input'],
  [DeviceId.NET, 'net'],
  [DeviceId.ENTROPY, 'rng'],
  [DeviceId.RPMSG, 'rpmsg'],
  [DeviceId.RPROC_SERIAL, 'rproc-serial'],
  [DeviceId.SCSI, 'scsi'],
  [DeviceId.VSOCK, 'vsock'],
  [DeviceId.FS, 'fs'],
]);

/** The schema's back-end type of a virtio device id, or null when the schema has none. */
export function backendTypeOf(deviceId: number): VhostUserBackendType | null {
  return BY_DEVICE_ID.get(deviceId) ?? null;
}

/** @VHostUserBackendCapabilities: `type`, plus `features` for types that define them. */
export interface VhostUserCapabilities {
  /** The back-end type (vhost-user.json `type`). */
  readonly type: VhostUserBackendType;
  /** The optional features of that type the back-end supports (vhost-user.json, per type). */
  readonly features?: readonly string[];
}

/** Builds the capabilities object, refusing a type or feature the schema does not define. */
export function capabilities(type: string, features: readonly string[] = []): VhostUserCapabilities {
  if (!(VHOST_USER_BACKEND_TYPES as readonly string[]).includes(type)) {
    throw new VirtioError('INVALID_ARGUMENT', `unknown vhost-user back-end type ${type}`);
  }
  const t = type as VhostUserBackendType;
  const allowed = VHOST_USER_TYPE_FEATURES[t];
  if (!allowed) {
    if (features.length > 0) throw new VirtioError('INVALID_ARGUMENT', `type ${t} has no features in the schema`);
    return { type: t };
  }
  for (const f of features) {
    if (!allowed.includes(f)) throw new VirtioError('INVALID_ARGUMENT', `feature ${f} is not a ${t} feature`);
  }
  return { type: t, features: [...features] };
}

/** The `--print-capabilities` text (JSON and a newline), for stdout. */
export function printCapabilities(type: string, features: readonly string[] = []): string {
  return `${JSON.stringify(capabilities(type, features), null, 2)}\n`;
}

/** @VhostUserBackend: the JSON file management software discovers back-ends with. */
export interface VhostUserBackendDescription {
  /** What the back-end is, for people. */
  readonly description: string;
  /** The back-end type. */
  readonly type: VhostUserBackendType;
  /** Absolute path of the program that serves it. */
  readonly binary: string;
  /** Free-form tags for management software. */
  readonly tags?: readonly string[];
}

/**
 * A vhost-user.json back-end description (what `virtio-ts descriptors` writes), refusing a type the
 * schema does not define.
 */
export function backendDescription(type: string, binary: string, description: string, tags?: readonly string[]): VhostUserBackendDescription {
  const c = capabilities(type);
  if (!binary.startsWith('/')) throw new VirtioError('INVALID_ARGUMENT', 'binary must be an absolute path');
  return tags ? { description, type: c.type, binary, tags: [...tags] } : { description, type: c.type, binary };
}
