/**
 * One record per device type: everything the rest of virtio-ts needs to know about a type, so
 * that adding one touches its folder (src/devices/<type>/) and one line of the registry
 * (registry.ts). The record feeds the `virtio-ts` sub-commands and their usage,
 * `--print-capabilities`, the device-worker factories, and the transport matrix.
 */
import type { ParseArgsConfig } from 'node:util';
import type { VirtioDevice } from '../device/types.js';
import type { VirtioDriver } from '../driver/virtio-driver.js';
import type { BackendOptions, CliIo, OptionValues } from '../cli/options.js';
import type { VhostUserBackendType } from '../vhost-user/capabilities.js';

/** A device type's `virtio-ts <name>` sub-command: a vhost-user back-end serving the device. */
export interface DeviceCli<O extends BackendOptions = BackendOptions> {
  /**
   * The type's own options (parseArgs form). Every back-end command also takes BACKEND_OPTIONS
   * (--socket-path, --fd, --print-capabilities, -v, -q, -h): do not list them here.
   */
  readonly options: NonNullable<ParseArgsConfig['options']>;
  /** The whole `--help` text (src/cli/options.ts has the shared lines). */
  readonly usage: string;
  /** Checks the parsed values (throws CliError with the command's name) and builds the options. */
  parse(values: OptionValues, common: BackendOptions): O;
  /** Serves until a signal or the front-end's end (for --fd); resolves with the exit code. */
  run(options: O, io: CliIo): Promise<number>;
}

/** What the transport matrix does with a device type on every transport. */
export interface MatrixCase {
  /** A fresh device in reset state, with queues of at least 64 entries. */
  readonly device: VirtioDevice;
  /**
   * Drives the device through its virtio-ts driver, over a `VirtioDriver` that has negotiated
   * features and set DRIVER_OK on some transport, and checks what the device did (throws an
   * assertion error on a mismatch). Leaves no request in flight.
   */
  exercise(driver: VirtioDriver): Promise<void>;
}

/** The capabilities a back-end reports (vhost-user.json @VHostUserBackendCapabilities). */
export interface VhostUserTypeInfo {
  /** The vhost-user.json back-end type (`block`, `rng`, `fs`, ...). */
  readonly type: VhostUserBackendType;
  /** The optional features of that type supported (`read-only`, ...). */
  readonly features: readonly string[];
}

/**
 * A device type's registry record: what the CLI, the capabilities, the device-worker factories and
 * the transport matrix need to know of it. Built-in types are in BUILTIN_DEVICE_TYPES; a program
 * adds its own with registerDeviceType.
 */
export interface DeviceType {
  /** Registry key and CLI sub-command: lower case, e.g. "blk", "rng". */
  readonly name: string;
  /** 5 Device Types: the device ID. */
  readonly deviceId: number;
  /** One line for the top-level usage ("serve a virtio-blk device over vhost-user"). */
  readonly summary: string;
  /** The vhost-user back-end type and features, or null when vhost-user.json has none for it. */
  readonly vhostUser: VhostUserTypeInfo | null;
  /**
   * Bytes of device configuration a vhost-user front-end asks with GET_CONFIG (virtio-ts's own
   * front-end uses it as its default; vhost-user has no discovery of the size). 0 or absent: the
   * type has no configuration worth asking. A peer's limits may make it smaller than the spec's
   * structure (QEMU 7.2's libvhost-user refuses a blk request over 60 bytes).
   */
  readonly configSize?: number;
  /** The sub-command, or null for a type with no back-end command yet. */
  // The record erases its own option type: the CLI hands `parse`'s result back to `run` only.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly cli: DeviceCli<any> | null;
  /**
   * A device with small defaults, for tests, examples and device workers (which build a device
   * on another thread from the type's name and `args`, so `args` must be structured-cloneable).
   */
  createDevice(args?: unknown): VirtioDevice;
  /** The transport matrix's case for this type. */
  matrixCase(): MatrixCase;
}
