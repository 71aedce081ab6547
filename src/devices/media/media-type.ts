/**
 * The registry record of the media device (5.22). vhost-user.json defines no "media" back-end
 * type and neither QEMU 7.2 nor Linux 6.1 knows virtio-media, so there is no sub-command: the
 * device is a library object, proven on every transport of the matrix.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { MediaConfig, V4l2BufFlag, V4l2BufType, V4l2Cap, V4l2Memory, V4l2PixFmt, Vidioc } from '../../spec/media.js';
import type { DeviceType } from '../device-type.js';
import { MediaDevice } from './media-device.js';
import { MediaDriver } from './media-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface MediaDeviceArgs {
  /** config `card` (5.22.4): the device's name, UTF-8, at most 32 bytes. Default: MediaDevice's. */
  readonly card?: string;
  /** Bytes of shared memory region 0 for MMAP buffers (a multiple of 4096). Default 8 MiB. */
  readonly shmSize?: number;
  /** Maximum size of each queue. Default 128. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-media: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const MEDIA_TYPE: DeviceType = {
  name: 'media',
  deviceId: DeviceId.MEDIA,
  summary: 'a virtio-media memory-to-memory video device with a pass-through codec (library only: no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: MediaConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): MediaDevice {
    const a = (args ?? {}) as MediaDeviceArgs;
    return new MediaDevice({
      ...(a.card !== undefined ? { card: a.card } : {}),
      ...(a.shmSize !== undefined ? { shmSize: a.shmSize } : {}),
      ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}),
    });
  },
  matrixCase() {
    const device = new MediaDevice({ queueSize: 64, shmSize: 1 << 20, card: 'matrix codec' });
    return {
      device,
      async exercise(driver) {
        const media = new MediaDriver(driver.context, { eventBuffers: 8 });
        assert.equal(media.config.card, 'matrix codec');
        assert.notEqual(media.config.deviceCaps & V4l2Cap.VIDEO_M2M, 0);
        const s = await media.open();
        const fmt = await media.format(s, Vidioc.S_FMT, V4l2BufType.VIDEO_OUTPUT, { width: 64, height: 32, pixelformat: V4l2PixFmt.GREY });
        assert.equal(fmt.sizeimage, 2048);
        assert.equal((await media.format(s, Vidioc.G_FMT, V4l2BufType.VIDEO_CAPTURE)).pixelformat, V4l2PixFmt.GREY, 'input = output format');
        assert.equal(await media.requestBuffers(s, V4l2BufType.VIDEO_OUTPUT, V4l2Memory.USERPTR, 2), 2);
        assert.equal(await media.requestBuffers(s, V4l2BufType.VIDEO_CAPTURE, V4l2Memory.MMAP, 2), 2);
        const cap = await media.queryBuffer(s, V4l2BufType.VIDEO_CAPTURE, 0);
        const map = await media.mmap(s, cap.offset);
        assert.equal(map.len, 2048);
        await media.streamOn(s, V4l2BufType.VIDEO_OUTPUT);
        await media.streamOn(s, V4l2BufType.VIDEO_CAPTURE);
        await media.queueMmap(s, V4l2BufType.VIDEO_CAPTURE, 0);
        // An input frame in two pieces of guest memory.
        const frame = Uint8Array.from({ length: 2048 }, (_, i) => (i * 7 + 3) & 0xff);
        const ctx = driver.context;
        const a = ctx.dma.alloc(1024);
        const b = ctx.dma.alloc(1024);
        ctx.memory.write(a, frame.subarray(0, 1024));
        ctx.memory.write(b, frame.subarray(1024));
        await media.queueShared(s, V4l2BufType.VIDEO_OUTPUT, 0, [{ addr: a, len: 1024 }, { addr: b, len: 1024 }], 0x7fff_0000_1000, 2048, 42);
        const d1 = await media.nextDequeued();
        const d2 = await media.nextDequeued();
        assert.deepEqual([d1.type, d2.type], [V4l2BufType.VIDEO_OUTPUT, V4l2BufType.VIDEO_CAPTURE]);
        assert.equal(d2.bytesused, 2048);
        assert.equal(d2.timestampSec, 42);
        assert.notEqual(d2.flags & V4l2BufFlag.DONE, 0);
        assert.deepEqual(device.shm.bytes.subarray(map.addr, map.addr + 2048), frame);
        ctx.dma.free(a);
        ctx.dma.free(b);
        await media.munmap(map.addr);
        await media.close(s);
        media.detach();
      },
    };
  },
};
