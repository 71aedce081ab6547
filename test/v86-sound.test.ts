/**
 * Linux's virtio_snd (built out of tree for the i386 686 kernel, loaded under v86) on a virtio-ts
 * SoundDevice. The guest finds the card, its PCM and its jack in /proc/asound, then plays a
 * known tone with `dd` into the OSS device /dev/dsp (snd-pcm-oss: unsigned 8-bit mono at
 * 8000 Hz, which the device offers as is, so no conversion happens). The host compares the PCM
 * the device received with the tone, and checks the stream went through the lifecycle
 * (SET_PARAMS, PREPARE, START, ... RELEASE) and that playback took real time.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type PcmParams, ToneInput } from '../src/devices/sound/pcm-host.js';
import { PcmState } from '../src/devices/sound/pcm-stream.js';
import { SoundDevice } from '../src/devices/sound/sound-device.js';
import { SoundDirection, SoundPcmFormat, SoundPcmRate } from '../src/spec/sound.js';
import { ensureGuestKit } from './support/guest-deps.js';
import { GuestKitPart } from './support/guest-host.js';
import { OutOfTreeModule } from './support/guest-modules.js';
import { OutOfTreeTarget, buildOutOfTreeModules } from './support/guest-oot-modules.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const kit = deps.ok ? ensureGuestKit([GuestKitPart.HEADERS_686, GuestKitPart.SOURCE]) : deps;
const RUN_TIMEOUT_MS = 8 * 60_000;
/** Half a second of U8 mono at 8000 Hz: a 500 Hz tone whose amplitude rises, so misplaced bytes show. */
const TONE_BYTES = 4000;

function tone(): Uint8Array {
  const b = new Uint8Array(TONE_BYTES);
  for (let k = 0; k < b.length; k++) b[k] = Math.round(128 + (20 + (k * 100) / TONE_BYTES) * Math.sin((2 * Math.PI * 500 * k) / 8000)) & 0xff;
  return b;
}

/** Bytes the guest records from the input stream (0.2 s of U8 mono at 8000 Hz). */
const RECORD_BYTES = 1600;

/** The bytes of the guest's "REC hex..." lines. */
function recorded(output: string): number[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('REC '))
    .flatMap((l) => l.slice(4).trim().split(/\s+/).map((h) => parseInt(h, 16)));
}

const SCRIPT = `
wait_path /proc/asound/card0 600 || fail "no sound card"
result card "$(cat /proc/asound/card0/id)"
result pcm "$(cat /proc/asound/card0/pcm0p/info | grep '^id:' | cut -d' ' -f2-)"
wait_path /dev/dsp 100 || fail "no /dev/dsp"
dd if=/tone.raw of=/dev/dsp bs=1000 2>/dev/null || fail "dd to /dev/dsp"
result played 1
head -c ${RECORD_BYTES} /dev/dsp > /rec.raw || fail "read /dev/dsp"
result recorded "$(wc -c < /rec.raw)"
od -An -tx1 -v /rec.raw | while read l; do echo "REC $l"; done
result ok 1
`;

describe('v86: Linux virtio_snd (out of tree) on a virtio-ts sound device', { skip: kit.ok ? false : kit.reason }, () => {
  it('the guest plays a tone with dd into /dev/dsp (the host receives exactly that PCM) and records the host tone from /dev/dsp', { timeout: RUN_TIMEOUT_MS + 60_000 }, async (t) => {
    if (!deps.ok) throw new Error(deps.reason);
    const build = await buildOutOfTreeModules(OutOfTreeTarget.I686, [OutOfTreeModule.VIRTIO_SND]);
    const dir = mkdtempSync(join(tmpdir(), 'vts-v86-snd-'));
    try {
      const ko = join(dir, 'virtio_snd.ko');
      writeFileSync(ko, build.modules[0]!.data);
      let refresh: (() => void) | null = null;
      const tone440 = new ToneInput(440, 0.5);
      const received: Uint8Array[] = [];
      const opened: PcmParams[] = [];
      let openAt = 0;
      let lastAt = 0;
      const device = new SoundDevice({
        output: {
          open: (p) => {
            opened.push(p);
            openAt = performance.now();
          },
          write(_s, b, o, n) {
            lastAt = performance.now();
            received.push(b.slice(o, o + n));
          },
        },
        input: tone440,
        // Capture xruns would make OSS re-prepare the stream (and restart the tone): not offered here.
        streams: [
          { direction: SoundDirection.OUTPUT, formats: [SoundPcmFormat.U8, SoundPcmFormat.S16], rates: [SoundPcmRate.R8000, SoundPcmRate.R48000], channelsMin: 1, channelsMax: 2 },
          { direction: SoundDirection.INPUT, formats: [SoundPcmFormat.U8, SoundPcmFormat.S16], rates: [SoundPcmRate.R8000, SoundPcmRate.R48000], channelsMin: 1, channelsMax: 2, xrunEvents: false },
        ],
        beforeHostAccess: () => refresh?.(),
      });
      const pcm = tone();
      let stateAtEnd: PcmState | undefined | null = null;
      const res = await runV86DeviceGuest({
        assets: deps,
        devices: [{ device, modules: [], extraModules: [{ path: ko }] }],
        modules: ['snd-pcm-oss'],
        extraFiles: [{ path: '/tone.raw', data: pcm }],
        script: SCRIPT,
        timeoutMs: RUN_TIMEOUT_MS,
        onAttach: (r) => (refresh = r),
        // Detaching resets the device: read the stream state the guest left first.
        beforeDetach: () => {
          stateAtEnd = device.streamState(0);
        },
      });
      assert.equal(res.results.get('ok'), '1', res.output.slice(-3000));
      t.diagnostic(`v86 sound: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, results ${JSON.stringify([...res.results])}`);
      // virtio_snd names its card "SoundCard" (virtio_card.c) and its PCM after the device.
      assert.equal(res.results.get('card'), 'SoundCard');
      assert.deepEqual(res.badAccesses, []);
      // The OSS defaults reached the device unchanged.
      assert.ok(opened.length >= 1);
      assert.deepEqual({ ch: opened[0]!.channels, fmt: opened[0]!.format, rate: opened[0]!.rateHz }, { ch: 1, fmt: SoundPcmFormat.U8, rate: 8000 });
      const got = Buffer.concat(received);
      assert.ok(got.length >= pcm.length, `received ${got.length} bytes of ${pcm.length}`);
      assert.ok(got.subarray(0, pcm.length).equals(Buffer.from(pcm)), 'the tone, byte for byte, in order');
      // Anything after it is the silence OSS pads the last period with.
      assert.ok(got.subarray(pcm.length).every((x) => x === 0x80), 'padding is U8 silence');
      // Paced at 8000 frames/s: from the last PREPARE to the last frame consumed takes at least
      // the tone's 500 ms.
      const ms = lastAt - openAt;
      assert.ok(ms >= 490, `played in ${ms.toFixed(0)} ms`);
      assert.notEqual(stateAtEnd, null, 'the state was read before the device was detached');
      assert.notEqual(stateAtEnd, PcmState.RUNNING, 'the stream is not left running');
      // Capture: the guest read the host's 440 Hz tone (U8 mono 8000 Hz) from the first frame on.
      assert.equal(res.results.get('recorded'), String(RECORD_BYTES));
      const rec = recorded(res.output);
      const want = Array.from({ length: RECORD_BYTES }, (_, k) => Math.round(128 + tone440.sample(k, 8000) * 127));
      assert.deepEqual(rec, want, 'the recorded PCM is the host input');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
