/**
 * A device that throws is never silent: in `activate` or in a queue handler the core sets
 * DEVICE_NEEDS_RESET and keeps the error; the in-process driver surfaces a VirtioError whose
 * `cause` is the device's error, and createLoopback logs a warning with its message by default.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeviceContext } from '../device/types.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { Status } from '../spec/status.js';
import { EchoDevice } from './echo-device.js';
import { createLoopback } from './loopback.js';

class ActivateThrowsDevice extends EchoDevice {
  constructor(readonly failure: unknown) {
    super();
  }
  override activate(_ctx: DeviceContext): void {
    throw this.failure;
  }
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    level: 1,
    error: (m: string) => void lines.push(`ERROR ${m}`),
    warn: (m: string) => void lines.push(`WARN ${m}`),
    info: () => {},
    debug: () => {},
  };
}

/** Runs `fn` with process.stderr.write captured; returns what was written. */
async function captureStderr(fn: () => Promise<void>): Promise<string> {
  const original = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = original;
  }
  return text;
}

describe('device errors reach the driver and the log', () => {
  it('a device throwing in activate: createLoopback rejects with DEVICE_NEEDS_RESET whose cause is the device error', async () => {
    const failure = new Error('backing store unavailable');
    const log = recordingLogger();
    const err = await createLoopback(new ActivateThrowsDevice(failure), { logger: log }).then(
      () => assert.fail('createLoopback resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof VirtioError);
    assert.equal(err.code, ErrorCode.DEVICE_NEEDS_RESET);
    assert.equal(err.cause, failure, 'the device error itself is the cause');
    assert.match(err.message, /backing store unavailable/);
    assert.ok(log.lines.some((l) => l.startsWith('WARN') && l.includes('backing store unavailable')), log.lines.join('\n'));
  });

  it('a device throwing a non-Error value in activate: the value is the cause', async () => {
    const err = await createLoopback(new ActivateThrowsDevice('plain string failure'), { logger: silentLogger }).then(
      () => assert.fail('createLoopback resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof VirtioError);
    assert.equal(err.cause, 'plain string failure');
  });

  it('a device throwing in its queue handler: onNeedsReset gets a VirtioError with the device error as cause', async () => {
    const dev = new EchoDevice();
    const log = recordingLogger();
    const lb = await createLoopback(dev, { logger: log });
    try {
      assert.equal(lb.driver.needsResetError, null, 'no error while the device is fine');
      const seen: VirtioError[] = [];
      lb.driver.onNeedsReset((e) => seen.push(e));
      const failure = new RangeError('handler bug: index 9 out of range');
      dev.throwOnNotify = failure;
      const q = lb.context.queue(0);
      const buf = lb.dma.alloc(16);
      assert.equal(q.add([{ addr: buf, len: 16 }], [], 1), true);
      lb.context.kick(0);
      // The configuration change is delivered as a microtask after the device's call returns.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.ok(lb.core.status & Status.DEVICE_NEEDS_RESET);
      assert.equal(seen.length, 1, 'one configuration change with DEVICE_NEEDS_RESET');
      const err = seen[0]!;
      assert.equal(err.code, ErrorCode.DEVICE_NEEDS_RESET);
      assert.equal(err.cause, failure);
      assert.match(err.message, /handler bug: index 9 out of range/);
      assert.equal((lb.driver.needsResetError as VirtioError | null)?.cause, failure, 'the driver keeps surfacing it');
      assert.ok(log.lines.some((l) => l.startsWith('WARN') && l.includes('handler bug: index 9 out of range')), log.lines.join('\n'));
    } finally {
      await lb.close();
    }
    // A reset forgets the error.
    assert.equal(lb.core.needsResetError, null);
  });

  it('a device passing its error to ctx.needsReset: it becomes the cause too', async () => {
    let ctx: DeviceContext | null = null;
    class Capture extends EchoDevice {
      override activate(c: DeviceContext): void {
        super.activate(c);
        ctx = c;
      }
    }
    const lb = await createLoopback(new Capture(), { logger: silentLogger });
    try {
      const failure = new Error('disk went away');
      (ctx as DeviceContext | null)?.needsReset('backend failed', failure);
      const err = lb.driver.needsResetError;
      assert.ok(err !== null);
      assert.equal(err.cause, failure);
      assert.match(err.message, /backend failed/);
    } finally {
      await lb.close();
    }
  });

  it('createLoopback warns on stderr by default with the device message; a logger option silences it', async () => {
    const loud = await captureStderr(async () => {
      await createLoopback(new ActivateThrowsDevice(new Error('default log shows this'))).catch(() => {});
    });
    assert.match(loud, /WARN .*default log shows this/);
    const quiet = await captureStderr(async () => {
      await createLoopback(new ActivateThrowsDevice(new Error('nobody sees this')), { logger: silentLogger }).catch(() => {});
    });
    assert.equal(quiet, '');
  });

  it('asking for packed rings from a device without RING_PACKED is a VirtioError', async () => {
    const dev = new EchoDevice({ transportFeatures: (1n << 32n) });
    await assert.rejects(createLoopback(dev, { packed: true, logger: silentLogger }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.FEATURES_REJECTED);
  });
});
