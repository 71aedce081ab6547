/**
 * virtio-gpio (5.18): virtio_gpio_request messages on the request queue (type: GET_LINE_NAMES,
 * GET_DIRECTION, SET_DIRECTION, GET_VALUE, SET_VALUE, SET_IRQ_TYPE mostly, any u16 sometimes; gpio
 * among the 6 lines and 2 past them mostly, any u16 sometimes; value the type's defined values
 * mostly, any u32 sometimes) with room for the response, and virtio_gpio_irq_request buffers (a
 * line number) on the event queue, which the device holds while the line's interrupt is
 * unmasked (5.18.7): the event queue is a held queue.
 *
 * The host side is the lines' input levels, which only the host drives: before an eventq buffer
 * the input may flip the level the host drives on a line (`setInput`), so edge interrupts latch
 * and fire. The levels outlive a device reset; they are put back as built before each input, and
 * every line's state is part of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { GpioDevice } from '../../src/devices/gpio/gpio-device.js';
import type { GpioLineSpec } from '../../src/devices/gpio/gpio-line.js';
import { GpioDirection, GpioIrqType, GpioMsg, GpioQueue } from '../../src/spec/gpio.js';

const LINES: readonly GpioLineSpec[] = [
  { name: 'led', direction: GpioDirection.OUT },
  { name: null },
  { name: 'button', direction: GpioDirection.IN, input: 1 },
  { name: 'irq-a', direction: GpioDirection.IN },
  { name: 'irq-b', direction: GpioDirection.IN, input: 1 },
  {},
];
const TYPES = Object.values(GpioMsg);
/** Defined values per message type (the rest take 0). */
const VALUES: Readonly<Record<number, readonly number[]>> = {
  [GpioMsg.SET_DIRECTION]: Object.values(GpioDirection),
  [GpioMsg.SET_VALUE]: [0, 1],
  [GpioMsg.SET_IRQ_TYPE]: Object.values(GpioIrqType),
};

/** The device the current input runs on (set as its rig starts): the host's level flips go to it. */
let current: GpioDevice | null = null;

function line(r: ByteReader, any: boolean): number {
  return any ? r.u16() : r.below(LINES.length + 2);
}

/**
 * requestq selector bits: 0 any type, 1 any gpio, 2 any value. eventq: 0 any gpio, 1 flip the
 * host's level on a line first.
 */
function header(queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  if (queue === GpioQueue.EVENTQ) {
    if ((sel & 2) !== 0 && current) {
      const l = r.below(LINES.length);
      current.setInput(l, current.line(l).input === 1 ? 0 : 1);
    }
    return new ByteWriter().u16(line(r, (sel & 1) !== 0)).finish();
  }
  const type = (sel & 1) !== 0 ? r.u16() : r.pick(TYPES);
  const gpio = line(r, (sel & 2) !== 0);
  const values = VALUES[type] ?? [0];
  return new ByteWriter()
    .u16(type)
    .u16(gpio)
    .u32((sel & 4) !== 0 ? r.u32() : r.pick(values))
    .finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = new GpioDevice(LINES, { queueSize: 16 });
    const state = new Uint8Array(LINES.length * 8);
    return {
      device,
      resetHost: () => {
        LINES.forEach((l, i) => device.setInput(i, l.input ?? 0));
        current = device;
      },
      hostState: () => {
        LINES.forEach((_, i) => {
          const l = device.line(i);
          state.set([l.direction, l.level, l.outputValue, l.input, l.irqType, l.irqLatched ? 1 : 0, l.irqUnmasked ? 1 : 0, 0], i * 8);
        });
        return [state];
      },
    };
  },
  queues: 2,
  heldQueues: [GpioQueue.EVENTQ],
  header,
  queueSize: 16,
};

/** requestq shaper input: selector 0, the type's index, the line, the value's index (when there is a choice). */
function msg(type: number, gpio: number, value = 0): number[] {
  const values = VALUES[type];
  return [0, TYPES.indexOf(type as never), gpio, ...(values ? [values.indexOf(value)] : [])];
}

/**
 * Seeds: line names, direction and value of the led, the led driven high; line 3 made an input
 * with a rising-edge interrupt and its eventq buffer, then the host raises the level (the buffer
 * comes back VALID); a level-high interrupt on the button (active at once).
 */
function seeds(): Uint8Array[] {
  const ev = (gpio: number, flip = -1): number[] => (flip < 0 ? [0, gpio] : [2, flip, gpio]);
  return [
    deviceChainsSeed(false, [[{ queue: 0, header: msg(GpioMsg.GET_LINE_NAMES, 0), writable: 64 }, { queue: 0, header: msg(GpioMsg.GET_DIRECTION, 0), writable: 4 }], [{ queue: 0, header: msg(GpioMsg.SET_VALUE, 0, 1), writable: 4 }, { queue: 0, header: msg(GpioMsg.GET_VALUE, 0), writable: 4 }]], spec),
    deviceChainsSeed(true, [[{ queue: 0, header: msg(GpioMsg.SET_DIRECTION, 3, GpioDirection.IN), writable: 4 }, { queue: 0, header: msg(GpioMsg.SET_IRQ_TYPE, 3, GpioIrqType.EDGE_RISING), writable: 4 }], [{ queue: 1, header: ev(3), writable: 1 }], [{ queue: 1, header: ev(3, 3), writable: 1 }]], spec),
    deviceChainsSeed(true, [[{ queue: 1, header: ev(2), writable: 1 }, { queue: 0, header: msg(GpioMsg.SET_IRQ_TYPE, 2, GpioIrqType.LEVEL_HIGH), writable: 4 }, { queue: 1, header: ev(2), writable: 1 }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'gpio-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
