/**
 * Test support for virtio-snd: a device wired to a driver context (blk's test pair), raw
 * requests on any queue, request encoders, and a driver context that records every buffer the
 * driver makes available (to check the driver's side of the chapter).
 */
import type { DriverContext } from '../../driver/types.js';
import type { DriverQueue, Segment } from '../../queue/types.js';
import { createTestPair, type TestPair, type TestPairOptions } from '../blk/test-pair.js';
import { SoundDevice, type SoundDeviceOptions } from './sound-device.js';

export { RawQueue } from '../scsi/scsi-test-support.js';

export interface SoundPair {
  readonly device: SoundDevice;
  readonly pair: TestPair;
}

export function soundPair(devOpts: SoundDeviceOptions = {}, pairOpts: TestPairOptions = {}): SoundPair {
  return soundPairOf(new SoundDevice(devOpts), pairOpts);
}

/** A pair on a device already built (control elements added before the driver starts). */
export function soundPairOf(device: SoundDevice, pairOpts: TestPairOptions = {}): SoundPair {
  return { device, pair: createTestPair(device, { queueSize: 32, ...pairOpts }) };
}

/** u32 words in the given byte order. */
export function words(le: boolean, ...w: number[]): Uint8Array {
  const b = new Uint8Array(w.length * 4);
  const v = new DataView(b.buffer);
  w.forEach((x, i) => v.setUint32(i * 4, x >>> 0, le));
  return b;
}

export function u32(b: Uint8Array, at: number, le = true): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, le);
}

/** struct virtio_snd_pcm_set_params. */
export function setParamsRequest(
  le: boolean,
  stream: number,
  p: { bufferBytes: number; periodBytes: number; features?: number; channels: number; format: number; rate: number; padding?: number },
): Uint8Array {
  const b = new Uint8Array(24);
  b.set(words(le, 0x0101, stream, p.bufferBytes, p.periodBytes, p.features ?? 0), 0);
  b[20] = p.channels;
  b[21] = p.format;
  b[22] = p.rate;
  b[23] = p.padding ?? 0;
  return b;
}

/** One buffer the driver made available: the lengths of its readable and writable segments, and the readable bytes. */
export interface PostedBuffer {
  readonly queue: number;
  readonly out: readonly number[];
  readonly inn: readonly number[];
  readonly outBytes: Uint8Array;
}

/** A driver context that records every buffer added to its queues (the driver's side of the rules). */
export function recordingContext(ctx: DriverContext, posted: PostedBuffer[], configReads: [number, number][] = []): DriverContext {
  const wrap = (q: DriverQueue<number>, index: number): DriverQueue<number> =>
    new Proxy(q, {
      get(target, prop) {
        if (prop === 'add') {
          return (out: readonly Segment[], inn: readonly Segment[], token: number, indirect?: boolean) => {
            const bytes = out.map((s) => ctx.memory.slice(s.addr, s.len).slice());
            const outBytes = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
            let at = 0;
            for (const b of bytes) outBytes.set(b, (at += b.length) - b.length);
            posted.push({ queue: index, out: out.map((s) => s.len), inn: inn.map((s) => s.len), outBytes });
            return target.add(out, inn, token, indirect);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const queues = new WeakMap<DriverQueue<number>, DriverQueue<number>>();
  return {
    deviceId: ctx.deviceId,
    memory: ctx.memory,
    features: ctx.features,
    littleEndian: ctx.littleEndian,
    dma: ctx.dma,
    numQueues: ctx.numQueues,
    queue(i) {
      const q = ctx.queue(i);
      let w = queues.get(q);
      if (w === undefined) {
        w = wrap(q, i);
        queues.set(q, w);
      }
      return w;
    },
    kick: (i) => ctx.kick(i),
    onUsed: (i, cb) => ctx.onUsed(i, cb),
    onConfigChange: (cb) => ctx.onConfigChange(cb),
    readConfig(o, l) {
      configReads.push([o, l]);
      return ctx.readConfig(o, l);
    },
    writeConfig: (o, s) => ctx.writeConfig(o, s),
    onStop: ctx.onStop ? (l) => ctx.onStop!(l) : undefined,
  };
}
