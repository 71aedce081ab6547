/** `virtio-ts input`: its options and usage. */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, type BackendOptions } from '../../cli/options.js';
import { CliError, CliFault } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';
import { INPUT_PRESETS, type InputPresetName } from './input-presets.js';

export interface InputCliOptions extends BackendOptions {
  readonly preset: InputPresetName;
  readonly name: string | undefined;
}

const INPUT_USAGE = `Usage: virtio-ts input (--socket-path PATH | --fd N) [options]

Serves a virtio-input device to one vhost-user front-end (QEMU vhost-user-input-pci) at a time.
Input comes from standard input, one event per line: "TYPE CODE VALUE" (decimal numbers, evdev
numbering); a line "SYN" (or "0 0 0") ends an update, which the device delivers whole.
Status events from the guest (LEDs) are printed to standard output the same way.

Options:
  --preset NAME        keyboard (default), mouse or tablet
  --name TEXT          the device name the guest sees (ID_NAME)
${BACKEND_SOCKET_USAGE}
${BACKEND_COMMON_USAGE}
`;

export const INPUT_CLI: DeviceCli<InputCliOptions> = {
  options: {
    preset: { type: 'string' },
    name: { type: 'string' },
  },
  usage: INPUT_USAGE,
  parse(values, common) {
    const preset = (values['preset'] as string | undefined) ?? 'keyboard';
    if (!Object.hasOwn(INPUT_PRESETS, preset)) throw new CliError(CliFault.BAD_VALUE, `--preset must be keyboard, mouse or tablet, not "${preset}"`, 'input');
    return { ...common, preset: preset as InputPresetName, name: values['name'] as string | undefined };
  },
  async run(options, io) {
    const { runInput } = await import('./input-command.js');
    return runInput(options, io);
  },
};
