export { InputDevice, type InputDeviceOptions, type InputEventValue, type InputStatusListener } from './input-device.js';
export { InputConfigSpace, type InputAbsAxis, type InputDevIdsValue, type InputDeviceProfile } from './input-config.js';
export { InputDriver, type InputDriverOptions, transportConfigSettled } from './input-driver.js';
export { parseInputProfile, parseJsonEventLine } from './input-json.js';
export { INPUT_PRESETS, keyboardProfile, mouseProfile, tabletProfile, type InputPresetName } from './input-presets.js';
export { INPUT_TYPE, createInputDevice, type InputDeviceArgs } from './input-type.js';
export { INPUT_CLI, type InputCliOptions } from './cli.js';
