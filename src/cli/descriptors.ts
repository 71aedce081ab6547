/**
 * `virtio-ts descriptors`: writes a vhost-user.json back-end descriptor (@VhostUserBackend) for
 * each device type that has a vhost-user back-end type, so QEMU's management software (libvirt)
 * discovers them. The default folder is the one the schema names for distribution-shipped files,
 * `/usr/share/qemu/vhost-user/`; `/etc/qemu/vhost-user/` takes precedence for local changes.
 * Files are named `50-virtio-ts-<type>.json` (the schema sorts by file name; 50 leaves room on
 * both sides).
 */
import { accessSync, chmodSync, constants, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError } from '../errors.js';
import { deviceTypes } from '../devices/registry.js';
import { backendDescription, type VhostUserBackendDescription } from '../vhost-user/capabilities.js';
import { programName } from './program.js';

/** Where distributions install descriptors (vhost-user.json, "Search paths"). */
export const DEFAULT_DESCRIPTOR_DIR = '/usr/share/qemu/vhost-user';

export interface DescriptorOptions {
  /** The folder to write into (made if missing). */
  readonly dir: string;
  /**
   * A folder holding the `virtio-ts-<type>` programs (an npm `.bin` folder, or where a package
   * put them); default: this package's own program files.
   */
  readonly binaryDir?: string;
}

export interface WrittenDescriptor {
  readonly path: string;
  readonly descriptor: VhostUserBackendDescription;
}

/** The path of this package's program file of a device type (dist/src/cli/programs/<type>.js). */
export function packagedProgramPath(command: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'programs', `${command}.js`);
}

/** The descriptor file name of a device type. */
export function descriptorFileName(command: string): string {
  return `50-${programName(command)}.json`;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Writes one descriptor per device type with a vhost-user back-end type and a CLI. The binary a
 * descriptor names must exist and be executable (the management software runs it as it is): a
 * packaged program file that lost its mode (a build from source, not an npm install) gets 0755.
 */
export function writeDescriptors(options: DescriptorOptions): WrittenDescriptor[] {
  const dir = resolve(options.dir);
  const written: WrittenDescriptor[] = [];
  const types = deviceTypes().filter((t) => t.vhostUser !== null && t.cli !== null);
  const binaries = types.map((t) => {
    if (options.binaryDir !== undefined) {
      const path = join(resolve(options.binaryDir), programName(t.name));
      if (!executable(path)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path} is not an executable file`);
      return path;
    }
    const path = packagedProgramPath(t.name);
    if (!executable(path)) {
      try {
        chmodSync(path, 0o755);
      } catch (e) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path}: not executable and its mode cannot be set`, { cause: e });
      }
    }
    return path;
  });
  mkdirSync(dir, { recursive: true });
  types.forEach((t, i) => {
    const descriptor = backendDescription(t.vhostUser!.type, binaries[i]!, `virtio-ts ${t.name}: ${t.summary}`);
    const path = join(dir, descriptorFileName(t.name));
    writeFileSync(path, `${JSON.stringify(descriptor, null, 2)}\n`);
    written.push({ path, descriptor });
  });
  return written;
}
