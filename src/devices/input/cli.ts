/** `virtio-ts input`: its options and usage. */
import { readFileSync } from 'node:fs';
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, type BackendOptions } from '../../cli/options.js';
import { CliError, CliFault } from '../../cli/options.js';
import { isVirtioError } from '../../errors.js';
import type { DeviceCli } from '../device-type.js';
import type { InputDeviceProfile } from './input-config.js';
import { InputDevice } from './input-device.js';
import { parseInputProfile } from './input-json.js';
import { INPUT_PRESETS, type InputPresetName } from './input-presets.js';

/** Options of `virtio-ts input`, as parsed from the command line. */
export interface InputCliOptions extends BackendOptions {
  /** --preset: the kind of device when no --profile is given (default keyboard). */
  readonly preset: InputPresetName;
  /** --profile: a generic event device described by a JSON file (instead of the preset). */
  readonly profile: InputDeviceProfile | undefined;
  /** --name: the device name the guest sees (ID_NAME); undefined: the preset's or profile's. */
  readonly name: string | undefined;
  /** --events-socket: a Unix socket taking event lines from any number of host programs. */
  readonly eventsSocket: string | undefined;
}

const INPUT_USAGE = `Usage: virtio-ts input (--socket-path PATH | --fd N) [options]

Serves a virtio-input device to one vhost-user front-end (QEMU vhost-user-input-pci) at a time.
Events come from standard input and from the --events-socket, one per line, in either form:
  JSON:  {"type":"EV_KEY","code":"KEY_A","value":1}   (or numbers: {"type":1,"code":30,"value":1})
         {"syn":true} or an EV_SYN event ends an update
  text:  TYPE CODE VALUE (decimal, evdev numbering); "SYN" or "0 0 0" ends an update
The device delivers each update whole (with its SYN_REPORT); each source collects its own.
Status events from the guest (LEDs) are printed to standard output as "status TYPE CODE VALUE"
and sent to every events-socket client as {"status":{"type":T,"code":C,"value":V}}.

Options:
  --preset NAME          keyboard (default), mouse or tablet
  --profile FILE         a generic event device: a JSON profile (name, serial, ids, properties,
                         events per type, abs ranges; see docs/devices/input.md)
  --name TEXT            the device name the guest sees (ID_NAME)
  --events-socket PATH   also take event lines from clients of this Unix socket
${BACKEND_SOCKET_USAGE}
${BACKEND_COMMON_USAGE}
`;

/** The `virtio-ts input` sub-command: its options, usage, parsing and run. */
export const INPUT_CLI: DeviceCli<InputCliOptions> = {
  options: {
    preset: { type: 'string' },
    profile: { type: 'string' },
    name: { type: 'string' },
    'events-socket': { type: 'string' },
  },
  usage: INPUT_USAGE,
  parse(values, common) {
    const preset = (values['preset'] as string | undefined) ?? 'keyboard';
    if (!Object.hasOwn(INPUT_PRESETS, preset)) throw new CliError(CliFault.BAD_VALUE, `--preset must be keyboard, mouse or tablet, not "${preset}"`, 'input');
    const file = values['profile'] as string | undefined;
    if (file !== undefined && values['preset'] !== undefined) throw new CliError(CliFault.BAD_VALUE, '--preset and --profile exclude each other', 'input');
    let profile: InputDeviceProfile | undefined;
    if (file !== undefined) {
      try {
        profile = parseInputProfile(readFileSync(file, 'utf8'));
        new InputDevice({ profile }); // the device's own checks (sizes, code ranges), now rather than at the first connection
      } catch (e) {
        const why = isVirtioError(e) ? e.message : `cannot read ${file}: ${(e as Error).message}`;
        throw new CliError(CliFault.BAD_VALUE, `--profile: ${why}`, 'input');
      }
    }
    return {
      ...common,
      preset: preset as InputPresetName,
      profile,
      name: values['name'] as string | undefined,
      eventsSocket: values['events-socket'] as string | undefined,
    };
  },
  async run(options, io) {
    const { runInput } = await import('./input-command.js');
    return runInput(options, io);
  },
};
