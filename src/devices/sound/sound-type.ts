/**
 * The registry record of the sound device (5.14). vhost-user.json has no sound back-end type
 * and QEMU 7.2 has no vhost-user front-end for it (vhost-user-snd came later), so there is no
 * `virtio-ts` sub-command: the device is served in process, on the register-level transports
 * and over virtio-ts's own vhost-user front-end (the matrix), and to v86 guests.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { SoundCode, SoundConfig, SoundDirection, SoundPcmFormat, SoundPcmRate, SoundStatus } from '../../spec/sound.js';
import type { DeviceType } from '../device-type.js';
import { type PcmOutput, ToneInput } from './pcm-host.js';
import { SoundDevice, type SoundDeviceOptions } from './sound-device.js';
import { SoundDriver } from './sound-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface SoundDeviceArgs {
  /** Maximum queue size (all four queues). Default 256. */
  readonly queueSize?: number;
  /** Input streams play a tone of this frequency (Hz) instead of silence. */
  readonly toneHz?: number;
}

/**
 * The registry record of virtio-snd: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const SOUND_TYPE: DeviceType = {
  name: 'sound',
  deviceId: DeviceId.SOUND,
  summary: 'a virtio sound device (in process and v86; no vhost-user front-end in QEMU 7.2)',
  vhostUser: null,
  configSize: SoundConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): SoundDevice {
    const a = (args ?? {}) as SoundDeviceArgs;
    const opts: { -readonly [K in keyof SoundDeviceOptions]: SoundDeviceOptions[K] } = {};
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    if (a.toneHz !== undefined) opts.input = new ToneInput(a.toneHz);
    return new SoundDevice(opts);
  },
  matrixCase() {
    const played: Uint8Array[] = [];
    const output: PcmOutput = { write: (_s, b, o, n) => void played.push(b.slice(o, o + n)) };
    const tone = new ToneInput(1000, 0.5);
    const device = new SoundDevice({ queueSize: 64, output, input: tone });
    return {
      device,
      async exercise(driver) {
        const snd = new SoundDriver(driver.context, { eventBuffers: 4 });
        assert.deepEqual(snd.config, { jacks: 1, streams: 2, chmaps: 2, controls: snd.hasControls ? 5 : 0 });
        const [out, inp] = await snd.pcmInfo();
        assert.equal(out!.direction, SoundDirection.OUTPUT);
        assert.equal(inp!.direction, SoundDirection.INPUT);
        const [jack] = await snd.jackInfo();
        assert.equal(jack!.connected, true);
        const maps = await snd.chmapInfo();
        assert.deepEqual(maps[0]!.positions.length, 2);
        // Output: U8 mono at 8000 Hz, 80-byte periods (10 ms), 4 periods pre-buffered then started.
        const params = { bufferBytes: 320, periodBytes: 80, channels: 1, format: SoundPcmFormat.U8, rate: SoundPcmRate.R8000 };
        await snd.setParams(0, params);
        await snd.prepare(0);
        const pcm = Uint8Array.from({ length: 320 }, (_, i) => (i * 7) & 0xff);
        const t0 = performance.now();
        const writing = snd.write(0, pcm);
        await snd.start(0);
        const results = await writing;
        const elapsed = performance.now() - t0;
        assert.ok(results.every((r) => r.status === SoundStatus.OK));
        assert.deepEqual(Buffer.concat(played), Buffer.from(pcm), 'the host got the frames in order');
        assert.ok(elapsed >= 35, `4 periods of 10 ms took ${elapsed.toFixed(1)} ms (paced at the rate)`);
        await snd.stop(0);
        await snd.release(0);
        // Input: S16 mono at 16000 Hz, 3 periods of 64 frames queued, then started.
        await snd.setParams(1, { bufferBytes: 384, periodBytes: 128, channels: 1, format: SoundPcmFormat.S16, rate: SoundPcmRate.R16000 });
        await snd.prepare(1);
        const reading = snd.readMessages(1, 384);
        await snd.start(1);
        const rec = await reading;
        assert.ok(rec.every((r) => r.status === SoundStatus.OK && r.frames.length === 128));
        const all = Buffer.concat(rec.map((r) => r.frames));
        for (let k = 0; k < 192; k += 17) assert.equal(all.readInt16LE(k * 2), Math.round(tone.sample(k, 16000) * 32767) | 0, `input frame ${k}`);
        await snd.stop(1);
        await snd.release(1);
        // A jack event.
        const ev = snd.nextEvent();
        device.setJackConnected(0, false);
        assert.deepEqual(await ev, { code: SoundCode.EVT_JACK_DISCONNECTED, data: 0 });
        if (snd.hasControls) {
          // Control elements: the driver mutes the output, the host raises its volume (CTL_NOTIFY, VALUE).
          const { volume, mute } = device.streamControls(0);
          const infos = await snd.controlElements.info();
          assert.equal(infos[mute]!.name, 'PCM Playback Switch');
          await snd.controlElements.write(mute, [0]);
          assert.deepEqual(device.controlValue(mute), [0]);
          const note = snd.nextEvent();
          device.setControlValue(volume, [50]);
          const e = await note;
          assert.deepEqual([e.code, e.controlId, e.mask], [SoundCode.EVT_CTL_NOTIFY, volume, 1]);
          assert.deepEqual(await snd.controlElements.read(volume), [50]);
        }
        snd.detach();
      },
    };
  },
};
