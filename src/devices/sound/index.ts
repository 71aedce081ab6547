export { SoundDevice, type SoundDeviceOptions } from './sound-device.js';
export { SoundDriver, SoundRequestError, type SoundDriverOptions, type SoundPcmParams, type SoundIoResult, type SoundEventResult } from './sound-driver.js';
export { SOUND_TYPE, type SoundDeviceArgs } from './sound-type.js';
export { PcmState, PcmStream } from './pcm-stream.js';
export { type PcmInput, type PcmOutput, type PcmParams, WavFileOutput, WavFileInput, ToneInput, callbackOutput, parseWav, DISCARD_OUTPUT, SILENT_INPUT } from './pcm-host.js';
export type { SoundChmapConfig, SoundJackConfig, SoundStreamConfig } from './sound-topology.js';
