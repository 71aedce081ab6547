import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { GPIO_CONFIG_SIZE, GpioDirection, GpioF, GpioIrqStatus, GpioIrqType, GpioMsg, GpioStatus, decodeGpioNames, encodeGpioNames } from '../../spec/gpio.js';
import { createTestPair } from '../blk/test-pair.js';
import { GpioDevice } from './gpio-device.js';
import type { GpioLineSpec } from './gpio-line.js';
import { RawGpio, settle } from './gpio-test-support.js';

const T = { timeout: 10_000 };
const { OK, ERR } = GpioStatus;
const { VALID, INVALID } = GpioIrqStatus;
const LINES: GpioLineSpec[] = [{ name: 'led' }, { name: 'button', direction: GpioDirection.IN }, {}, { name: 'reset', direction: GpioDirection.OUT }];

function setup(opts: { lines?: GpioLineSpec[]; irq?: boolean; accept?: bigint; littleEndian?: boolean; packed?: boolean } = {}) {
  const outputs: string[] = [];
  const device = new GpioDevice(opts.lines ?? LINES, { irq: opts.irq ?? true, onOutput: (l, v) => outputs.push(`${l}=${v}`) });
  const pair = createTestPair(device, {
    packed: opts.packed ?? false,
    ...(opts.accept !== undefined ? { accept: opts.accept } : {}),
    ...(opts.littleEndian !== undefined ? { littleEndian: opts.littleEndian } : {}),
  });
  return { device, pair, outputs, raw: new RawGpio(pair.ctx) };
}

function config(device: GpioDevice, le = true): { ngpio: number; padding: number; namesSize: number } {
  const b = new Uint8Array(GPIO_CONFIG_SIZE).fill(0xee);
  device.readConfig(0, b, F.VERSION_1, le);
  const v = new DataView(b.buffer);
  return { ngpio: v.getUint16(0, le), padding: v.getUint16(2, le), namesSize: v.getUint32(4, le) };
}

/** The status and value of a plain response. */
const sv = (r: { response: Uint8Array }): [number, number] => [r.response[0]!, r.response[1]!];

describe('GpioDevice', T, () => {
  it('5.18: device id 41, two queues, the IRQ feature; lines refused when names are not unique 7-bit ASCII (device/gpio/5)', () => {
    const d = new GpioDevice(LINES);
    assert.equal(d.deviceId, DeviceId.GPIO);
    assert.deepEqual(d.queueMaxSizes, [256, 256]);
    assert.equal(d.offeredFeatures & GpioF.IRQ, GpioF.IRQ);
    assert.equal(new GpioDevice(LINES, { irq: false }).offeredFeatures & GpioF.IRQ, 0n);
    const bad = (e: unknown): boolean => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT;
    assert.throws(() => new GpioDevice([{ name: 'a' }, { name: 'a' }]), bad);
    assert.throws(() => new GpioDevice([{ name: 'caf\u00e9' }]), bad);
    assert.throws(() => new GpioDevice([{ name: 'a\0b' }]), bad);
    assert.throws(() => new GpioDevice([]), bad);
    assert.equal(d.lineIndex('reset'), 3);
    assert.equal(d.lineIndex('2'), 2);
    assert.throws(() => d.lineIndex('nope'), bad);
  });

  it('device/gpio/2 device/gpio/4 device/gpio/5: every config field set; gpio_names_size is the size of the names block, zero-terminated and unique', () => {
    const d = new GpioDevice(LINES);
    const names = encodeGpioNames(['led', 'button', null, 'reset']);
    assert.deepEqual(config(d), { ngpio: 4, padding: 0, namesSize: names.length });
    assert.equal(names.length, 4 + 7 + 1 + 6);
    assert.deepEqual(decodeGpioNames(names, 4), ['led', 'button', null, 'reset']);
    assert.deepEqual(config(d, false), { ngpio: 4, padding: 0, namesSize: names.length }, 'legacy big-endian guest');
    // A partial read sees the same bytes.
    const part = new Uint8Array(2);
    d.readConfig(4, part, F.VERSION_1, true);
    assert.equal(part[0], names.length);
  });

  it('device/gpio/3: no names, gpio_names_size 0 and GET_LINE_NAMES answers ERR', async () => {
    const { device, raw } = setup({ lines: [{}, {}] });
    assert.deepEqual(config(device), { ngpio: 2, padding: 0, namesSize: 0 });
    const r = await raw.request(GpioMsg.GET_LINE_NAMES, 0, 0, 8);
    assert.equal(r.response[0], ERR);
  });

  for (const packed of [false, true]) {
    it(`device/gpio/1: every response field is set: GET_LINE_NAMES status and the whole block, others status and value (${packed ? 'packed' : 'split'})`, async () => {
      const { raw } = setup({ packed });
      const names = encodeGpioNames(['led', 'button', null, 'reset']);
      const n = await raw.request(GpioMsg.GET_LINE_NAMES, 0, 0, 1 + names.length);
      assert.equal(n.usedLen, 1 + names.length);
      assert.deepEqual(n.response, Uint8Array.from([OK, ...names]));
      for (const [type, gpio, value, want] of [
        [GpioMsg.GET_DIRECTION, 1, 0, [OK, GpioDirection.IN]],
        [GpioMsg.SET_VALUE, 0, 1, [OK, 0]],
        [GpioMsg.GET_VALUE, 3, 0, [OK, 0]],
        [GpioMsg.GET_DIRECTION, 9, 0, [ERR, 0]],
      ] as const) {
        const r = await raw.request(type, gpio, value);
        assert.equal(r.usedLen, 2);
        assert.deepEqual(sv(r), want, `type ${type} line ${gpio}`);
      }
    });
  }

  it('5.18.6: directions and values: SET_VALUE is kept until the line is an output; the host sees the driven level; inputs read the host level', async () => {
    const { raw, device, outputs } = setup();
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_VALUE, 0, 1)), [OK, 0]);
    assert.deepEqual(outputs, [], 'not an output yet');
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_DIRECTION, 0, GpioDirection.OUT)), [OK, 0]);
    assert.deepEqual(outputs, ['0=1']);
    assert.equal(device.line('led').level, 1);
    assert.deepEqual(sv(await raw.request(GpioMsg.GET_VALUE, 0, 0)), [OK, 1]);
    device.setInput('button', 1);
    assert.deepEqual(sv(await raw.request(GpioMsg.GET_VALUE, 1, 0)), [OK, 1]);
    // Bad values and directions: ERR, nothing changes.
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_VALUE, 0, 2)), [ERR, 0]);
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_DIRECTION, 0, 3)), [ERR, 0]);
    assert.deepEqual(sv(await raw.request(0x77, 0, 0)), [ERR, 0]);
    assert.deepEqual(sv(await raw.request(GpioMsg.GET_VALUE, 4, 0)), [ERR, 0]);
    assert.equal(device.line('led').direction, GpioDirection.OUT);
  });

  it('device/gpio/6 device/gpio/7: messages for one line are answered in the order received, several in flight at once', async () => {
    const { raw, outputs } = setup();
    await raw.request(GpioMsg.SET_DIRECTION, 0, GpioDirection.OUT);
    const rs = await Promise.all([
      raw.request(GpioMsg.SET_VALUE, 0, 1),
      raw.request(GpioMsg.GET_VALUE, 0, 0),
      raw.request(GpioMsg.SET_VALUE, 0, 0),
      raw.request(GpioMsg.GET_VALUE, 0, 0),
      raw.request(GpioMsg.GET_DIRECTION, 1, 0),
    ]);
    assert.deepEqual(rs.map(sv), [[OK, 0], [OK, 1], [OK, 0], [OK, 0], [OK, GpioDirection.IN]]);
    assert.deepEqual(outputs, ['0=1', '0=0']);
  });

  it('device/gpio/8: direction none discards the line\'s state: output value, interrupt type, latch, the held eventq buffer', async () => {
    const { raw, device } = setup();
    await raw.request(GpioMsg.SET_VALUE, 1, 1);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_RISING);
    device.setInput('button', 1); // latched (masked)
    assert.equal(device.line('button').irqLatched, true);
    const ev = raw.event(1);
    await settle();
    // The latch was delivered at unmask; queue another buffer and then set direction none.
    assert.deepEqual((await ev).response, Uint8Array.of(VALID));
    const held = raw.event(1);
    await settle();
    assert.equal(device.line('button').irqUnmasked, true);
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_DIRECTION, 1, GpioDirection.NONE)), [OK, 0]);
    assert.deepEqual((await held).response, Uint8Array.of(INVALID));
    const l = device.line('button');
    assert.deepEqual([l.direction, l.outputValue, l.irqType, l.irqLatched, l.irqUnmasked], [GpioDirection.NONE, 0, GpioIrqType.NONE, false, false]);
    assert.deepEqual(sv(await raw.request(GpioMsg.GET_DIRECTION, 1, 0)), [OK, GpioDirection.NONE]);
  });

  it('device/gpio/9 device/gpio/12: an edge while enabled and masked is latched and delivered at unmask; nothing is sent before both enable and unmask', async () => {
    const { raw, device } = setup();
    // Unmasked before enabled: the buffer comes back INVALID at once (5.18.6.6).
    assert.deepEqual((await raw.event(1)).response, Uint8Array.of(INVALID));
    // Not enabled: an edge is not latched.
    device.setInput('button', 1);
    device.setInput('button', 0);
    assert.equal(device.line('button').irqLatched, false);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_FALLING);
    device.setInput('button', 1); // rising: not this type
    assert.equal(device.line('button').irqLatched, false);
    device.setInput('button', 0); // falling, masked: latched
    assert.equal(device.line('button').irqLatched, true);
    assert.equal(device.stats.interrupts, 0);
    const r = await raw.event(1);
    assert.deepEqual([r.usedLen, r.response[0]], [1, VALID]);
    assert.equal(device.line('button').irqLatched, false);
    // Unmasked and enabled: an edge is delivered at once; the buffer's return masks again.
    const next = raw.event(1);
    await settle();
    device.setInput('button', 1);
    device.setInput('button', 0);
    assert.deepEqual((await next).response, Uint8Array.of(VALID));
    device.setInput('button', 1);
    device.setInput('button', 0);
    assert.equal(device.line('button').irqLatched, true, 'masked again: latched');
    assert.equal(device.stats.interrupts, 2);
  });

  it('device/gpio/10: a level interrupt is not latched while masked; at unmask it fires only if the level is still active', async () => {
    const { raw, device } = setup();
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.LEVEL_HIGH);
    device.setInput('button', 1);
    device.setInput('button', 0);
    assert.equal(device.line('button').irqLatched, false);
    const waiting = raw.event(1);
    await settle();
    assert.equal(device.line('button').irqUnmasked, true, 'level low: nothing to report');
    device.setInput('button', 1);
    assert.deepEqual((await waiting).response, Uint8Array.of(VALID));
    // Still high at unmask: reported again at once.
    assert.deepEqual((await raw.event(1)).response, Uint8Array.of(VALID));
    // LEVEL_LOW after NONE (driver/gpio/9's order): active at once when the buffer arrives.
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.NONE);
    device.setInput('button', 0);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.LEVEL_LOW);
    assert.deepEqual((await raw.event(1)).response, Uint8Array.of(VALID));
    assert.equal(device.stats.interrupts, 3);
  });

  it('device/gpio/11 device/gpio/13: disabling drops the latch and returns the held buffer INVALID', async () => {
    const { raw, device } = setup();
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_BOTH);
    device.setInput('button', 1);
    assert.equal(device.line('button').irqLatched, true);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.NONE);
    assert.equal(device.line('button').irqLatched, false, 'latch discarded');
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_BOTH);
    const held = raw.event(1);
    await settle();
    assert.equal(device.line('button').irqUnmasked, true, 'the old latch did not fire');
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.NONE)), [OK, 0]);
    const r = await held;
    assert.deepEqual([r.usedLen, r.response[0]], [1, INVALID]);
    assert.equal(device.line('button').irqUnmasked, false);
  });

  it('IRQ messages without the feature, bad trigger types, output lines, duplicate and malformed eventq buffers: ERR / INVALID, never a throw', async () => {
    const noIrq = setup({ accept: F.VERSION_1 });
    assert.deepEqual(sv(await noIrq.raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_RISING)), [ERR, 0]);
    const { raw, device, pair } = setup();
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_IRQ_TYPE, 1, 5)), [ERR, 0]);
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_IRQ_TYPE, 1, 0x10)), [ERR, 0]);
    assert.deepEqual(sv(await raw.request(GpioMsg.SET_IRQ_TYPE, 3, GpioIrqType.EDGE_RISING)), [ERR, 0], 'reset is an output');
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_RISING);
    const first = raw.event(1);
    await settle();
    // A second pair for the same line (driver/gpio/13) comes back at once; the first stays.
    assert.deepEqual((await raw.event(1)).response, Uint8Array.of(INVALID));
    assert.equal(device.line('button').irqUnmasked, true);
    assert.deepEqual((await raw.event(7)).response, Uint8Array.of(INVALID), 'no line 7');
    assert.deepEqual((await raw.send(1, Uint8Array.of(1), 1)).response, Uint8Array.of(INVALID), 'short irq request');
    assert.equal((await raw.send(1, Uint8Array.of(1, 0), 0)).usedLen, 0, 'no room for a status');
    // Making the line an output disables its interrupt (driver/gpio/7 kept by the device).
    await raw.request(GpioMsg.SET_DIRECTION, 1, GpioDirection.OUT);
    assert.deepEqual((await first).response, Uint8Array.of(INVALID));
    // Short and unreadable requests on the requestq.
    assert.deepEqual((await raw.send(0, Uint8Array.of(4, 0, 0), 2)).response, Uint8Array.of(ERR, 0));
    assert.deepEqual((await raw.send(0, new Uint8Array(8), 1)).response, Uint8Array.of(ERR));
    assert.equal((await raw.send(0, new Uint8Array(8), 0)).usedLen, 0);
    // A names response shorter than the block: ERR (status and value).
    assert.deepEqual((await raw.request(GpioMsg.GET_LINE_NAMES, 0, 0, 4)).response, Uint8Array.of(ERR, 0, 0xee, 0xee));
    // A storm of random requests: all answered, no reset.
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 200; i++) {
      const r = await raw.request(rnd(8), rnd(6), rnd(4) === 0 ? rnd(0x10000) : rnd(10), rnd(4));
      assert.ok(r.usedLen <= 3);
    }
    assert.deepEqual(pair.resets, []);
  });

  it('legacy big-endian guest: requests and eventq buffers in guest byte order', async () => {
    const { raw, device } = setup({ littleEndian: false, accept: GpioF.IRQ });
    assert.deepEqual(sv(await raw.request(GpioMsg.GET_DIRECTION, 1, 0)), [OK, GpioDirection.IN]);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_RISING);
    const ev = raw.event(1);
    await settle();
    device.setInput(1, 1);
    assert.deepEqual((await ev).response, Uint8Array.of(VALID));
  });

  it('reset: lines back to their configured directions, interrupts off, held buffers dropped', async () => {
    const { raw, device } = setup();
    await raw.request(GpioMsg.SET_DIRECTION, 0, GpioDirection.OUT);
    await raw.request(GpioMsg.SET_IRQ_TYPE, 1, GpioIrqType.EDGE_RISING);
    void raw.event(1);
    await settle();
    device.reset();
    assert.equal(device.line('led').direction, GpioDirection.NONE);
    assert.equal(device.line('button').direction, GpioDirection.IN);
    assert.equal(device.line('button').irqType, GpioIrqType.NONE);
    assert.equal(device.line('button').irqUnmasked, false);
  });
});
