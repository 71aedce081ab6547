/** The registry record of the input device (5.8): `virtio-ts input`, vhost-user type "input". */
import assert from 'node:assert/strict';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import { EvCode, EvType, InputConfigSelect } from '../../spec/input.js';
import type { DeviceType } from '../device-type.js';
import { INPUT_CLI } from './cli.js';
import type { InputDeviceProfile } from './input-config.js';
import { InputDevice } from './input-device.js';
import { InputDriver, transportConfigSettled } from './input-driver.js';
import { INPUT_PRESETS, type InputPresetName } from './input-presets.js';

/** `createDevice` arguments (structured-cloneable). */
export interface InputDeviceArgs {
  /** The preset to build when no `profile` is given. Default keyboard. */
  readonly preset?: InputPresetName;
  /** A generic event device: this profile instead of a preset (`name` still overrides its name). */
  readonly profile?: InputDeviceProfile;
  /** Device name (ID_NAME) instead of the preset's or profile's. */
  readonly name?: string;
  /** Maximum size of the event and status queues. Default 64. */
  readonly queueSize?: number;
  /** Events held while the driver has posted no eventq buffer, at most. Default 256. */
  readonly maxQueuedEvents?: number;
}

/** An input device from `createDevice` arguments: `profile` when given, else the preset (default keyboard). */
export function createInputDevice(args: InputDeviceArgs = {}): InputDevice {
  if (args.profile !== undefined) {
    return new InputDevice({
      profile: args.name !== undefined ? { ...args.profile, name: args.name } : args.profile,
      ...(args.queueSize !== undefined ? { queueSize: args.queueSize } : {}),
      ...(args.maxQueuedEvents !== undefined ? { maxQueuedEvents: args.maxQueuedEvents } : {}),
    });
  }
  const preset = args.preset ?? 'keyboard';
  const make = INPUT_PRESETS[preset] as ((name?: string) => ReturnType<(typeof INPUT_PRESETS)['keyboard']>) | undefined;
  if (make === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no input preset "${String(preset)}" (keyboard, mouse, tablet)`);
  return new InputDevice({
    profile: make(args.name),
    ...(args.queueSize !== undefined ? { queueSize: args.queueSize } : {}),
    ...(args.maxQueuedEvents !== undefined ? { maxQueuedEvents: args.maxQueuedEvents } : {}),
  });
}

/**
 * The registry record of virtio-input: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const INPUT_TYPE: DeviceType = {
  name: 'input',
  deviceId: DeviceId.INPUT,
  summary: 'serve a virtio-input device (keyboard, mouse, tablet, or a profile) over vhost-user',
  vhostUser: { type: 'input', features: [] },
  // 5.8.4 struct virtio_input_config: select, subsel, size, reserved[5], union u[128].
  configSize: 136,
  cli: INPUT_CLI,
  createDevice: (args?: unknown) => createInputDevice((args ?? {}) as InputDeviceArgs),
  matrixCase() {
    const status: number[][] = [];
    const device = createInputDevice({ preset: 'tablet', name: 'matrix tablet' });
    device.onStatus = (t, c, v) => void status.push([t, c, v]);
    return {
      device,
      async exercise(driver) {
        // An update sent before the driver posted buffers waits for them.
        assert.ok(device.sendUpdate([
          { type: EvType.ABS, code: EvCode.ABS_X, value: 100 },
          { type: EvType.ABS, code: EvCode.ABS_Y, value: 32767 },
        ]));
        // Over vhost-user the config is a copy the front-end refreshes with GET_CONFIG after each
        // SET_CONFIG; its barrier makes select/subsel queries work there like everywhere else.
        const input = new InputDriver(driver.context, { eventBuffers: 4, configSettled: transportConfigSettled(driver.transport) });
        assert.equal(await input.name(), 'matrix tablet');
        assert.deepEqual(await input.eventCodes(EvType.ABS), [EvCode.ABS_X, EvCode.ABS_Y]);
        assert.deepEqual(await input.absInfo(EvCode.ABS_Y), { min: 0, max: 32767, fuzz: 0, flat: 0, res: 0 });
        assert.equal((await input.query(InputConfigSelect.ABS_INFO, 9)).length, 0, 'unsupported axis: size 0');
        assert.deepEqual(await input.nextEvents(3), [
          { type: EvType.ABS, code: EvCode.ABS_X, value: 100 },
          { type: EvType.ABS, code: EvCode.ABS_Y, value: 32767 },
          { type: EvType.SYN, code: EvCode.SYN_REPORT, value: 0 },
        ]);
        // More events than posted buffers: the rest wait and follow as buffers come back.
        for (let i = 0; i < 3; i++) assert.ok(device.sendUpdate([{ type: EvType.KEY, code: EvCode.BTN_LEFT, value: (i + 1) & 1 }]));
        const more = await input.nextEvents(6);
        assert.deepEqual(more.map((e) => e.value), [1, 0, 0, 0, 1, 0]);
        await input.sendStatus(EvType.LED, EvCode.LED_CAPSL, 1);
        assert.deepEqual(status, [[EvType.LED, EvCode.LED_CAPSL, 1]]);
        input.detach();
      },
    };
  },
};
