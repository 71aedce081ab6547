import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import { SoundCode, SoundConfig, SoundF, SoundPcmFeatureBit, SoundPcmFormat, SoundPcmRate, SoundQueue, SoundStatus } from '../../spec/sound.js';
import { SoundDriver, SoundRequestError } from './sound-driver.js';
import { type PostedBuffer, recordingContext, soundPair, u32 } from './sound-test-support.js';

const T = { timeout: 20_000 };
const U8_8K = { bufferBytes: 320, periodBytes: 80, channels: 1, format: SoundPcmFormat.U8 as number, rate: SoundPcmRate.R8000 as number };

function rig(): { drv: SoundDriver; posted: PostedBuffer[]; reads: [number, number][]; on: (q: number) => PostedBuffer[] } & ReturnType<typeof soundPair> {
  const sp = soundPair();
  const posted: PostedBuffer[] = [];
  const reads: [number, number][] = [];
  const drv = new SoundDriver(recordingContext(sp.pair.ctx, posted, reads), { eventBuffers: 4 });
  return { ...sp, drv, posted, reads, on: (q) => posted.filter((p) => p.queue === q) };
}

describe('SoundDriver', T, () => {
  it('driver/sound/1: the controls field is read only with VIRTIO_SND_F_CTLS negotiated', async () => {
    for (const [accept, controls] of [
      [~SoundF.CTLS, 0],
      [~0n, 5],
    ] as const) {
      const sp = soundPair({}, { accept });
      const reads: [number, number][] = [];
      const drv = new SoundDriver(recordingContext(sp.pair.ctx, [], reads), { eventBuffers: 4 });
      assert.equal(drv.hasControls, controls > 0);
      assert.deepEqual(drv.config, { jacks: 1, streams: 2, chmaps: 2, controls });
      assert.ok(reads.length > 0);
      const touches = reads.some(([o, l]) => o + l > SoundConfig.CONTROLS);
      assert.equal(touches, controls > 0, `controls read: ${touches}`);
      await drv.pcmInfo();
    }
  });

  it('driver/sound/2 driver/sound/3: the event queue holds device-writable buffers of struct virtio_snd_event size, re-posted after each event', async () => {
    const { drv, on, device } = rig();
    const ev = on(SoundQueue.EVENTQ);
    assert.equal(ev.length, 4);
    for (const b of ev) assert.deepEqual([b.out, b.inn], [[], [8]]);
    const e = drv.nextEvent();
    device.setJackConnected(0, false);
    assert.deepEqual(await e, { code: SoundCode.EVT_JACK_DISCONNECTED, data: 0 });
    assert.equal(on(SoundQueue.EVENTQ).length, 5, 'the used buffer went back');
  });

  it('driver/sound/4 driver/sound/5: queries stay within the configured count; the response buffer is hdr + count * size', async () => {
    const { drv, on } = rig();
    await assert.rejects(drv.pcmInfo(1, 2), VirtioError);
    await assert.rejects(drv.jackInfo(0, 2), VirtioError);
    await assert.rejects(drv.chmapInfo(3, 0), VirtioError);
    assert.equal(on(SoundQueue.CONTROLQ).length, 0, 'nothing sent');
    await drv.pcmInfo(0, 2);
    await drv.jackInfo();
    await drv.chmapInfo(1, 1);
    const ctl = on(SoundQueue.CONTROLQ);
    assert.deepEqual(
      ctl.map((b) => [u32(b.outBytes, 0), u32(b.outBytes, 8), u32(b.outBytes, 12), b.inn[0]]),
      [
        [SoundCode.R_PCM_INFO, 2, 32, 4 + 64],
        [SoundCode.R_JACK_INFO, 1, 24, 4 + 24],
        [SoundCode.R_CHMAP_INFO, 1, 24, 4 + 24],
      ],
    );
  });

  it('driver/sound/6..10: SET_PARAMS is checked against the stream information before it is sent; padding is 0', async () => {
    const { drv, on } = rig();
    const bad: [string, Partial<typeof U8_8K> & { features?: number }][] = [
      ['driver/sound/6 period does not divide the buffer', { periodBytes: 96 }],
      ['driver/sound/6 undefined feature', { features: 1 << 7 }],
      ['driver/sound/6 undefined format', { format: 70 }],
      ['driver/sound/6 undefined rate', { rate: 16 }],
      ['driver/sound/7 format not in the stream information', { format: SoundPcmFormat.FLOAT }],
      ['driver/sound/7 rate not in the stream information', { rate: SoundPcmRate.R96000 }],
      ['driver/sound/7 feature not in the stream information', { features: 1 << SoundPcmFeatureBit.MSG_POLLING }],
      ['driver/sound/8 channels above channels_max', { channels: 3 }],
      ['driver/sound/8 channels below channels_min', { channels: 0 }],
      ['driver/sound/9 both shared memory bits', { features: 3 }],
      ['driver/sound/11 a shared memory bit', { features: 1 }],
    ];
    for (const [what, o] of bad) await assert.rejects(drv.setParams(0, { ...U8_8K, ...o }), VirtioError, what);
    const before = on(SoundQueue.CONTROLQ).filter((b) => u32(b.outBytes, 0) === SoundCode.R_PCM_SET_PARAMS).length;
    assert.equal(before, 0, 'no refused SET_PARAMS reached the device');
    await drv.setParams(0, { ...U8_8K, features: 1 << SoundPcmFeatureBit.EVT_XRUNS });
    const sent = on(SoundQueue.CONTROLQ).find((b) => u32(b.outBytes, 0) === SoundCode.R_PCM_SET_PARAMS)!;
    assert.equal(sent.outBytes.length, 24);
    assert.equal(sent.outBytes[23], 0, 'driver/sound/10: padding 0');
    assert.deepEqual([...sent.outBytes.subarray(20, 23)], [1, SoundPcmFormat.U8, SoundPcmRate.R8000]);
  });

  it('driver/sound/11 driver/sound/12 driver/sound/13: frames go through the tx queue in period-sized messages (the last may be shorter), status only writable', async () => {
    const { drv, on } = rig();
    await drv.setParams(0, U8_8K);
    await drv.prepare(0);
    const w = drv.write(0, new Uint8Array(200).fill(5));
    await drv.start(0);
    const r = await w;
    assert.ok(r.every((x) => x.status === SoundStatus.OK));
    const tx = on(SoundQueue.TXQ);
    assert.deepEqual(
      tx.map((b) => [b.out, b.inn]),
      [
        [[4, 80], [8]],
        [[4, 80], [8]],
        [[4, 40], [8]],
      ],
    );
    assert.ok(tx.every((b) => u32(b.outBytes, 0) === 0), 'stream id in the header');
    assert.equal(on(SoundQueue.RXQ).length, 0);
  });

  it('driver/sound/14 driver/sound/15: rx messages are period-sized, posted before START, header only readable', async () => {
    const { drv, on } = rig();
    await drv.setParams(1, { ...U8_8K, format: SoundPcmFormat.S16, periodBytes: 64, bufferBytes: 128 });
    await drv.prepare(1);
    const reading = drv.readMessages(1, 128);
    assert.equal(on(SoundQueue.RXQ).length, 2, 'queued before the stream starts');
    await drv.start(1);
    const rec = await reading;
    assert.ok(rec.every((x) => x.status === SoundStatus.OK && x.frames.length === 64));
    assert.deepEqual(
      on(SoundQueue.RXQ).map((b) => [b.out, b.inn]),
      [
        [[4], [72]],
        [[4], [72]],
      ],
    );
  });

  it('a status other than OK fails the request with SoundRequestError carrying it', async () => {
    const { drv } = rig();
    await assert.rejects(drv.start(0), (e: unknown) => e instanceof SoundRequestError && e.status === SoundStatus.BAD_MSG);
    await assert.rejects(drv.jackRemap(0, 99, 0), (e: unknown) => e instanceof SoundRequestError && e.status === SoundStatus.BAD_MSG);
    await drv.jackRemap(0, 2, 1);
    assert.equal((await drv.jackInfo())[0]!.hdaRegDefconf & 0xff, 0x21);
  });
});
