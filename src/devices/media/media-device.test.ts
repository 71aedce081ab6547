import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceId } from '../../spec/device-id.js';
import {
  Errno,
  MEDIA_EVENT_HEADER_SIZE,
  MediaCmd,
  MediaConfig,
  MediaEvent,
  V4l2BufFlag,
  V4l2Buffer,
  V4l2BufType,
  V4l2Cap,
  V4l2Cid,
  V4l2EventType,
  V4l2ExtControls,
  V4l2Format,
  V4l2Memory,
  V4l2PixFmt,
  V4l2RequestBuffers,
  VFL_TYPE_VIDEO,
  Vidioc,
} from '../../spec/media.js';
import { createTestPair } from '../blk/test-pair.js';
import { MediaDevice, type MediaDeviceOptions } from './media-device.js';
import { MediaDriver, MediaErrnoError, type MediaEventMessage } from './media-driver.js';
import { getU64 } from './media-ioctls.js';

const T = { timeout: 10_000 };
const OUT = V4l2BufType.VIDEO_OUTPUT;
const CAP = V4l2BufType.VIDEO_CAPTURE;

function setup(opts: MediaDeviceOptions = {}, packed = false) {
  const device = new MediaDevice({ shmSize: 1 << 20, ...opts });
  const pair = createTestPair(device, { packed });
  const media = new MediaDriver(pair.ctx, { eventBuffers: 8 });
  const events: MediaEventMessage[] = [];
  media.onEvent((e) => events.push(e));
  return { device, pair, media, events };
}

function words(...ws: number[]): Uint8Array {
  const b = new Uint8Array(ws.length * 4);
  ws.forEach((w, i) => new DataView(b.buffer).setUint32(i * 4, w >>> 0, true));
  return b;
}

const errnoOf = (r: Uint8Array): number => new DataView(r.buffer, r.byteOffset).getUint32(0, true);
const isErrno = (n: number) => (e: unknown) => e instanceof MediaErrnoError && e.errno === n;

/** A GREY 64x32 session (2048-byte frames) with `n` buffers on each queue. */
async function codec(media: MediaDriver, outMemory: number = V4l2Memory.USERPTR, capMemory: number = V4l2Memory.MMAP, n = 2) {
  const s = await media.open();
  await media.format(s, Vidioc.S_FMT, OUT, { width: 64, height: 32, pixelformat: V4l2PixFmt.GREY });
  assert.equal(await media.requestBuffers(s, OUT, outMemory, n), n);
  assert.equal(await media.requestBuffers(s, CAP, capMemory, n), n);
  return s;
}

const frame = (seed: number, n = 2048): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 3 + seed) & 0xff);

describe('MediaDevice', T, () => {
  it('5.22 device id 48, no feature bits, config device_caps (M2M, streaming), device_type video, card; shared memory region 0', () => {
    const { media, device } = setup({ card: 'cam' });
    assert.equal(device.deviceId, DeviceId.MEDIA);
    assert.equal(device.offeredFeatures & ((1n << 24n) - 1n), 0n);
    assert.equal(device.configSize, MediaConfig.SIZE);
    assert.equal(media.config.deviceCaps, V4l2Cap.VIDEO_M2M | V4l2Cap.STREAMING | V4l2Cap.EXT_PIX_FORMAT);
    assert.equal(media.config.deviceType, VFL_TYPE_VIDEO);
    assert.equal(media.config.card, 'cam');
    assert.deepEqual(device.sharedMemoryRegions.map((r) => [r.id, r.length]), [[0, 1 << 20]]);
  });

  it('device/media/1: every OPEN gets an id no open session has; a closed id may come back; sessions are bounded (EBUSY)', async () => {
    const { media } = setup({ maxSessions: 4 });
    const ids = [await media.open(), await media.open(), await media.open()];
    assert.equal(new Set(ids).size, 3);
    await media.close(ids[1]!);
    const more = await media.open();
    assert.ok(!ids.filter((i) => i !== ids[1]).includes(more));
    await media.open();
    await assert.rejects(media.open(), isErrno(Errno.EBUSY));
  });

  for (const packed of [false, true]) {
    it(`pass-through codec: SHARED_PAGES input frames come out in MMAP capture buffers, in order, with timestamps and sequence numbers (${packed ? 'packed' : 'split'})`, async () => {
      const { media, device, pair } = setup({}, packed);
      const s = await codec(media);
      assert.deepEqual((await media.enumFormats(s, OUT)).map((f) => f.pixelformat), [V4l2PixFmt.NV12, V4l2PixFmt.GREY]);
      const caps = [await media.queryBuffer(s, CAP, 0), await media.queryBuffer(s, CAP, 1)];
      assert.notEqual(caps[0]!.offset, caps[1]!.offset);
      await media.streamOn(s, OUT);
      await media.streamOn(s, CAP);
      const bufs = [pair.ctx.dma.alloc(2048), pair.ctx.dma.alloc(2048)];
      for (let f = 0; f < 4; f++) {
        await media.queueMmap(s, CAP, f % 2);
        pair.memory.write(bufs[f % 2]!, frame(f));
        await media.queueShared(s, OUT, f % 2, [{ addr: bufs[f % 2]!, len: 2048 }], 0x1000 + f, 2048, 100 + f);
        const src = await media.nextDequeued();
        const dst = await media.nextDequeued();
        assert.deepEqual([src.type, src.index, dst.type, dst.index], [OUT, f % 2, CAP, f % 2]);
        assert.deepEqual([dst.bytesused, dst.sequence, dst.timestampSec], [2048, f, 100 + f]);
        assert.equal(dst.flags & (V4l2BufFlag.DONE | V4l2BufFlag.TIMESTAMP_COPY | V4l2BufFlag.QUEUED), V4l2BufFlag.DONE | V4l2BufFlag.TIMESTAMP_COPY);
        const off = caps[f % 2]!.offset;
        assert.deepEqual(device.shm.bytes.subarray(off, off + 2048), frame(f));
      }
      assert.deepEqual(pair.resets, []);
    });
  }

  it('pass-through codec: MMAP input into SHARED_PAGES capture split over SG entries; a capture buffer too small is returned with ERROR', async () => {
    const { media, device, pair } = setup();
    const s = await codec(media, V4l2Memory.MMAP, V4l2Memory.USERPTR);
    const inBuf = await media.queryBuffer(s, OUT, 0);
    device.shm.bytes.set(frame(9), inBuf.offset);
    await media.streamOn(s, OUT);
    await media.streamOn(s, CAP);
    const parts = [pair.ctx.dma.alloc(1000), pair.ctx.dma.alloc(1048)];
    await media.queueShared(s, CAP, 0, [{ addr: parts[0]!, len: 1000 }, { addr: parts[1]!, len: 1048 }], 0x5000);
    await media.queueMmap(s, OUT, 0, 2048, 7);
    await media.nextDequeued();
    const d = await media.nextDequeued();
    assert.equal(d.bytesused, 2048);
    assert.deepEqual([...pair.memory.slice(parts[0]!, 1000), ...pair.memory.slice(parts[1]!, 1048)], [...frame(9)]);
    // A capture buffer of 100 bytes for a 2048-byte frame.
    const small = pair.ctx.dma.alloc(100);
    await media.queueShared(s, CAP, 1, [{ addr: small, len: 100 }], 0x6000);
    await media.queueMmap(s, OUT, 1, 2048);
    await media.nextDequeued();
    const e = await media.nextDequeued();
    assert.notEqual(e.flags & V4l2BufFlag.ERROR, 0);
    assert.equal(e.bytesused, 0);
  });

  it('device/media/2 driver/media/3: a successful WR ioctl writes its payload back; a failed one answers the header only and the payload stays the driver\'s', async () => {
    const { media } = setup();
    const s = await media.open();
    const p = new Uint8Array(V4l2Format.SIZE);
    const v = new DataView(p.buffer);
    v.setUint32(V4l2Format.TYPE, CAP, true);
    v.setUint32(V4l2Format.WIDTH, 101, true);
    v.setUint32(V4l2Format.HEIGHT, 5000, true);
    v.setUint32(V4l2Format.PIXELFORMAT, 0x1234, true);
    const tried = await media.ioctl(s, Vidioc.TRY_FMT, p, V4l2Format.SIZE);
    assert.equal(tried.errno, 0);
    const t = new DataView(tried.payload!.buffer);
    assert.deepEqual([t.getUint32(V4l2Format.WIDTH, true), t.getUint32(V4l2Format.HEIGHT, true), t.getUint32(V4l2Format.PIXELFORMAT, true)], [100, 1088, V4l2PixFmt.NV12]);
    assert.equal(t.getUint32(V4l2Format.SIZEIMAGE, true), (100 * 1088 * 3) / 2);
    // Failure: a bad buffer type; the response is the header alone.
    v.setUint32(V4l2Format.TYPE, 77, true);
    const raw = await media.exchange(new Uint8Array([...words(MediaCmd.IOCTL, 0, s, Vidioc.G_FMT), ...p]), 8 + V4l2Format.SIZE);
    assert.equal(raw.length, 8);
    assert.equal(errnoOf(raw), Errno.EINVAL);
    const failed = await media.ioctl(s, Vidioc.S_FMT, p, V4l2Format.SIZE);
    assert.deepEqual(failed, { errno: Errno.EINVAL, payload: null });
    // S_FMT with buffers allocated: EBUSY.
    await media.requestBuffers(s, OUT, V4l2Memory.MMAP, 1);
    await assert.rejects(media.format(s, Vidioc.S_FMT, OUT, { width: 32, height: 32, pixelformat: V4l2PixFmt.GREY }), isErrno(Errno.EBUSY));
  });

  it('device/media/3: the controls pointer of G_EXT_CTRLS is returned as the driver passed it; unknown controls are EINVAL', async () => {
    const { media } = setup();
    const s = await media.open();
    const r = await media.getExtControls(s, [V4l2Cid.MIN_BUFFERS_FOR_CAPTURE, V4l2Cid.MIN_BUFFERS_FOR_OUTPUT], 0x7ffd_1234_5678);
    assert.deepEqual(r, { values: [1, 1], controlsPointer: 0x7ffd_1234_5678 });
    await assert.rejects(media.getExtControls(s, [0x00980900]), isErrno(Errno.EINVAL));
    const many = new Uint8Array(V4l2ExtControls.SIZE);
    new DataView(many.buffer).setUint32(V4l2ExtControls.COUNT, 65, true);
    assert.equal((await media.ioctl(s, Vidioc.G_EXT_CTRLS, many, 64)).errno, Errno.EINVAL);
  });

  it('device/media/4: ioctls not supported (QUERYCAP, DQBUF, DQEVENT, JPEGCOMP, LOG_STATUS, EXPBUF, unknown) answer ENOTTY', async () => {
    const { media } = setup();
    const s = await media.open();
    for (const code of [Vidioc.QUERYCAP, Vidioc.DQBUF, Vidioc.DQEVENT, Vidioc.G_JPEGCOMP, Vidioc.S_JPEGCOMP, Vidioc.LOG_STATUS, Vidioc.EXPBUF, 0x99, 0xffff_ffff]) {
      assert.deepEqual(await media.ioctl(s, code, new Uint8Array(64), 64), { errno: Errno.ENOTTY, payload: null }, `code ${code}`);
    }
  });

  it('device/media/5: MMAP answers the offset and the length of the buffer; offsets of no buffer of the session are EINVAL', async () => {
    const { media } = setup();
    const s = await codec(media, V4l2Memory.MMAP, V4l2Memory.MMAP);
    const other = await codec(media, V4l2Memory.MMAP, V4l2Memory.MMAP);
    const q = await media.queryBuffer(s, CAP, 1);
    assert.equal(q.length, 2048);
    assert.notEqual(q.flags & V4l2BufFlag.MAPPED, 0);
    assert.deepEqual(await media.mmap(s, q.offset), { addr: q.offset, len: 2048 });
    await assert.rejects(media.mmap(s, q.offset + 1), isErrno(Errno.EINVAL));
    await assert.rejects(media.mmap(other, q.offset), isErrno(Errno.EINVAL));
  });

  it('device/media/6: a mapping stays valid after its buffers are freed and its session closed, until MUNMAP', async () => {
    const { media, device } = setup();
    const s = await codec(media, V4l2Memory.MMAP, V4l2Memory.MMAP, 1);
    const q = await media.queryBuffer(s, CAP, 0);
    const m = await media.mmap(s, q.offset);
    device.shm.bytes.fill(0x5a, m.addr, m.addr + m.len);
    assert.equal(await media.requestBuffers(s, CAP, V4l2Memory.MMAP, 0), 0);
    await media.close(s);
    // New buffers never land on the mapped range.
    const s2 = await codec(media, V4l2Memory.MMAP, V4l2Memory.MMAP, 4);
    for (let i = 0; i < 4; i++) {
      for (const type of [OUT, CAP]) {
        const off = (await media.queryBuffer(s2, type, i)).offset;
        assert.ok(off + 2048 <= m.addr || off >= m.addr + m.len, `buffer at ${off} overlaps the mapping at ${m.addr}`);
      }
    }
    assert.ok(device.shm.isMapped(m.addr));
    assert.ok(device.shm.bytes.subarray(m.addr, m.addr + m.len).every((b) => b === 0x5a));
    await media.munmap(m.addr);
    assert.ok(!device.shm.isMapped(m.addr));
    await assert.rejects(media.munmap(m.addr), isErrno(Errno.EINVAL));
  });

  it('device/media/7: QBUF of a SHARED_PAGES buffer returns m.userptr exactly as given (all 64 bits)', async () => {
    const { media, pair } = setup();
    const s = await codec(media, V4l2Memory.USERPTR, V4l2Memory.USERPTR);
    const a = pair.ctx.dma.alloc(2048);
    const back = await media.queueShared(s, CAP, 0, [{ addr: a, len: 2048 }], 0x1f_ffff_dead_b000);
    const v = new DataView(back.buffer);
    assert.equal(getU64(v, V4l2Buffer.M), 0x1f_ffff_dead_b000);
    assert.equal(v.getUint32(V4l2Buffer.LENGTH, true), 2048);
    assert.notEqual(v.getUint32(V4l2Buffer.FLAGS, true) & V4l2BufFlag.QUEUED, 0);
  });

  it('VIRTIO_OBJECT (DMABUF) memory is not offered: REQBUFS refuses it (EINVAL), EXPBUF is ENOTTY', async () => {
    const { media } = setup();
    const s = await media.open();
    await assert.rejects(media.requestBuffers(s, CAP, V4l2Memory.DMABUF, 2), isErrno(Errno.EINVAL));
    assert.equal((await media.ioctl(s, Vidioc.EXPBUF, new Uint8Array(64), 64)).errno, Errno.ENOTTY);
  });

  it('device/media/9: a failed session answers EIO and its id is not given out again until the driver closed it (even when the id counter comes round to it)', async () => {
    const device = new MediaDevice({ shmSize: 1 << 20 });
    const pair = createTestPair(device);
    const media = new MediaDriver(pair.ctx, { eventBuffers: 0 }); // never hears the ERROR: does not close
    const s = await media.open();
    assert.ok(device.failSession(s, Errno.EIO));
    assert.ok(!device.failSession(s), 'once');
    const raw = await media.exchange(new Uint8Array([...words(MediaCmd.IOCTL, 0, s, Vidioc.G_FMT), ...new Uint8Array(208)]), 8 + 208);
    assert.equal(errnoOf(raw), Errno.EIO);
    assert.equal(raw.length, 8);
    // The next id to give out is the failed one: it is skipped.
    (device as unknown as { nextSession: number }).nextSession = s;
    const next = await media.open();
    assert.notEqual(next, s);
    await media.close(s);
    (device as unknown as { nextSession: number }).nextSession = s;
    assert.equal(await media.open(), s, 'closed: the id may come back');
  });

  it('driver/media/4: on an ERROR event the driver closes the session', async () => {
    const { media, device, events } = setup();
    const s = await media.open();
    assert.ok(device.failSession(s, Errno.ENOMEM));
    for (let i = 0; i < 50 && device.sessionIds.includes(s); i++) await new Promise((r) => setImmediate(r));
    assert.ok(!device.sessionIds.includes(s), 'the driver closed it');
    assert.ok(!media.sessions.includes(s));
    const err = events.find((e) => e.event === MediaEvent.ERROR)!;
    assert.deepEqual([err.sessionId, err.code], [s, Errno.ENOMEM]);
  });

  it('driver/media/5: DQBUF events carry NULL pointers for SHARED_PAGES buffers; the driver reads no pointer from them', async () => {
    const { media, pair, events } = setup();
    const s = await codec(media, V4l2Memory.USERPTR, V4l2Memory.USERPTR);
    await media.streamOn(s, OUT);
    await media.streamOn(s, CAP);
    const a = pair.ctx.dma.alloc(2048);
    const b = pair.ctx.dma.alloc(2048);
    await media.queueShared(s, CAP, 0, [{ addr: b, len: 2048 }], 0xabc000);
    await media.queueShared(s, OUT, 0, [{ addr: a, len: 2048 }], 0xdef000, 2048);
    await media.nextDequeued();
    const d = await media.nextDequeued();
    assert.ok(!('userptr' in d));
    const dq = events.filter((e) => e.event === MediaEvent.DQBUF);
    assert.equal(dq.length, 2);
    for (const e of dq) assert.equal(getU64(new DataView(e.raw.buffer), MEDIA_EVENT_HEADER_SIZE + V4l2Buffer.M), 0);
  });

  it('driver/media/2: payloads are the 64-bit layouts (v4l2_buffer 88, v4l2_format 208, ...); a 32-bit-sized v4l2_buffer is cut short (EFAULT)', async () => {
    const { media } = setup();
    const s = await codec(media);
    assert.deepEqual([V4l2Buffer.SIZE, V4l2Format.SIZE, V4l2RequestBuffers.SIZE, V4l2ExtControls.SIZE], [88, 208, 20, 32]);
    assert.equal((await media.ioctl(s, Vidioc.QUERYBUF, new Uint8Array(68), 88)).errno, Errno.EFAULT);
    assert.equal((await media.queryBuffer(s, CAP, 1)).length, 2048);
  });

  it('events: SOURCE_CHANGE for a subscribed session when S_FMT changes the resolution; STREAMOFF takes back queued buffers without DQBUF', async () => {
    const { media, events, device } = setup();
    const s = await media.open();
    await media.subscribe(s, V4l2EventType.SOURCE_CHANGE);
    await assert.rejects(media.subscribe(s, 77), isErrno(Errno.EINVAL));
    await media.format(s, Vidioc.S_FMT, OUT, { width: 64, height: 64, pixelformat: V4l2PixFmt.GREY });
    for (let i = 0; i < 20 && events.length === 0; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(events.map((e) => [e.event, e.sessionId, e.code]), [[MediaEvent.EVENT, s, V4l2EventType.SOURCE_CHANGE]]);
    await media.subscribe(s, V4l2EventType.ALL, true);
    await media.format(s, Vidioc.S_FMT, OUT, { width: 32, height: 32, pixelformat: V4l2PixFmt.GREY });
    await media.requestBuffers(s, CAP, V4l2Memory.MMAP, 2);
    await media.streamOn(s, CAP);
    await media.queueMmap(s, CAP, 0);
    await media.streamOff(s, CAP);
    assert.equal((await media.queryBuffer(s, CAP, 0)).flags & V4l2BufFlag.QUEUED, 0);
    await media.queueMmap(s, CAP, 0);
    assert.equal(events.length, 1);
    assert.equal(device.eventsWaiting, 0);
  });

  it('untrusted driver: short or unknown commands, short payloads, SG entries outside memory or not covering the buffer, a buffer queued twice, no room: an errno or length 0, never a throw', async () => {
    const { media, pair } = setup();
    const s = await codec(media, V4l2Memory.USERPTR, V4l2Memory.MMAP);
    assert.equal(errnoOf(await media.exchange(new Uint8Array(3), 8)), Errno.EINVAL);
    assert.equal(errnoOf(await media.exchange(words(99, 0), 8)), Errno.EINVAL);
    assert.equal(errnoOf(await media.exchange(words(MediaCmd.CLOSE, 0), 8)), Errno.EINVAL);
    assert.equal(errnoOf(await media.exchange(words(MediaCmd.IOCTL, 0, 9999, Vidioc.G_FMT), 8)), Errno.EBADF);
    assert.equal(errnoOf(await media.exchange(words(MediaCmd.IOCTL, 0, s, Vidioc.G_FMT, 1), 216)), Errno.EFAULT);
    assert.equal(errnoOf(await media.exchange(words(MediaCmd.MMAP, 0, s), 24)), Errno.EINVAL);
    assert.equal((await media.exchange(words(MediaCmd.OPEN, 0), 4)).length, 0, 'no room for a header');
    const a = pair.ctx.dma.alloc(2048);
    await assert.rejects(media.queueShared(s, OUT, 0, [{ addr: 0x7000_0000_0000, len: 2048 }], 1), isErrno(Errno.EFAULT));
    // SG entries covering less than `length`: the v4l2_buffer says 2048, one entry of 1000 follows.
    const p = new Uint8Array(V4l2Buffer.SIZE);
    const v = new DataView(p.buffer);
    v.setUint32(V4l2Buffer.TYPE, OUT, true);
    v.setUint32(V4l2Buffer.MEMORY, V4l2Memory.USERPTR, true);
    v.setUint32(V4l2Buffer.LENGTH, 2048, true);
    const sg = new Uint8Array(16);
    new DataView(sg.buffer).setUint32(0, a, true);
    new DataView(sg.buffer).setUint32(8, 1000, true);
    assert.equal((await media.ioctl(s, Vidioc.QBUF, p, 88, sg)).errno, Errno.EINVAL);
    await media.queueShared(s, OUT, 0, [{ addr: a, len: 2048 }], 1, 2048);
    await assert.rejects(media.queueShared(s, OUT, 0, [{ addr: a, len: 2048 }], 1, 2048), isErrno(Errno.EINVAL), 'queued twice');
    await assert.rejects(media.queueMmap(s, OUT, 1), isErrno(Errno.EINVAL), 'wrong memory type');
    await assert.rejects(media.queueMmap(s, CAP, 7), isErrno(Errno.EINVAL), 'no such buffer');
    await assert.rejects(media.streamOn(s, 9), isErrno(Errno.EINVAL));
    assert.deepEqual(pair.resets, []);
  });
});
