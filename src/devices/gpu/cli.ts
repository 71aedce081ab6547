/**
 * `virtio-ts gpu`: its options, usage and checks. Serving is in gpu-command.ts, loaded only when
 * the command runs.
 */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, CliError, CliFault, queueSizeOption, type BackendOptions, type OptionValues } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';

/** Options of `virtio-ts gpu`, as parsed from the command line. */
export interface GpuOptions extends BackendOptions {
  /** The scanouts' preferred sizes until the front-end's display reports its own (1 to 16). */
  readonly displays: readonly { readonly width: number; readonly height: number }[];
  /** Maximum size of both queues. */
  readonly queueSize: number;
}

/** Defaults of `virtio-ts gpu`. */
export const GPU_DEFAULTS = { width: 1024, height: 768, queueSize: 256 } as const;

const COMMAND = 'gpu';

const GPU_USAGE = `Usage: virtio-ts gpu (--socket-path PATH | --fd N) [options]

Serves a virtio-gpu 2D device (5.7) to one vhost-user front-end (QEMU vhost-user-gpu-pci or
vhost-user-vga) at a time; after a disconnect it waits for the next. The front-end's display
socket (VHOST_USER_GPU_SET_SOCKET, QEMU docs/interop/vhost-user-gpu.rst) gets the scanouts, their
updates and the cursor; its display sizes and EDIDs are what the guest sees. No 3D (virgl) and no
render node. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --display WxH           a scanout and its preferred size before the front-end reports one
                          (1..4095 each); repeat for up to 16 (default one ${GPU_DEFAULTS.width}x${GPU_DEFAULTS.height})
  --queue-size N          the largest ring, a power of 2 from 4 to 32768 (default ${GPU_DEFAULTS.queueSize})
${BACKEND_COMMON_USAGE}`;

/** One `--display WxH` value. */
export function parseGpuDisplay(text: string): { width: number; height: number } {
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(text);
  if (!m) throw new CliError(CliFault.BAD_VALUE, `--display ${text}: WIDTHxHEIGHT, e.g. 1024x768`, COMMAND);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width < 1 || width > 4095 || height < 1 || height > 4095) throw new CliError(CliFault.BAD_SIZE, `--display ${text}: each side 1..4095`, COMMAND);
  return { width, height };
}

function parseGpu(v: OptionValues, common: BackendOptions): GpuOptions {
  const raw = v['display'];
  const texts = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((x): x is string => typeof x === 'string');
  if (texts.length > 16) throw new CliError(CliFault.BAD_VALUE, `${texts.length} --display: at most 16 scanouts`, COMMAND);
  const displays = texts.length === 0 ? [{ width: GPU_DEFAULTS.width, height: GPU_DEFAULTS.height }] : texts.map(parseGpuDisplay);
  return { ...common, displays, queueSize: queueSizeOption(v, COMMAND, GPU_DEFAULTS.queueSize, 4) };
}

/** The `virtio-ts gpu` sub-command: its options, usage, parsing and run. */
export const GPU_CLI: DeviceCli<GpuOptions> = {
  options: {
    display: { type: 'string', multiple: true },
    'queue-size': { type: 'string' },
  },
  usage: GPU_USAGE,
  parse: parseGpu,
  async run(options, io) {
    const { runGpu } = await import('./gpu-command.js');
    return runGpu(options, io);
  },
};
