import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import {
  SOUND_CTL_ACCESS_DEFINED,
  SOUND_CTL_EVENT_MASK_DEFINED,
  SOUND_CTL_MAX_COUNT,
  SOUND_TLV_DB_SCALE_MUTE,
  SoundCode,
  SoundCtlAccess,
  SoundCtlEventMask,
  SoundCtlRole,
  SoundCtlType,
  SoundDirection,
  SoundPcmFormat,
  SoundPcmRate,
  SoundQueue,
  SoundStatus,
  SoundTlvType,
} from '../../spec/sound.js';
import type { PcmInput, PcmOutput } from './pcm-host.js';
import { SoundDevice } from './sound-device.js';
import { SoundDriver } from './sound-driver.js';
import type { SoundControlConfig } from './sound-elements.js';
import { RawQueue, soundPair, soundPairOf, u32, words } from './sound-test-support.js';

const T = { timeout: 30_000 };

/** S16 samples and what -6 dB (volume 88) makes of them, worked out by hand (round half up of s x 10^(-6/20)). */
const S16_IN = [0, 1, -1, 100, -100, 1000, -1000, 12345, 32767, -32768];
const S16_MINUS_6DB = [0, 1, -1, 50, -50, 501, -501, 6187, 16422, -16423];
/** U8 samples (128 = silence) and the same gain around the midpoint. */
const U8_IN = [0, 1, 64, 127, 128, 129, 200, 255];
const U8_MINUS_6DB = [64, 64, 96, 127, 128, 129, 164, 192];

function s16Bytes(samples: readonly number[], repeat: number): Uint8Array {
  const b = Buffer.alloc(samples.length * 2 * repeat);
  for (let r = 0; r < repeat; r++) samples.forEach((s, i) => b.writeInt16LE(s, (r * samples.length + i) * 2));
  return new Uint8Array(b);
}
function u8Bytes(samples: readonly number[], repeat: number): Uint8Array {
  return Uint8Array.from({ length: samples.length * repeat }, (_, i) => samples[i % samples.length]!);
}

function recorder(): { output: PcmOutput; take: () => Buffer } {
  let frames: Uint8Array[] = [];
  return {
    output: { write: (_s, b, o, n) => void frames.push(b.slice(o, o + n)) },
    take: () => {
      const all = Buffer.concat(frames);
      frames = [];
      return all;
    },
  };
}

/** Host input that repeats `pattern` (as bytes). */
function patternInput(): { input: PcmInput; set: (p: Uint8Array) => void } {
  let pattern: Uint8Array = new Uint8Array([0]);
  let pos = 0;
  return {
    set: (p) => {
      pattern = p;
      pos = 0;
    },
    input: {
      read(_s, b, o, n) {
        for (let i = 0; i < n; i++) {
          b[o + i] = pattern[pos]!;
          pos = (pos + 1) % pattern.length;
        }
      },
    },
  };
}

async function play(drv: SoundDriver, format: number, frames: Uint8Array): Promise<void> {
  await drv.setParams(0, { bufferBytes: 320, periodBytes: 80, channels: 1, format, rate: SoundPcmRate.R8000 });
  await drv.prepare(0);
  const w = drv.write(0, frames);
  await drv.start(0);
  assert.ok((await w).every((r) => r.status === SoundStatus.OK));
  await drv.stop(0);
  await drv.release(0);
}

async function record(drv: SoundDriver, format: number, bytes: number): Promise<Buffer> {
  await drv.setParams(1, { bufferBytes: 320, periodBytes: 80, channels: 1, format, rate: SoundPcmRate.R8000 });
  await drv.prepare(1);
  const r = drv.readMessages(1, bytes);
  await drv.start(1);
  const got = await r;
  assert.ok(got.every((m) => m.status === SoundStatus.OK));
  await drv.stop(1);
  await drv.release(1);
  return Buffer.concat(got.map((m) => m.frames));
}

describe('SoundDevice control elements', T, () => {
  it('device/sound/13 device/sound/14 device/sound/15 device/sound/16: CTL_INFO and ENUM_ITEMS set only defined role/type/access, a count in range, 0-terminated ASCII names, unique (name, index)', async () => {
    const device = new SoundDevice();
    device.addControl({ name: 'Big Counter', type: SoundCtlType.INTEGER64, count: 64, min: -5n, max: 1n << 40n, step: 5n });
    device.addControl({ name: 'Blob', type: SoundCtlType.BYTES, count: 512, access: SoundCtlAccess.READ });
    device.addControl({ name: 'IEC958 Playback Default', type: SoundCtlType.IEC958, access: SoundCtlAccess.READ | SoundCtlAccess.VOLATILE });
    const { pair } = soundPairOf(device);
    const drv = new SoundDriver(pair.ctx);
    assert.equal(drv.config.controls, 8);
    const infos = await drv.controlElements.info();
    assert.equal(infos.length, 8);
    const seen = new Set<string>();
    for (const e of infos) {
      // device/sound/13
      assert.ok(e.role === 0 || ((e.role >> 1) >= SoundCtlRole.VOLUME && (e.role >> 1) <= SoundCtlRole.GAIN && (e.role & 1) <= 1), `role ${e.role}`);
      assert.ok(e.type <= SoundCtlType.IEC958, `type ${e.type}`);
      assert.equal(e.access & ~SOUND_CTL_ACCESS_DEFINED, 0);
      // device/sound/14, device/sound/15
      assert.ok(e.count >= 1 && e.count <= SOUND_CTL_MAX_COUNT[e.type]!, `${e.name}: count ${e.count}`);
      assert.match(e.name, /^[\x20-\x7e]{1,43}$/);
      assert.deepEqual([...e.padding], [0, 0, 0, 0]);
      // device/sound/16
      const key = `${e.name}\0${e.index}`;
      assert.ok(!seen.has(key), `duplicate ${key}`);
      seen.add(key);
    }
    const vol = infos[device.streamControls(0).volume]!;
    assert.deepEqual([vol.name, vol.index, vol.role, vol.type, vol.min, vol.max, vol.step], ['PCM Playback Volume', 0, (SoundCtlRole.VOLUME << 1) | SoundDirection.OUTPUT, SoundCtlType.INTEGER, 0, 100, 1]);
    assert.deepEqual([infos[device.streamControls(1).volume]!.name, infos[device.streamControls(1).volume]!.index], ['PCM Capture Volume', 1]);
    assert.deepEqual([infos[5]!.min, infos[5]!.max, infos[5]!.step], [-5n, 1n << 40n, 5n]);
    const src = device.streamControls(1).source!;
    assert.deepEqual(await drv.controlElements.enumItems(src), ['Host Input', 'Silence']);
    // The raw name field: ASCII then zeros to the end of its 44 bytes (raw requests after the driver's: they share the queue).
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const r = await raw.submit([words(true, SoundCode.R_CTL_INFO, 0, 1, 96)], [4 + 96]);
    const name = r.ins[0]!.subarray(4 + 24, 4 + 68);
    assert.equal(Buffer.from(name.subarray(0, 19)).toString('latin1'), 'PCM Playback Volume');
    assert.ok(name.subarray(19).every((b) => b === 0));
    // ENUM_ITEMS: 64-byte 0-terminated non-empty names.
    const items = await raw.submit([words(true, SoundCode.R_CTL_ENUM_ITEMS, src)], [4 + 128]);
    assert.equal(u32(items.ins[0]!, 0), SoundStatus.OK);
    for (const at of [4, 68]) assert.ok(items.ins[0]![at] !== 0 && items.ins[0]![at + 63] === 0);
    // What would break them is refused when the element is added, so the device never presents it.
    const bad: SoundControlConfig[] = [
      { name: 'x', type: 6 as SoundCtlType },
      { name: 'x', type: SoundCtlType.BOOLEAN, role: 4 },
      { name: 'x', type: SoundCtlType.BOOLEAN, role: SoundCtlRole.MUTE, direction: 2 as SoundDirection },
      { name: 'x', type: SoundCtlType.BOOLEAN, access: 0x80 },
      { name: 'x', type: SoundCtlType.BOOLEAN, count: 0 },
      { name: 'x', type: SoundCtlType.INTEGER, count: 129 },
      { name: 'x', type: SoundCtlType.INTEGER64, count: 65, min: 0n, max: 1n },
      { name: 'x', type: SoundCtlType.ENUMERATED, count: 129, items: ['a'] },
      { name: 'x', type: SoundCtlType.BYTES, count: 513 },
      { name: 'x', type: SoundCtlType.IEC958, count: 2 },
      { name: '', type: SoundCtlType.BOOLEAN },
      { name: 'n'.repeat(44), type: SoundCtlType.BOOLEAN },
      { name: 'caf\u00e9', type: SoundCtlType.BOOLEAN },
      { name: 'x', type: SoundCtlType.ENUMERATED, items: [] },
      { name: 'x', type: SoundCtlType.ENUMERATED, items: [''] },
      { name: 'x', type: SoundCtlType.ENUMERATED, items: ['i'.repeat(64)] },
      { name: 'PCM Playback Volume', index: 0, type: SoundCtlType.BOOLEAN },
      { name: 'x', type: SoundCtlType.BOOLEAN, access: SoundCtlAccess.READ | SoundCtlAccess.TLV_READ },
      { name: 'x', type: SoundCtlType.BOOLEAN, access: SoundCtlAccess.TLV_COMMAND },
      { name: 'x', type: SoundCtlType.INTEGER, min: 5, max: 1 },
      { name: 'x', type: SoundCtlType.BOOLEAN, value: [2] },
    ];
    const fresh = new SoundDevice();
    bad.forEach((c, i) => assert.throws(() => fresh.addControl(c), VirtioError, `bad config ${i}`));
    fresh.addControl({ name: 'PCM Playback Volume', index: 7, type: SoundCtlType.BOOLEAN });
    assert.equal(fresh.controlCount, 6);
    // No element can be added once the driver runs (it has read controls).
    assert.throws(() => device.addControl({ name: 'late', type: SoundCtlType.BOOLEAN }), VirtioError);
  });

  it('device/sound/17: TLV_READ with too little room writes the words that fit, says so in length, and completes with OK', async () => {
    const { pair, device } = soundPair();
    const vol = device.streamControls(0).volume;
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const full = await raw.submit([words(true, SoundCode.R_CTL_TLV_READ, vol)], [4 + 8 + 64]);
    assert.equal(full.used, 4 + 8 + 8);
    assert.deepEqual([0, 4, 8, 12, 16].map((at) => u32(full.ins[0]!, at)), [SoundStatus.OK, SoundTlvType.DB_SCALE, 8, -5000 >>> 0, 50 | SOUND_TLV_DB_SCALE_MUTE]);
    const one = await raw.submit([words(true, SoundCode.R_CTL_TLV_READ, vol)], [4 + 8 + 6]);
    assert.equal(one.used, 4 + 8 + 4);
    assert.deepEqual([0, 4, 8, 12].map((at) => u32(one.ins[0]!, at)), [SoundStatus.OK, SoundTlvType.DB_SCALE, 4, -5000 >>> 0]);
    const none = await raw.submit([words(true, SoundCode.R_CTL_TLV_READ, vol)], [4 + 8]);
    assert.deepEqual([none.used, u32(none.ins[0]!, 0), u32(none.ins[0]!, 8)], [12, SoundStatus.OK, 0]);
    const tooShort = await raw.submit([words(true, SoundCode.R_CTL_TLV_READ, vol)], [4 + 7]);
    assert.deepEqual([tooShort.used, u32(tooShort.ins[0]!, 0)], [4, SoundStatus.BAD_MSG]);
    // The driver side reads what fits the same way.
    const drv = new SoundDriver(soundPair().pair.ctx);
    assert.deepEqual(await drv.controlElements.tlvRead(vol, 4), { type: SoundTlvType.DB_SCALE, value: [-5000 >>> 0] });
    assert.deepEqual(await drv.controlElements.tlvRead(vol), { type: SoundTlvType.DB_SCALE, value: [-5000 >>> 0, 50 | SOUND_TLV_DB_SCALE_MUTE] });
  });

  it('device/sound/18: host changes raise VIRTIO_SND_EVT_CTL_NOTIFY with le16 control_id and only the defined VALUE / INFO / TLV masks', async () => {
    const { pair, device } = soundPair();
    const ev = new RawQueue(pair, SoundQueue.EVENTQ);
    const { volume, mute } = device.streamControls(0);
    const custom = device.controlCount; // added before the driver starts
    const knobDevice = new SoundDevice();
    const id = knobDevice.addControl({ name: 'Host Knob', type: SoundCtlType.INTEGER, min: 0, max: 10, tlv: { type: 0x100, value: [1] } });
    const fresh = soundPairOf(knobDevice);
    const evFresh = new RawQueue(fresh.pair, SoundQueue.EVENTQ);
    const got: [number, number, number][] = [];
    const take = async (q: RawQueue, change: () => void): Promise<void> => {
      const p = q.submit([], [8]);
      change();
      const r = await p;
      assert.equal(r.used, 8);
      const b = r.ins[0]!;
      got.push([u32(b, 0), b[4]! | (b[5]! << 8), b[6]! | (b[7]! << 8)]);
    };
    await take(ev, () => device.setControlValue(volume, [40]));
    await take(ev, () => device.setControlActive(mute, false));
    await take(ev, () => device.setControlTlv(volume, { type: SoundTlvType.DB_SCALE, value: [-6000 >>> 0, 60] }));
    await take(evFresh, () => fresh.device.setControlValue(id, [3]));
    assert.deepEqual(got, [
      [SoundCode.EVT_CTL_NOTIFY, volume, SoundCtlEventMask.VALUE],
      [SoundCode.EVT_CTL_NOTIFY, mute, SoundCtlEventMask.INFO],
      [SoundCode.EVT_CTL_NOTIFY, volume, SoundCtlEventMask.TLV],
      [SoundCode.EVT_CTL_NOTIFY, id, SoundCtlEventMask.VALUE],
    ]);
    for (const [, , mask] of got) assert.equal(mask & ~SOUND_CTL_EVENT_MASK_DEFINED, 0);
    assert.equal(custom, 5);
    // Setting INACTIVE again changes nothing: no event; an invalid host value throws and raises none.
    device.setControlActive(mute, false);
    assert.throws(() => device.setControlValue(volume, [101]), VirtioError);
    const none = await Promise.race([ev.submit([], [8]).then(() => 'event'), new Promise((r) => setImmediate(() => r('none')))]);
    assert.equal(none, 'none');
    // The driver decodes them.
    const other = soundPair();
    const drv = new SoundDriver(other.pair.ctx, { eventBuffers: 2 });
    const e = drv.nextEvent();
    other.device.setControlValue(volume, [4]);
    const got2 = await e;
    assert.deepEqual([got2.code, got2.controlId, got2.mask], [SoundCode.EVT_CTL_NOTIFY, volume, SoundCtlEventMask.VALUE]);
  });

  it('volume and switch apply: the host output receives the PCM at -6 dB and then silence, byte-exact for U8 and S16', async () => {
    const rec = recorder();
    const { pair, device } = soundPair({ output: rec.output });
    const drv = new SoundDriver(pair.ctx);
    const { volume, mute } = device.streamControls(0);
    await play(drv, SoundPcmFormat.U8, u8Bytes(U8_IN, 20));
    assert.deepEqual([...rec.take()], [...u8Bytes(U8_IN, 20)], 'unity: unchanged');
    await drv.controlElements.write(volume, [88]); // -5000 + 88 x 50 = -600: -6 dB
    assert.deepEqual(device.controlValue(volume), [88]);
    await play(drv, SoundPcmFormat.U8, u8Bytes(U8_IN, 20));
    assert.deepEqual([...rec.take()], [...u8Bytes(U8_MINUS_6DB, 20)]);
    for (let i = 0; i < U8_IN.length; i++) assert.equal(U8_MINUS_6DB[i], 128 + Math.round((U8_IN[i]! - 128) * 10 ** (-6 / 20)));
    await play(drv, SoundPcmFormat.S16, s16Bytes(S16_IN, 16));
    assert.deepEqual([...rec.take()], [...s16Bytes(S16_MINUS_6DB, 16)]);
    for (let i = 0; i < S16_IN.length; i++) assert.equal(S16_MINUS_6DB[i], Math.round(S16_IN[i]! * 10 ** (-6 / 20)));
    await drv.controlElements.write(mute, [0]);
    await play(drv, SoundPcmFormat.U8, u8Bytes(U8_IN, 20));
    assert.ok(rec.take().every((b) => b === 128), 'U8 silence');
    await play(drv, SoundPcmFormat.S16, s16Bytes(S16_IN, 16));
    assert.ok(rec.take().every((b) => b === 0), 'S16 silence');
    // An INACTIVE switch does nothing: the volume alone applies again.
    device.setControlActive(mute, false);
    await play(drv, SoundPcmFormat.S16, s16Bytes(S16_IN, 16));
    assert.deepEqual([...rec.take()], [...s16Bytes(S16_MINUS_6DB, 16)]);
    // Volume 0 is DB_SCALE's mute.
    device.setControlValue(volume, [0]);
    await play(drv, SoundPcmFormat.S16, s16Bytes(S16_IN, 16));
    assert.ok(rec.take().every((b) => b === 0));
  });

  it('capture volume, switch and source apply to the host input, byte-exact for U8 and S16', async () => {
    const src = patternInput();
    const { pair, device } = soundPair({ input: src.input });
    const drv = new SoundDriver(pair.ctx);
    const { volume, mute, source } = device.streamControls(1);
    src.set(s16Bytes(S16_IN, 1));
    assert.deepEqual([...(await record(drv, SoundPcmFormat.S16, 160))], [...s16Bytes(S16_IN, 8)]);
    await drv.controlElements.write(volume, [88]);
    src.set(s16Bytes(S16_IN, 1));
    assert.deepEqual([...(await record(drv, SoundPcmFormat.S16, 160))], [...s16Bytes(S16_MINUS_6DB, 8)]);
    src.set(u8Bytes(U8_IN, 1));
    assert.deepEqual([...(await record(drv, SoundPcmFormat.U8, 160))], [...u8Bytes(U8_MINUS_6DB, 20)]);
    await drv.controlElements.write(source!, [1]); // "Silence"
    assert.ok((await record(drv, SoundPcmFormat.U8, 160)).every((b) => b === 128));
    await drv.controlElements.write(source!, [0]);
    await drv.controlElements.write(mute, [0]);
    src.set(s16Bytes(S16_IN, 1));
    assert.ok((await record(drv, SoundPcmFormat.S16, 160)).every((b) => b === 0));
  });

  it('untrusted control element requests get BAD_MSG / NOT_SUPP / IO_ERR and never throw; refused writes change nothing', async () => {
    const state = { hookAnswer: true as boolean | 'throw', tlvCommands: 0 };
    const dev = new SoundDevice();
    const ro = dev.addControl({ name: 'Read Only', type: SoundCtlType.INTEGER, min: 0, max: 9, access: SoundCtlAccess.READ, value: [3] });
    const wo = dev.addControl({ name: 'Write Only', type: SoundCtlType.BOOLEAN, access: SoundCtlAccess.WRITE });
    const hooked = dev.addControl({
      name: 'Hooked',
      type: SoundCtlType.INTEGER,
      min: -10,
      max: 10,
      step: 2,
      access: SoundCtlAccess.READ | SoundCtlAccess.WRITE | SoundCtlAccess.TLV_READ | SoundCtlAccess.TLV_WRITE | SoundCtlAccess.TLV_COMMAND,
      tlv: { type: 7, value: [1, 2] },
      onWrite: () => {
        if (state.hookAnswer === 'throw') throw new Error('host failure');
        return state.hookAnswer;
      },
      onTlvCommand: () => {
        state.tlvCommands++;
        return state.hookAnswer === true;
      },
    });
    const { pair: p2 } = soundPairOf(dev);
    const raw = new RawQueue(p2, SoundQueue.CONTROLQ);
    const status = async (req: Uint8Array, resp = 4 + 512): Promise<number> => u32((await raw.submit([req], [resp])).ins[0]!, 0);
    const write = (id: number, ...vals: number[]): Uint8Array => {
      const b = new Uint8Array(8 + 512);
      b.set(words(true, SoundCode.R_CTL_WRITE, id, ...vals));
      return b;
    };
    const tlv = (code: number, id: number, length: number, body = length): Uint8Array => {
      const b = new Uint8Array(16 + body);
      b.set(words(true, code, id, 9, length));
      return b;
    };
    const n = dev.controlCount;
    const cases: [string, Uint8Array, number, number?][] = [
      ['short header', new Uint8Array(6), SoundStatus.BAD_MSG],
      ['id out of range', words(true, SoundCode.R_CTL_READ, n), SoundStatus.BAD_MSG],
      ['huge id', words(true, SoundCode.R_CTL_READ, 0xffffffff), SoundStatus.BAD_MSG],
      ['info past the count', words(true, SoundCode.R_CTL_INFO, n - 1, 2, 96), SoundStatus.BAD_MSG, 4 + 192],
      ['info start + count overflowing 32 bits', words(true, SoundCode.R_CTL_INFO, 0xffffffff, 2, 96), SoundStatus.BAD_MSG, 4 + 192],
      ['info item smaller than ctl_info', words(true, SoundCode.R_CTL_INFO, 0, 1, 95), SoundStatus.BAD_MSG, 4 + 96],
      ['info response too small', words(true, SoundCode.R_CTL_INFO, 0, 2, 96), SoundStatus.BAD_MSG, 4 + 191],
      ['enum items of a non-ENUMERATED element', words(true, SoundCode.R_CTL_ENUM_ITEMS, 0), SoundStatus.BAD_MSG],
      ['enum items without room', words(true, SoundCode.R_CTL_ENUM_ITEMS, 4), SoundStatus.BAD_MSG, 4 + 127],
      ['read without READ', words(true, SoundCode.R_CTL_READ, wo), SoundStatus.NOT_SUPP],
      ['read without room for the value', words(true, SoundCode.R_CTL_READ, ro), SoundStatus.BAD_MSG, 4 + 511],
      ['write to a read-only element', write(ro, 4), SoundStatus.NOT_SUPP, 4],
      ['write shorter than ctl_value', words(true, SoundCode.R_CTL_WRITE, hooked, 2), SoundStatus.BAD_MSG, 4],
      ['write above max', write(hooked, 12), SoundStatus.BAD_MSG, 4],
      ['write off the step', write(hooked, 3), SoundStatus.BAD_MSG, 4],
      ['boolean 2', write(wo, 2), SoundStatus.BAD_MSG, 4],
      ['enumerated past the items', write(4, 2), SoundStatus.BAD_MSG, 4],
      ['TLV read without TLV_READ', words(true, SoundCode.R_CTL_TLV_READ, ro), SoundStatus.NOT_SUPP],
      ['TLV write without TLV_WRITE', tlv(SoundCode.R_CTL_TLV_WRITE, 0, 4), SoundStatus.NOT_SUPP, 4],
      ['TLV command without TLV_COMMAND', tlv(SoundCode.R_CTL_TLV_COMMAND, 0, 4), SoundStatus.NOT_SUPP, 4],
      ['TLV write without its TLV header', words(true, SoundCode.R_CTL_TLV_WRITE, hooked, 9), SoundStatus.BAD_MSG, 4],
      ['TLV length not whole words', tlv(SoundCode.R_CTL_TLV_WRITE, hooked, 6, 8), SoundStatus.BAD_MSG, 4],
      ['TLV length above 65536 (driver/sound/21)', tlv(SoundCode.R_CTL_TLV_WRITE, hooked, 65540), SoundStatus.BAD_MSG, 4],
      ['TLV length past the request', tlv(SoundCode.R_CTL_TLV_COMMAND, hooked, 64, 60), SoundStatus.BAD_MSG, 4],
    ];
    for (const [what, req, want, resp] of cases) assert.equal(await status(req, resp), want, what);
    assert.deepEqual(dev.controlValue(ro), [3]);
    assert.deepEqual(dev.controlValue(hooked), [-10]);
    // The application's hooks: false or an exception is IO_ERR and the old value stays.
    assert.equal(await status(write(hooked, 4), 4), SoundStatus.OK);
    state.hookAnswer = false;
    assert.equal(await status(write(hooked, 6), 4), SoundStatus.IO_ERR);
    state.hookAnswer = 'throw';
    assert.equal(await status(write(hooked, 8), 4), SoundStatus.IO_ERR);
    assert.deepEqual(dev.controlValue(hooked), [4]);
    assert.equal(await status(tlv(SoundCode.R_CTL_TLV_COMMAND, hooked, 4), 4), SoundStatus.IO_ERR);
    state.hookAnswer = true;
    assert.equal(await status(tlv(SoundCode.R_CTL_TLV_COMMAND, hooked, 4), 4), SoundStatus.OK);
    assert.equal(state.tlvCommands, 2);
    // A TLV write of exactly 65536 bytes is stored.
    assert.equal(await status(tlv(SoundCode.R_CTL_TLV_WRITE, hooked, 65536), 4), SoundStatus.OK);
    assert.equal(dev.controlTlv(hooked)!.value.length, 16384);
    // No room for the status: nothing written.
    const r = await raw.submit([words(true, SoundCode.R_CTL_READ, ro)], [3]);
    assert.equal(r.used, 0);
    assert.deepEqual(p2.resets, []);
  });

  for (const packed of [false, true]) {
    it(`the guest is untrusted: 300 random control element requests are each answered, values stay in range (${packed ? 'packed' : 'split'})`, async () => {
      const device = new SoundDevice();
      device.addControl({ name: 'Wide', type: SoundCtlType.INTEGER64, count: 4, min: -100n, max: 100n, access: 0x7f & ~SoundCtlAccess.TLV_COMMAND, tlv: { type: 1, value: [1, 2, 3] } });
      device.addControl({ name: 'Raw', type: SoundCtlType.BYTES, count: 16 });
      device.addControl({ name: 'Cmd', type: SoundCtlType.IEC958, access: SoundCtlAccess.READ | SoundCtlAccess.TLV_COMMAND, onTlvCommand: (t) => t.value.length < 4 });
      const { pair } = soundPairOf(device, { packed });
      const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
      let seed = packed ? 777 : 4242;
      const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
      const n = device.controlCount;
      const pending: Promise<{ used: number; ins: Uint8Array[] }>[] = [];
      const statuses = new Map<number, number>();
      // The status may straddle the writable buffers: read it from their concatenation.
      const count = (r: { used: number; ins: Uint8Array[] }): void => {
        if (r.used < 4) return;
        const st = u32(Buffer.concat(r.ins), 0);
        statuses.set(st, (statuses.get(st) ?? 0) + 1);
      };
      for (let i = 0; i < 300; i++) {
        const code = SoundCode.R_CTL_INFO + rnd(7);
        const len = [0, 3, 8, 16, 24, 520, 600][rnd(7)]!;
        const b = new Uint8Array(len);
        for (let k = 0; k < len; k++) b[k] = rnd(3) === 0 ? rnd(256) : 0;
        if (len >= 8) b.set(words(true, code, rnd(4) === 0 ? rnd(1 << 16) : rnd(n + 1)), 0);
        if (len >= 16 && rnd(2) === 0) b.set(words(true, rnd(3), rnd(3) === 0 ? rnd(70000) : rnd(8) * 4), 8);
        if (len >= 16 && code === SoundCode.R_CTL_INFO) b.set(words(true, rnd(n + 1), rnd(4), [96, 95, 128, 5000][rnd(4)]!), 4);
        const out = len === 0 ? [] : rnd(3) === 0 ? [b.subarray(0, len >> 1), b.subarray(len >> 1)] : [b];
        const inn = Array.from({ length: rnd(3) }, () => [0, 3, 4, 12, 100, 516, 2000][rnd(7)]!);
        if (out.length + inn.length === 0) continue;
        pending.push(raw.submit(out, inn));
        if (pending.length >= 16) for (const r of await Promise.all(pending.splice(0))) count(r);
      }
      for (const r of await Promise.all(pending)) count(r);
      assert.deepEqual(pair.resets, []);
      for (const s of statuses.keys()) assert.ok(s === SoundStatus.OK || s === SoundStatus.BAD_MSG || s === SoundStatus.NOT_SUPP || s === SoundStatus.IO_ERR, `status 0x${s.toString(16)}`);
      assert.ok((statuses.get(SoundStatus.OK) ?? 0) > 0 && (statuses.get(SoundStatus.BAD_MSG) ?? 0) > 0, JSON.stringify([...statuses]));
      // Every value is still one its element allows (the standard ones, then Wide, Raw, Cmd).
      for (const sc of [device.streamControls(0), device.streamControls(1)]) {
        const [v] = device.controlValue(sc.volume) as number[];
        assert.ok(v! >= 0 && v! <= 100);
        assert.ok([0, 1].includes((device.controlValue(sc.mute) as number[])[0]!));
        if (sc.source !== null) assert.ok([0, 1].includes((device.controlValue(sc.source) as number[])[0]!));
      }
      for (const x of device.controlValue(n - 3) as bigint[]) assert.ok(x >= -100n && x <= 100n);
      assert.equal((device.controlValue(n - 2) as Uint8Array).length, 16);
      // The device still answers a well-formed request.
      const ok = await raw.submit([words(true, SoundCode.R_CTL_READ, 0)], [4 + 512]);
      assert.equal(u32(ok.ins[0]!, 0), SoundStatus.OK);
    });
  }
});
