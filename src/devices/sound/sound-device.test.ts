import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  SOUND_CHMAP_MAX_SIZE,
  SOUND_CHMAP_POSITION_MAX,
  SOUND_FORMAT_PHYSICAL_BITS,
  SOUND_JACK_FEATURES_DEFINED,
  SOUND_PCM_FEATURES_DEFINED,
  SOUND_RATE_HZ,
  SoundCode,
  SoundDirection,
  SoundF,
  SoundPcmFeatureBit,
  SoundPcmFormat,
  SoundPcmRate,
  SoundQueue,
  SoundStatus,
} from '../../spec/sound.js';
import { WavFileInput, WavFileOutput, ToneInput, parseWav, type PcmOutput } from './pcm-host.js';
import { type PcmClock, PcmState } from './pcm-stream.js';
import { MAX_BUFFER_BYTES } from './sound-control.js';
import { SoundDevice } from './sound-device.js';
import { SoundDriver } from './sound-driver.js';
import { RawQueue, setParamsRequest, soundPair, u32, words } from './sound-test-support.js';

const T = { timeout: 20_000 };
const U8_8K: { bufferBytes: number; periodBytes: number; channels: number; format: number; rate: number } = { bufferBytes: 320, periodBytes: 80, channels: 1, format: SoundPcmFormat.U8, rate: SoundPcmRate.R8000 };

function recorder(): { output: PcmOutput; frames: Uint8Array[]; times: number[] } {
  const frames: Uint8Array[] = [];
  const times: number[] = [];
  return {
    frames,
    times,
    output: {
      write(_s, b, o, n) {
        frames.push(b.slice(o, o + n));
        times.push(performance.now());
      },
    },
  };
}

/** A tx message through a raw queue: header, frames, status (or other shapes). */
async function rawTx(q: RawQueue, stream: number, frames: Uint8Array, statusLen = 8, extraWritable: number[] = []): Promise<{ used: number; status: number; latency: number }> {
  const r = await q.submit([words(true, stream), frames].filter((b) => b.length > 0), [...extraWritable, statusLen]);
  const st = r.ins.at(-1)!;
  return { used: r.used, status: st.length >= 4 ? u32(st, 0) : -1, latency: st.length >= 8 ? u32(st, 4) : -1 };
}

describe('SoundDevice', T, () => {
  it('device/sound/1 device/sound/2: JACK_INFO sets only defined features (REMAP) and zero padding, also in a larger item size', async () => {
    const { pair } = soundPair({ jacks: [{ connected: true, remap: true, hdaRegDefconf: 0x01234567 }, { connected: false }] });
    const drv = new SoundDriver(pair.ctx);
    const jacks = await drv.jackInfo();
    assert.equal(jacks.length, 2);
    assert.equal(jacks[0]!.features, SOUND_JACK_FEATURES_DEFINED);
    assert.equal(jacks[1]!.features, 0);
    assert.equal(jacks[0]!.hdaRegDefconf, 0x01234567);
    assert.deepEqual([jacks[0]!.connected, jacks[1]!.connected], [true, false]);
    for (const j of jacks) assert.deepEqual([...j.padding], [0, 0, 0, 0, 0, 0, 0]);
    // A later revision's larger item (40 bytes): our 24 bytes, then zeros (the buffer was 0xee).
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const r = await raw.submit([words(true, SoundCode.R_JACK_INFO, 0, 2, 40)], [4 + 80]);
    assert.equal(r.used, 84);
    assert.equal(u32(r.ins[0]!, 0), SoundStatus.OK);
    assert.deepEqual([...r.ins[0]!.subarray(4 + 17, 4 + 40)], new Array<number>(23).fill(0));
  });

  it('device/sound/3 device/sound/4: PCM_INFO sets only defined features, formats, rates, direction; padding zero', async () => {
    const { pair } = soundPair();
    const drv = new SoundDriver(pair.ctx);
    const infos = await drv.pcmInfo();
    assert.equal(infos.length, 2);
    for (const s of infos) {
      assert.equal(s.features & ~SOUND_PCM_FEATURES_DEFINED, 0);
      assert.equal(s.features & ((1 << SoundPcmFeatureBit.SHMEM_HOST) | (1 << SoundPcmFeatureBit.SHMEM_GUEST)), 0, 'no shared memory offered');
      assert.equal(s.formats >> BigInt(SOUND_FORMAT_PHYSICAL_BITS.length), 0n);
      assert.equal(s.rates >> BigInt(SOUND_RATE_HZ.length), 0n);
      assert.ok(s.direction === SoundDirection.OUTPUT || s.direction === SoundDirection.INPUT);
      assert.deepEqual([...s.padding], [0, 0, 0, 0, 0]);
    }
    assert.deepEqual(
      infos.map((s) => s.direction),
      [SoundDirection.OUTPUT, SoundDirection.INPUT],
    );
    // The device refuses a topology with an undefined format, rate or direction.
    assert.throws(() => new SoundDevice({ streams: [{ direction: 0, formats: [25], rates: [1], channelsMin: 1, channelsMax: 1 }] }), VirtioError);
    assert.throws(() => new SoundDevice({ streams: [{ direction: 0, formats: [5], rates: [16], channelsMin: 1, channelsMax: 1 }] }), VirtioError);
    assert.throws(() => new SoundDevice({ streams: [{ direction: 2 as 0, formats: [5], rates: [1], channelsMin: 1, channelsMax: 1 }] }), VirtioError);
  });

  it('device/sound/5: the shared memory features are never offered, and SET_PARAMS selecting them is refused', async () => {
    const { pair } = soundPair();
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    for (const [features, status] of [
      [1 << SoundPcmFeatureBit.SHMEM_HOST, SoundStatus.NOT_SUPP],
      [1 << SoundPcmFeatureBit.SHMEM_GUEST, SoundStatus.NOT_SUPP],
      [3, SoundStatus.BAD_MSG],
    ] as const) {
      const r = await raw.submit([setParamsRequest(true, 0, { ...U8_8K, features })], [4]);
      assert.equal(u32(r.ins[0]!, 0), status, `features ${features}`);
    }
  });

  it('device/sound/6: a buffer_bytes the device cannot hold is refused; a whole buffer of messages is held before START', async () => {
    const rec = recorder();
    const { pair, device } = soundPair({ output: rec.output });
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const big = await raw.submit([setParamsRequest(true, 0, { ...U8_8K, bufferBytes: Math.ceil((MAX_BUFFER_BYTES + 1) / 80) * 80 })], [4]);
    assert.equal(u32(big.ins[0]!, 0), SoundStatus.NOT_SUPP);
    const drv = new SoundDriver(pair.ctx);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const pcm = Uint8Array.from({ length: U8_8K.bufferBytes }, (_, i) => i & 0xff);
    const writing = drv.write(0, pcm);
    // All of buffer_bytes is queued at the device (pre-buffering), nothing played yet.
    await new Promise((r) => setImmediate(r));
    assert.equal(device.streams[0]!.queuedBytes, U8_8K.bufferBytes);
    assert.equal(rec.frames.length, 0);
    await drv.start(0);
    await writing;
    assert.deepEqual(Buffer.concat(rec.frames), Buffer.from(pcm));
  });

  it('device/sound/7 device/sound/8: RELEASE completes every pending I/O message (IO_ERR, unplayed) before it completes', async () => {
    const rec = recorder();
    const { pair } = soundPair({ output: rec.output });
    const drv = new SoundDriver(pair.ctx);
    for (const stopFirst of [false, true]) {
      await drv.setParams(0, U8_8K);
      await drv.prepare(0);
      const order: string[] = [];
      const msgs = [0, 1, 2].map((i) => drv.writeMessage(0, new Uint8Array(80).fill(i)).then((r) => (order.push(`io${i}`), r)));
      if (stopFirst) {
        await drv.start(0);
        await drv.stop(0);
      }
      await drv.release(0).then(() => order.push('release'));
      const results = await Promise.all(msgs);
      assert.deepEqual(order, ['io0', 'io1', 'io2', 'release'], 'every I/O message before the release');
      // Stopped right after START, the first message may have been played; the rest were not.
      assert.ok(results.slice(1).every((r) => r.status === SoundStatus.IO_ERR));
    }
    assert.ok(rec.frames.length <= 1);
  });

  it('device/sound/9: an output message completes only after its frames were consumed, paced at the stream rate', async () => {
    const rec = recorder();
    const { pair } = soundPair({ output: rec.output });
    const drv = new SoundDriver(pair.ctx);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const done: number[] = [];
    const msgs = [0, 1, 2, 3].map((i) => drv.writeMessage(0, new Uint8Array(80).fill(i + 1)).then((r) => (done.push(performance.now()), r)));
    const t0 = performance.now();
    await drv.start(0);
    const results = await Promise.all(msgs);
    assert.deepEqual(
      rec.frames.map((f) => f[0]),
      [1, 2, 3, 4],
    );
    for (let i = 0; i < 4; i++) {
      // 80 frames at 8000 Hz = 10 ms each; the host got message i before its completion.
      assert.ok(done[i]! - t0 >= (i + 1) * 10, `message ${i} completed at ${(done[i]! - t0).toFixed(1)} ms`);
      assert.ok(rec.times[i]! <= done[i]!);
      assert.equal(results[i]!.status, SoundStatus.OK);
    }
    // latency_bytes: the frames still queued behind each message.
    assert.deepEqual(
      results.map((r) => r.latencyBytes),
      [240, 160, 80, 0],
    );
    await drv.stop(0);
    await drv.release(0);
  });

  it('device/sound/9: with SoundDeviceOptions.clock, a message completes when that clock reaches the end of its frames, not before', async () => {
    // A manual clock: time moves only when the test says; due timers then run in deadline order.
    let now = 1000;
    const timers: { at: number; fn: () => void; live: boolean }[] = [];
    const clock: PcmClock = {
      now: () => now,
      setTimer: (fn, ms) => {
        const t = { at: now + ms, fn, live: true };
        timers.push(t);
        return t;
      },
      clearTimer: (h) => void ((h as { live: boolean }).live = false),
    };
    const advanceTo = (t: number): void => {
      now = t;
      for (;;) {
        const due = timers.filter((x) => x.live && x.at <= now).sort((a, b) => a.at - b.at)[0];
        if (due === undefined) return;
        due.live = false;
        due.fn();
      }
    };
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    const rec = recorder();
    const { pair } = soundPair({ output: rec.output, clock });
    const drv = new SoundDriver(pair.ctx);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const done: number[] = [];
    const msgs = [0, 1].map((i) => drv.writeMessage(0, new Uint8Array(80).fill(i + 1)).then((r) => (done.push(i), r)));
    await drv.start(0);
    await turn();
    assert.deepEqual(
      timers.filter((x) => x.live).map((x) => x.at),
      [1010],
      'the stream timer is on the injected clock, due when the first message has played',
    );
    assert.deepEqual([done, rec.frames.length], [[], 0], 'nothing played while the clock stands still');
    // 80 frames at 8000 Hz: 10 ms of this clock each.
    advanceTo(1009.5);
    await turn();
    assert.deepEqual([done, rec.frames.length], [[], 0], 'not before its frames were played');
    advanceTo(1010);
    assert.equal((await msgs[0]!).status, SoundStatus.OK);
    assert.deepEqual([done, rec.frames.map((f) => f[0])], [[0], [1]]);
    advanceTo(1020);
    assert.equal((await msgs[1]!).status, SoundStatus.OK);
    assert.deepEqual([done, rec.frames.map((f) => f[0])], [[0, 1], [1, 2]]);
    await drv.stop(0);
    await drv.release(0);
    assert.equal(timers.filter((x) => x.live).length, 0, 'STOP cleared the stream timer');
  });

  it('device/sound/10: an input message completes only when its buffer is full (frames from the host input)', async () => {
    const tone = new ToneInput(500, 0.25);
    const { pair } = soundPair({ input: tone });
    const drv = new SoundDriver(pair.ctx);
    const p = { bufferBytes: 256, periodBytes: 128, channels: 2, format: SoundPcmFormat.S16, rate: SoundPcmRate.R16000 };
    await drv.setParams(1, p);
    await drv.prepare(1);
    const t0 = performance.now();
    const reading = drv.readMessages(1, 256);
    await drv.start(1);
    const rec = await reading;
    const elapsed = performance.now() - t0;
    // 2 x 32 frames at 16 kHz = 4 ms.
    assert.ok(elapsed >= 3, `${elapsed.toFixed(2)} ms`);
    const all = Buffer.concat(rec.map((r) => r.frames));
    assert.equal(all.length, 256, 'every buffer full');
    for (let k = 0; k < 64; k++) {
      const want = Math.round(tone.sample(k, 16000) * 32767) | 0;
      assert.equal(all.readInt16LE(k * 4), want);
      assert.equal(all.readInt16LE(k * 4 + 2), want, 'both channels');
    }
    await drv.stop(1);
    await drv.release(1);
  });

  it('device/sound/11 device/sound/12: CHMAP_INFO has a defined direction and at most 18 positions; other maps are refused', async () => {
    const positions = Array.from({ length: SOUND_CHMAP_MAX_SIZE }, (_, i) => i % (SOUND_CHMAP_POSITION_MAX + 1));
    const { pair } = soundPair({ chmaps: [{ direction: SoundDirection.INPUT, positions }, { direction: SoundDirection.OUTPUT, positions: [2] }] });
    const drv = new SoundDriver(pair.ctx);
    const maps = await drv.chmapInfo();
    assert.deepEqual(maps[0], { hdaFnNid: 0, direction: SoundDirection.INPUT, positions });
    assert.deepEqual(maps[1]!.positions, [2]);
    assert.throws(() => new SoundDevice({ chmaps: [{ direction: 0, positions: new Array<number>(19).fill(3) }] }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => new SoundDevice({ chmaps: [{ direction: 3 as 0, positions: [3] }] }), VirtioError);
    assert.throws(() => new SoundDevice({ chmaps: [{ direction: 0, positions: [37] }] }), VirtioError);
  });

  it('control elements: without VIRTIO_SND_F_CTLS negotiated every CTL request gets NOT_SUPP; with controls: false it is not offered and controls reads 0', async () => {
    for (const [devOpts, pairOpts, controls] of [
      [{ controls: false }, {}, 0],
      [{}, { accept: ~SoundF.CTLS }, 5],
    ] as const) {
      const { pair, device } = soundPair(devOpts, pairOpts);
      assert.equal(pair.features & SoundF.CTLS, 0n);
      assert.equal(device.offeredFeatures & SoundF.CTLS, controls === 0 ? 0n : SoundF.CTLS);
      const cfg = new Uint8Array(16);
      device.readConfig(0, cfg, 0n, true);
      assert.deepEqual([u32(cfg, 0), u32(cfg, 4), u32(cfg, 8), u32(cfg, 12)], [1, 2, 2, controls]);
      const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
      for (let code = SoundCode.R_CTL_INFO; code <= SoundCode.R_CTL_TLV_COMMAND; code++) {
        const r = await raw.submit([words(true, code, 0, 1, 96)], [4 + 96]);
        assert.equal(u32(r.ins[0]!, 0), SoundStatus.NOT_SUPP);
      }
    }
  });

  it('PCM lifecycle: the transitions of 5.14.6.6.1 succeed, every other one gets BAD_MSG', async () => {
    const { pair, device } = soundPair();
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const codes = { set: SoundCode.R_PCM_SET_PARAMS, prepare: SoundCode.R_PCM_PREPARE, start: SoundCode.R_PCM_START, stop: SoundCode.R_PCM_STOP, release: SoundCode.R_PCM_RELEASE } as const;
    type Op = keyof typeof codes;
    const send = async (op: Op): Promise<number> => {
      const req = op === 'set' ? setParamsRequest(true, 0, U8_8K) : words(true, codes[op], 0);
      return u32((await raw.submit([req], [4])).ins[0]!, 0);
    };
    // From each state, the legal operations (the spec's table); the initial state allows set only.
    const legal: Record<number, Op[]> = {
      [PcmState.INITIAL]: ['set'],
      [PcmState.PARAMS]: ['set', 'prepare'],
      [PcmState.PREPARED]: ['set', 'prepare', 'start', 'release'],
      [PcmState.RUNNING]: ['stop'],
      [PcmState.STOPPED]: ['start', 'release'],
      [PcmState.RELEASED]: ['set', 'prepare'],
    };
    const reach: Record<number, Op[]> = {
      [PcmState.INITIAL]: [],
      [PcmState.PARAMS]: ['set'],
      [PcmState.PREPARED]: ['set', 'prepare'],
      [PcmState.RUNNING]: ['set', 'prepare', 'start'],
      [PcmState.STOPPED]: ['set', 'prepare', 'start', 'stop'],
      [PcmState.RELEASED]: ['set', 'prepare', 'release'],
    };
    for (const [state, path] of Object.entries(reach)) {
      for (const op of Object.keys(codes) as Op[]) {
        device.reset();
        device.activate(pair.devCtx);
        for (const p of path) assert.equal(await send(p), SoundStatus.OK, `${p} on the way to ${state}`);
        assert.equal(device.streamState(0), Number(state));
        const want = legal[Number(state)]!.includes(op) ? SoundStatus.OK : SoundStatus.BAD_MSG;
        assert.equal(await send(op), want, `${op} in state ${state}`);
        if (want === SoundStatus.BAD_MSG) assert.equal(device.streamState(0), Number(state), 'a refused request changes nothing');
      }
    }
  });

  it('malformed control requests get BAD_MSG / NOT_SUPP; no room for the status: nothing written', async () => {
    const { pair } = soundPair({ jacks: [{ remap: true }, { remap: false }] });
    const raw = new RawQueue(pair, SoundQueue.CONTROLQ);
    const status = async (req: Uint8Array, resp = 4): Promise<number> => u32((await raw.submit([req], [resp])).ins[0]!, 0);
    assert.equal(await status(new Uint8Array([1, 0])), SoundStatus.BAD_MSG, 'short header');
    assert.equal(await status(words(true, 0x4242)), SoundStatus.BAD_MSG, 'unknown code');
    assert.equal(await status(words(true, SoundCode.R_PCM_INFO, 0, 1)), SoundStatus.BAD_MSG, 'short query');
    assert.equal(await status(words(true, SoundCode.R_PCM_INFO, 1, 2, 32), 4 + 64), SoundStatus.BAD_MSG, 'driver/sound/4 broken: past the count');
    assert.equal(await status(words(true, SoundCode.R_PCM_INFO, 0xffffffff, 2, 32), 4 + 64), SoundStatus.BAD_MSG, 'start_id + count overflow');
    assert.equal(await status(words(true, SoundCode.R_PCM_INFO, 0, 2, 32), 4 + 63), SoundStatus.BAD_MSG, 'driver/sound/5 broken: response too small');
    assert.equal(await status(words(true, SoundCode.R_PCM_INFO, 0, 1, 16), 4 + 16), SoundStatus.BAD_MSG, 'item smaller than the structure');
    assert.equal(await status(words(true, SoundCode.R_PCM_PREPARE, 7)), SoundStatus.BAD_MSG, 'no stream 7');
    assert.equal(await status(words(true, SoundCode.R_JACK_REMAP, 0, 3, 2)), SoundStatus.OK);
    assert.equal(await status(words(true, SoundCode.R_JACK_REMAP, 1, 3, 2)), SoundStatus.NOT_SUPP, 'jack without REMAP');
    assert.equal(await status(words(true, SoundCode.R_JACK_REMAP, 2, 3, 2)), SoundStatus.BAD_MSG, 'no jack 2');
    assert.equal(await status(words(true, SoundCode.R_JACK_REMAP, 0, 16, 2)), SoundStatus.BAD_MSG, 'association beyond 4 bits');
    const sp = (o: Partial<typeof U8_8K> & { features?: number; padding?: number }): Uint8Array => setParamsRequest(true, 0, { ...U8_8K, ...o });
    assert.equal(await status(sp({ periodBytes: 96 })), SoundStatus.BAD_MSG, 'period does not divide the buffer');
    assert.equal(await status(sp({ periodBytes: 0 })), SoundStatus.BAD_MSG, 'zero period');
    assert.equal(await status(sp({ format: 64 })), SoundStatus.BAD_MSG, 'undefined format');
    assert.equal(await status(sp({ rate: 16 })), SoundStatus.BAD_MSG, 'undefined rate');
    assert.equal(await status(sp({ features: 1 << 5 })), SoundStatus.BAD_MSG, 'undefined feature');
    assert.equal(await status(sp({ format: SoundPcmFormat.FLOAT })), SoundStatus.NOT_SUPP, 'format not offered');
    assert.equal(await status(sp({ rate: SoundPcmRate.R96000 })), SoundStatus.NOT_SUPP, 'rate not offered');
    assert.equal(await status(sp({ channels: 3 })), SoundStatus.NOT_SUPP, 'channels beyond channels_max');
    assert.equal(await status(sp({ channels: 0 })), SoundStatus.NOT_SUPP, 'channels below channels_min');
    assert.equal(await status(sp({ features: 1 << SoundPcmFeatureBit.MSG_POLLING })), SoundStatus.NOT_SUPP, 'feature not offered');
    assert.equal(await status(sp({ channels: 2, format: SoundPcmFormat.S16, periodBytes: 6, bufferBytes: 12 })), SoundStatus.BAD_MSG, 'period not whole frames');
    assert.equal(await status(sp({ padding: 0xff })), SoundStatus.OK, 'a non-zero padding is tolerated');
    // No room for the status: returned with nothing written.
    const r = await raw.submit([words(true, SoundCode.R_PCM_INFO, 0, 1, 32)], [3]);
    assert.equal(r.used, 0);
    assert.deepEqual(pair.resets, []);
  });

  it('malformed I/O messages get IO_ERR at once: unknown or wrong-direction stream, not prepared, tx with device-writable frames, rx with device-readable frames', async () => {
    const { pair } = soundPair();
    const drv = new SoundDriver(pair.ctx);
    const tx = new RawQueue(pair, SoundQueue.TXQ);
    const rx = new RawQueue(pair, SoundQueue.RXQ);
    const frames = new Uint8Array(80);
    assert.equal((await rawTx(tx, 0, frames)).status, SoundStatus.IO_ERR, 'stream 0 not prepared');
    await drv.setParams(0, U8_8K);
    await drv.setParams(1, { ...U8_8K });
    await drv.prepare(1);
    assert.equal((await rawTx(tx, 0, frames)).status, SoundStatus.IO_ERR, 'parameters set, not prepared');
    await drv.prepare(0);
    assert.equal((await rawTx(tx, 9, frames)).status, SoundStatus.IO_ERR, 'no stream 9');
    assert.equal((await rawTx(tx, 1, frames)).status, SoundStatus.IO_ERR, 'tx to the input stream');
    assert.equal((await rawTx(tx, 0, frames, 8, [80])).status, SoundStatus.IO_ERR, 'driver/sound/13: device-writable frames in the tx queue');
    assert.equal((await rawTx(tx, 0, frames, 4)).used, 0, 'no room for the status');
    const short = await tx.submit([new Uint8Array(2)], [8]);
    assert.equal(u32(short.ins[0]!, 0), SoundStatus.IO_ERR, 'short header');
    const bad15 = await rx.submit([words(true, 1), new Uint8Array(16)], [80 + 8]);
    assert.equal(u32(bad15.ins[0]!, 80), SoundStatus.IO_ERR, 'driver/sound/15: device-readable frames in the rx queue');
    assert.equal(bad15.used, 8);
    const wrong = await rx.submit([words(true, 0)], [80 + 8]);
    assert.equal(u32(wrong.ins[0]!, 80), SoundStatus.IO_ERR, 'rx from the output stream');
    assert.deepEqual(pair.resets, []);
  });

  it('event queue: jack connect/disconnect events; device-readable or short event buffers are returned empty', async () => {
    const { pair, device } = soundPair();
    const ev = new RawQueue(pair, SoundQueue.EVENTQ);
    const readable = await ev.submit([new Uint8Array(8)], [8]);
    assert.equal(readable.used, 0, 'a device-readable event buffer');
    const small = await ev.submit([], [4]);
    assert.equal(small.used, 0, 'shorter than struct virtio_snd_event');
    const waiting = ev.submit([], [8]);
    device.setJackConnected(0, false);
    const e = await waiting;
    assert.equal(e.used, 8);
    assert.deepEqual([u32(e.ins[0]!, 0), u32(e.ins[0]!, 4)], [SoundCode.EVT_JACK_DISCONNECTED, 0]);
    // Raised with no buffer waiting: kept and delivered to the next buffer.
    device.setJackConnected(0, true);
    const later = await ev.submit([], [8]);
    assert.deepEqual([u32(later.ins[0]!, 0), u32(later.ins[0]!, 4)], [SoundCode.EVT_JACK_CONNECTED, 0]);
    const drv = new SoundDriver(pair.ctx);
    assert.equal((await drv.jackInfo())[0]!.connected, true);
    assert.throws(() => device.setJackConnected(5, true), VirtioError);
  });

  it('an underrun of a running output stream with EVT_XRUNS selected sends one VIRTIO_SND_EVT_PCM_XRUN; without it none', async () => {
    const { pair, device } = soundPair();
    const drv = new SoundDriver(pair.ctx);
    await drv.setParams(0, { ...U8_8K, features: 1 << SoundPcmFeatureBit.EVT_XRUNS });
    await drv.prepare(0);
    const w = drv.write(0, new Uint8Array(80));
    await drv.start(0);
    await w;
    assert.deepEqual(await drv.nextEvent(), { code: SoundCode.EVT_PCM_XRUN, data: 0 });
    await drv.stop(0);
    await drv.release(0);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const w2 = drv.write(0, new Uint8Array(80));
    await drv.start(0);
    await w2;
    // Three periods later a jack event: it is the next event, so no xrun was sent meanwhile.
    await new Promise((r) => setTimeout(r, 30));
    device.setJackConnected(0, false);
    assert.deepEqual(await drv.nextEvent(), { code: SoundCode.EVT_JACK_DISCONNECTED, data: 0 });
    await drv.stop(0);
  });

  it('device reset drops messages in flight (never completed), stops timers and returns streams to the initial state', async () => {
    const rec = recorder();
    const { pair, device } = soundPair({ output: rec.output });
    const drv = new SoundDriver(pair.ctx);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    let completed = 0;
    const msgs = [0, 1].map(() => drv.writeMessage(0, new Uint8Array(80)).then(() => completed++));
    await drv.start(0);
    device.reset();
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(completed, 0);
    assert.equal(rec.frames.length, 0);
    assert.equal(device.streamState(0), PcmState.INITIAL);
    void msgs;
  });

  it('legacy big-endian guest: control, I/O and events in guest byte order', async () => {
    const rec = recorder();
    const { pair, device } = soundPair({ output: rec.output }, { accept: 0n, littleEndian: false });
    const drv = new SoundDriver(pair.ctx);
    assert.deepEqual(drv.config, { jacks: 1, streams: 2, chmaps: 2, controls: 0 });
    const [out] = await drv.pcmInfo(0, 1);
    assert.equal(out!.channelsMax, 2);
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const w = drv.write(0, new Uint8Array(160).fill(9));
    await drv.start(0);
    assert.ok((await w).every((r) => r.status === SoundStatus.OK));
    assert.equal(Buffer.concat(rec.frames).length, 160);
    const ev = drv.nextEvent();
    device.setJackConnected(0, false);
    assert.deepEqual(await ev, { code: SoundCode.EVT_JACK_DISCONNECTED, data: 0 });
  });

  it('the guest is untrusted: 300 random requests on every queue are each answered; the device never needs a reset', async () => {
    const { pair } = soundPair({ output: recorder().output });
    const drv = new SoundDriver(pair.ctx, { eventBuffers: 0 });
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    await drv.start(0);
    let seed = 12345;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (const qi of [SoundQueue.CONTROLQ, SoundQueue.TXQ, SoundQueue.RXQ]) {
      const raw = new RawQueue(pair, qi);
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        const out = Array.from({ length: rnd(3) }, () => {
          const b = new Uint8Array(rnd(40));
          for (let k = 0; k < b.length; k++) b[k] = rnd(4) === 0 ? rnd(256) : 0;
          if (b.length >= 4) b.set(words(true, [1, 2, 0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x200, 0, 1][rnd(11)]!), 0);
          return b;
        });
        const inn = Array.from({ length: rnd(3) }, () => rnd(64));
        if (out.length + inn.length === 0) continue;
        pending.push(raw.submit(out, inn));
        if (pending.length >= 16) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
    }
    assert.deepEqual(pair.resets, []);
  });

  it('host PCM: WavFileOutput writes a WAV file the frames played; parseWav reads it back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-snd-'));
    try {
      const path = join(dir, 'out.wav');
      const wav = new WavFileOutput(path, 0);
      const { pair } = soundPair({ output: wav });
      const drv = new SoundDriver(pair.ctx);
      const p = { bufferBytes: 256, periodBytes: 64, channels: 2, format: SoundPcmFormat.S16, rate: SoundPcmRate.R48000 };
      await drv.setParams(0, p);
      await drv.prepare(0);
      const pcm = Uint8Array.from({ length: 256 }, (_, i) => (i * 3) & 0xff);
      const w = drv.write(0, pcm);
      await drv.start(0);
      await w;
      await drv.stop(0);
      await drv.release(0);
      const parsed = parseWav(readFileSync(path));
      assert.deepEqual({ tag: parsed.tag, channels: parsed.channels, rate: parsed.rateHz, bits: parsed.bitsPerSample }, { tag: 1, channels: 2, rate: 48000, bits: 16 });
      assert.deepEqual(Buffer.from(parsed.data), Buffer.from(pcm));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('host PCM: WavFileInput feeds an input stream from a WAV file (looped); a bad file is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-snd-'));
    try {
      const path = join(dir, 'in.wav');
      const frames = Uint8Array.from({ length: 100 }, (_, i) => (i * 5) & 0xff);
      // Written through WavFileOutput's own header code, then read back as input.
      const out = new WavFileOutput(path, 0);
      out.open({ streamId: 0, channels: 1, format: SoundPcmFormat.U8, rateHz: 8000, bufferBytes: 100, periodBytes: 50, frameBytes: 1 });
      out.write(0, frames, 0, frames.length);
      out.close(0);
      const { pair } = soundPair({ input: new WavFileInput(path, 1) });
      const drv = new SoundDriver(pair.ctx);
      await drv.setParams(1, { bufferBytes: 160, periodBytes: 80, channels: 1, format: SoundPcmFormat.U8, rate: SoundPcmRate.R8000 });
      await drv.prepare(1);
      const reading = drv.readMessages(1, 160);
      await drv.start(1);
      const got = Buffer.concat((await reading).map((r) => r.frames));
      assert.deepEqual([...got], [...frames, ...frames.subarray(0, 60)], 'the file, then again from its start');
      await drv.stop(1);
      await drv.release(1);
      writeFileSync(join(dir, 'bad.wav'), 'not a wave file');
      assert.throws(() => new WavFileInput(join(dir, 'bad.wav')), VirtioError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
