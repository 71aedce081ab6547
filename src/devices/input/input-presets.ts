/**
 * Ready-made input profiles, close to what QEMU's virtio-keyboard / virtio-mouse / virtio-tablet
 * report, so a Linux guest's virtio_input driver makes the usual evdev devices of them.
 */
import { EvCode, EvType, INPUT_BUS_VIRTUAL } from '../../spec/input.js';
import type { InputDeviceProfile } from './input-config.js';

/** Keyboard keys KEY_ESC (1) .. KEY_MICMUTE (248): the standard key range. */
const KEYBOARD_KEYS = Array.from({ length: 248 }, (_, i) => i + 1);
const BUTTONS = [EvCode.BTN_LEFT, EvCode.BTN_RIGHT, EvCode.BTN_MIDDLE];
const IDS = (product: number) => ({ bustype: INPUT_BUS_VIRTUAL, vendor: 0x0627, product, version: 1 });

/** A keyboard (5.8): keys KEY_ESC..KEY_MICMUTE and the Num/Caps/Scroll Lock LEDs, named `name`. */
export function keyboardProfile(name = 'virtio-ts keyboard'): InputDeviceProfile {
  return {
    name,
    serial: 'vts-kbd-0',
    ids: IDS(0x0001),
    events: {
      [EvType.KEY]: KEYBOARD_KEYS,
      [EvType.LED]: [EvCode.LED_NUML, EvCode.LED_CAPSL, EvCode.LED_SCROLLL],
    },
  };
}

/** A relative mouse (5.8): left, right and middle buttons, REL_X/REL_Y motion and wheel, named `name`. */
export function mouseProfile(name = 'virtio-ts mouse'): InputDeviceProfile {
  return {
    name,
    ids: IDS(0x0002),
    events: {
      [EvType.KEY]: BUTTONS,
      [EvType.REL]: [EvCode.REL_X, EvCode.REL_Y, EvCode.REL_WHEEL],
    },
  };
}

/** Absolute pointer with axes 0..`max` (QEMU's tablet uses 0..32767). */
export function tabletProfile(name = 'virtio-ts tablet', max = 0x7fff): InputDeviceProfile {
  return {
    name,
    ids: IDS(0x0003),
    events: {
      [EvType.KEY]: BUTTONS,
      [EvType.ABS]: [EvCode.ABS_X, EvCode.ABS_Y],
    },
    abs: {
      [EvCode.ABS_X]: { min: 0, max },
      [EvCode.ABS_Y]: { min: 0, max },
    },
  };
}

/** Presets by name (CLI and createDevice). */
export const INPUT_PRESETS = {
  /** A keyboard: EV_KEY keys and the NumLock/CapsLock/ScrollLock LEDs (keyboardProfile). */
  keyboard: keyboardProfile,
  /** A relative mouse: buttons, REL_X / REL_Y and the wheel (mouseProfile). */
  mouse: mouseProfile,
  /** An absolute pointer: buttons and ABS_X / ABS_Y over 0..32767 (tabletProfile). */
  tablet: tabletProfile,
} as const;
/** The name of a preset: `keyboard`, `mouse` or `tablet`. */
export type InputPresetName = keyof typeof INPUT_PRESETS;
