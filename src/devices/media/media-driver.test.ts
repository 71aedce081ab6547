import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../../errors.js';
import { V4l2BufType, V4l2Memory, V4l2PixFmt, Vidioc } from '../../spec/media.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import { MediaDevice } from './media-device.js';
import { MediaDriver } from './media-driver.js';

const T = { timeout: 10_000 };

describe('MediaDriver', T, () => {
  it('driver/media/1: a closed session id is not used again until OPEN gives it back', async () => {
    const device = new MediaDevice({ shmSize: 1 << 20 });
    const media = new MediaDriver(createTestPair(device).ctx);
    const s = await media.open();
    await media.close(s);
    const refused = (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT;
    await assert.rejects(media.format(s, Vidioc.G_FMT, V4l2BufType.VIDEO_CAPTURE), refused);
    await assert.rejects(media.close(s), refused);
    await assert.rejects(media.mmap(s, 0), refused);
    assert.deepEqual(device.sessionIds, []);
    const again = await media.open();
    assert.deepEqual(media.sessions, [again]);
  });

  for (const packed of [false, true]) {
    it(`full stack (createLoopback, ${packed ? 'packed' : 'split'}): NV12 frames through the codec, MMAP both ways`, async () => {
      const device = new MediaDevice({ shmSize: 1 << 20 });
      const lb = await createLoopback(device, { packed, queueSize: 32 });
      try {
        const media = new MediaDriver(lb.context);
        const s = await media.open();
        const f = await media.format(s, Vidioc.S_FMT, V4l2BufType.VIDEO_CAPTURE, { width: 32, height: 16, pixelformat: V4l2PixFmt.NV12 });
        assert.equal(f.sizeimage, 768);
        await media.requestBuffers(s, V4l2BufType.VIDEO_OUTPUT, V4l2Memory.MMAP, 1);
        await media.requestBuffers(s, V4l2BufType.VIDEO_CAPTURE, V4l2Memory.MMAP, 1);
        const src = await media.queryBuffer(s, V4l2BufType.VIDEO_OUTPUT, 0);
        const dst = await media.queryBuffer(s, V4l2BufType.VIDEO_CAPTURE, 0);
        const frame = Uint8Array.from({ length: 768 }, (_, i) => (i * 13) & 0xff);
        device.shm.bytes.set(frame, src.offset);
        await media.streamOn(s, V4l2BufType.VIDEO_OUTPUT);
        await media.streamOn(s, V4l2BufType.VIDEO_CAPTURE);
        await media.queueMmap(s, V4l2BufType.VIDEO_OUTPUT, 0, 768);
        await media.queueMmap(s, V4l2BufType.VIDEO_CAPTURE, 0);
        await media.nextDequeued();
        assert.equal((await media.nextDequeued()).bytesused, 768);
        assert.deepEqual(device.shm.bytes.subarray(dst.offset, dst.offset + 768), frame);
        await media.close(s);
        media.detach();
      } finally {
        await lb.close();
      }
    });
  }
});
