/**
 * virtio-input (5.8): struct virtio_input_event (type among the evdev types the spec names
 * mostly - EV_LED, EV_SND, EV_KEY, EV_SYN, EV_REP, EV_MSC -, any u16 sometimes; code among
 * the LEDs, a key, a button, 1023 mostly, any sometimes; value 0 / 1 / 2 / -1 / the i32
 * extremes mostly, any sometimes) then raw bytes on the statusq, and buffers on the eventq.
 * The host is an echo peripheral: it answers every status event with an input update carrying
 * it back (the event and SYN_REPORT), so the driver's status events drive the eventq: held
 * buffers filled, events waiting for buffers, whole updates dropped once the waiting room (7
 * events here: three echoed updates, then a fourth does not fit) is full (device/input/2..4).
 * A status event is cut short of its 8 bytes sometimes.
 *
 * The configuration space is the device's other parser of guest input (5.8.4): before an eventq
 * buffer, sometimes, the input writes select and subsel (a defined selector and subselector
 * mostly, any byte sometimes; as two byte writes, one 16-bit write, only select, or bytes at any
 * offset: a driver writing other fields, driver/input/2 broken), through the core's config
 * access as a transport does, and reads the whole structure back. Checked: select and subsel read back as written, size at most 128, and size 0 with a
 * zero union for a combination the device does not support (device/input/1).
 *
 * Checks (device-chains): no throw, every statusq chain completed, used.len within the writable
 * bytes, guards. The eventq is held (buffers wait for events). The status events the host got
 * are part of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { InputDevice } from '../../src/devices/input/input-device.js';
import { EvCode, EvType, INPUT_BUS_VIRTUAL, INPUT_EVENTQ, INPUT_STATUSQ, InputConfig, InputConfigSelect, InputProp } from '../../src/spec/input.js';

const TYPES = [EvType.LED, EvType.SND, EvType.KEY, EvType.SYN, EvType.REP, EvType.MSC, EvType.MAX];
const CODES = [EvCode.LED_NUML, EvCode.LED_CAPSL, EvCode.LED_SCROLLL, 3, EvCode.KEY_A, EvCode.BTN_LEFT, 1023];
const VALUES = [1, 0, 2, 0xffff_ffff, 0x7fff_ffff, 0x8000_0000];
const SELECTS = [...Object.values(InputConfigSelect), 0x13, 0xff];
/** Subselectors: the event types and axes the profile has, and ones it has not. */
const SUBSELS = [0, EvType.KEY, EvType.REL, EvType.ABS, EvType.LED, EvType.SND, 1, 0x1f, 0xff];

/** A value among `choices` (by a byte's index) mostly, any u32 when the byte is 0xf0 or more. */
function choose(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u32();
}

const configImage = new Uint8Array(InputConfig.BYTES);

/** Writes select / subsel in one of the ways a driver (or a broken one) may, reads the structure back, checks it. */
function configStep(r: ByteReader, core: DeviceCore): void {
  const select = choose(r, SELECTS) & 0xff;
  const subsel = choose(r, SUBSELS) & 0xff;
  const form = r.below(4);
  if (form === 0) {
    core.writeConfig(InputConfig.SUBSEL, 1, subsel);
    core.writeConfig(InputConfig.SELECT, 1, select);
  } else if (form === 1) {
    core.writeConfig(InputConfig.SELECT, 2, select | (subsel << 8));
  } else if (form === 2) {
    core.writeConfig(InputConfig.SELECT, 1, select);
  } else {
    core.writeConfigBytes(r.below(InputConfig.BYTES + 8), r.bytes(r.below(12)));
    return;
  }
  core.readConfigBytes(0, configImage);
  check(configImage[InputConfig.SELECT] === select, 'protocol', `select reads ${configImage[InputConfig.SELECT]} after writing ${select}`);
  if (form !== 2) check(configImage[InputConfig.SUBSEL] === subsel, 'protocol', `subsel reads ${configImage[InputConfig.SUBSEL]} after writing ${subsel}`);
  const size = configImage[InputConfig.SIZE]!;
  check(size <= InputConfig.U_BYTES, 'protocol', `size ${size} above the 128-byte union`);
  if (size === 0) check(configImage.subarray(InputConfig.U).every((b) => b === 0), 'protocol', `select ${select} subsel ${subsel}: size 0 but the union is not zero (device/input/1)`);
}

function header(queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  if (queue === INPUT_EVENTQ) {
    if ((r.u8() & 3) === 0) configStep(r, core);
    return new Uint8Array(0);
  }
  const event = new ByteWriter().u16(choose(r, TYPES)).u16(choose(r, CODES)).u32(choose(r, VALUES)).finish();
  // Whole mostly; shorter than an event (driver/input/6 broken) when the byte is 0xf8 or more.
  const v = r.u8();
  return v < 0xf8 ? event : event.subarray(0, v & 7);
}

/** The status events the host got: count and a running hash (the host's state). */
const statusLog = new Uint32Array(2);

const spec: DeviceChainsSpec = {
  device: () => {
    const d = new InputDevice({
      profile: {
        name: 'virtio-ts fuzz keyboard+pointer',
        serial: 'vts-fuzz-0',
        ids: { bustype: INPUT_BUS_VIRTUAL, vendor: 0x0627, product: 0x00f0, version: 1 },
        properties: [InputProp.POINTER],
        events: {
          [EvType.KEY]: [EvCode.KEY_ESC, EvCode.KEY_A, EvCode.KEY_ENTER, EvCode.BTN_LEFT, EvCode.BTN_RIGHT],
          [EvType.REL]: [EvCode.REL_X, EvCode.REL_Y, EvCode.REL_WHEEL],
          [EvType.ABS]: [EvCode.ABS_X, EvCode.ABS_Y],
          [EvType.LED]: [EvCode.LED_NUML, EvCode.LED_CAPSL, EvCode.LED_SCROLLL],
          [EvType.SND]: [1],
        },
        abs: { [EvCode.ABS_X]: { min: 0, max: 0x7fff }, [EvCode.ABS_Y]: { min: -100, max: 100, fuzz: 1, flat: 2, res: 3 } },
      },
      maxQueuedEvents: 7,
      queueSize: 8,
    });
    // The echo peripheral: every status event comes back as an update (the guest's value as is).
    d.onStatus = (type, code, value) => {
      statusLog[0]!++;
      statusLog[1] = (Math.imul(statusLog[1]!, 31) + type * 0x10000 + code + Math.imul(value, 0x9e3779b1)) >>> 0;
      d.sendUpdate([{ type, code, value }]);
    };
    return { device: d, resetHost: () => statusLog.fill(0), hostState: () => [new Uint8Array(statusLog.buffer)] };
  },
  queues: 2,
  heldQueues: [INPUT_EVENTQ],
  header,
};

// ---- seeds (choice bytes are indexes into the lists above) ----

const buffer = (config: readonly number[] = []): SeedChain => ({ queue: INPUT_EVENTQ, header: (w) => w.u8(config.length > 0 ? 0 : 1).bytes(config), writable: 8, emptyMessage: true });
const status = (type: number, code: number, value: number): SeedChain => ({
  queue: INPUT_STATUSQ,
  header: (w) => w.u8(TYPES.indexOf(type as never)).u8(CODES.indexOf(code as never)).u8(VALUES.indexOf(value)).u8(0),
  writable: 0,
});
/** A config query: select and subsel as two byte writes (form 0). */
const query = (select: number, subsel: number): number[] => [SELECTS.indexOf(select as never), SUBSELS.indexOf(subsel), 0];

function seeds(): Uint8Array[] {
  return [
    // Eventq buffers, then Num Lock and Caps Lock on: the echoes fill the buffers.
    deviceChainsSeed(true, [[buffer(), buffer(), buffer(), buffer()], [status(EvType.LED, EvCode.LED_NUML, 1), status(EvType.LED, EvCode.LED_CAPSL, 1)]], spec),
    // Status events first (their echoes wait), then buffers that take them at once.
    deviceChainsSeed(false, [[status(EvType.SND, 1, 1), status(EvType.LED, EvCode.LED_SCROLLL, 0)], [buffer(), buffer()]], spec),
    // The driver's probe: name, EV_BITS of EV_KEY and EV_ABS, ABS_INFO of ABS_Y, an unsupported selector, with eventq buffers.
    deviceChainsSeed(true, [
      [
        buffer(query(InputConfigSelect.ID_NAME, 0)),
        buffer(query(InputConfigSelect.EV_BITS, EvType.KEY)),
        buffer(query(InputConfigSelect.ABS_INFO, 1)),
        buffer(query(InputConfigSelect.ID_DEVIDS, 0)),
      ],
      [buffer(query(0x13, 0)), status(EvType.LED, EvCode.LED_NUML, 0)],
    ], spec),
  ];
}

export const target: FuzzTarget = { name: 'input-events', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
