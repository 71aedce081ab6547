/**
 * The DeviceDriver contract: a device-type driver declares its device id and its wanted and
 * required features; VirtioDriver negotiates from them and attach refuses a device it cannot
 * drive with a typed error. The echo driver below is a whole driver for a new device type: its
 * contract plus one typed request over the RequestQueue.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlkDriver, BLK_DRIVER_FEATURES } from '../devices/blk/blk-driver.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { EntropyDevice } from '../devices/entropy/entropy-device.js';
import { EntropyDriver } from '../devices/entropy/entropy-driver.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { DeviceId } from '../spec/device-id.js';
import { F, bit } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice } from '../testing/echo-device.js';
import { connectInProcess } from '../transport/in-process/in-process-transport.js';
import {
  type DeviceDriver,
  type DeviceDriverType,
  DeviceDriverMismatchError,
  DriverFeaturesError,
  attachDeviceDriver,
  checkDriverContext,
} from './device-driver.js';
import { RequestAbortReason, RequestAbortedError, RequestQueue } from './request-queue.js';
import { DEFAULT_TRANSPORT_FEATURES, startDeviceDriver } from './start-device-driver.js';
import type { DriverContext } from './types.js';
import { VirtioDriver } from './virtio-driver.js';

const T = { timeout: 20_000 };
const ECHO_ID = 0x3f;
const NEEDED = bit(1);

/** A driver for EchoDevice: requires device bit 1, can use bit 0; one typed request. */
class EchoDriver implements DeviceDriver {
  static readonly type: DeviceDriverType<EchoDriver, { queue?: number }> = {
    name: 'echo',
    deviceId: ECHO_ID,
    wantedFeatures: bit(0),
    requiredFeatures: NEEDED,
    attach: (ctx, opts) => new EchoDriver(ctx, opts?.queue ?? 0),
  };
  private readonly rq: RequestQueue;
  constructor(
    private readonly ctx: DriverContext,
    queue: number,
  ) {
    checkDriverContext(EchoDriver.type, ctx);
    this.rq = new RequestQueue(ctx, queue);
  }
  /** Sends `data`; resolves with what the device echoed back. */
  async echo(data: Uint8Array): Promise<Uint8Array> {
    const addr = this.ctx.dma.alloc(data.length * 2, 16);
    try {
      this.ctx.memory.write(addr, data);
      const n = await this.rq.submit([{ addr, len: data.length }], [{ addr: addr + data.length, len: data.length }]);
      const back = new Uint8Array(n);
      this.ctx.memory.read(addr + data.length, back);
      return back;
    } finally {
      this.ctx.dma.free(addr);
    }
  }
  detach(): void {
    this.rq.detach();
  }
}

const typed = (cls: abstract new (...a: never[]) => VirtioError, code: string) => (e: unknown) => e instanceof cls && e.code === code;

describe('DeviceDriver contract', T, () => {
  it('driver/content/8: a required feature the device does not offer: initialization fails with FEATURES_REJECTED and FAILED', async () => {
    const conn = connectInProcess(new EchoDevice({ deviceFeatures: bit(0) }));
    await assert.rejects(
      startDeviceDriver(conn.transport, EchoDriver.type, { dma: conn.dma }),
      typed(VirtioError, ErrorCode.FEATURES_REJECTED),
    );
    assert.notEqual(conn.transport.getStatus() & Status.FAILED, 0);
    assert.equal(conn.transport.getStatus() & Status.DRIVER_OK, 0);
  });

  it('attach refuses a context where a required feature was not negotiated (DriverFeaturesError naming the bits)', async () => {
    const conn = connectInProcess(new EchoDevice({ deviceFeatures: bit(0) | NEEDED }));
    // Initialised without the contract and without bit 1: the contract check at attach catches it.
    const virtio = await VirtioDriver.init(conn.transport, { wantedFeatures: bit(0) | F.VERSION_1, dma: conn.dma });
    try {
      assert.throws(
        () => attachDeviceDriver(EchoDriver.type, virtio.context),
        (e: unknown) => e instanceof DriverFeaturesError && e.code === ErrorCode.FEATURES_REJECTED && e.missing === NEEDED,
      );
      // The constructor checks too, whatever path attaches it.
      assert.throws(() => new EchoDriver(virtio.context, 0), DriverFeaturesError);
    } finally {
      virtio.reset();
    }
  });

  it('a device of another type is refused before it is touched (DeviceDriverMismatchError)', async () => {
    const conn = connectInProcess(new EchoDevice());
    await assert.rejects(startDeviceDriver(conn.transport, BlkDriver.type, { dma: conn.dma }), (e: unknown) => {
      return e instanceof DeviceDriverMismatchError && e.code === ErrorCode.INVALID_ARGUMENT && e.expectedDeviceId === DeviceId.BLOCK && e.deviceId === ECHO_ID;
    });
    assert.equal(conn.transport.getStatus(), 0, 'status untouched');
    // A BlkDriver attached to a context of another device type refuses as well.
    const virtio = await VirtioDriver.init(conn.transport, { wantedFeatures: F.VERSION_1, dma: conn.dma });
    try {
      assert.throws(() => new BlkDriver(virtio.context), DeviceDriverMismatchError);
      assert.throws(() => new EntropyDriver(virtio.context), DeviceDriverMismatchError);
    } finally {
      virtio.reset();
    }
  });

  it('driver/content/7: only the device-type bits the contract knows are accepted, required ones always', async () => {
    const dev = new EchoDevice({ deviceFeatures: bit(0) | NEEDED | bit(2) });
    const conn = connectInProcess(dev);
    const started = await startDeviceDriver(conn.transport, EchoDriver.type, { dma: conn.dma });
    try {
      const f = started.virtio.features;
      assert.equal(f & (bit(0) | NEEDED | bit(2)), bit(0) | NEEDED, 'bit 2 is offered but not in the contract');
      assert.equal(f & ~(bit(0) | NEEDED), DEFAULT_TRANSPORT_FEATURES & dev.offeredFeatures);
      const out = Uint8Array.from([1, 2, 3, 4, 5]);
      assert.deepEqual(await started.driver.echo(out), out);
    } finally {
      started.close();
    }
  });

  it('close detaches: a pending request fails with RequestAbortedError("detached"), then the device is reset', async () => {
    const dev = new EchoDevice({ deviceFeatures: NEEDED });
    const conn = connectInProcess(dev);
    const started = await startDeviceDriver(conn.transport, EchoDriver.type, { dma: conn.dma, driverOptions: { queue: 1 } });
    // The device answers from a notification, delivered after this synchronous close.
    const p = started.driver.echo(Uint8Array.of(9)).catch((e: unknown) => e);
    started.close();
    const e = await p;
    assert.ok(e instanceof RequestAbortedError && e.reason === RequestAbortReason.DETACHED, String(e));
    assert.equal(conn.transport.getStatus(), 0);
  });

  it('blk and entropy declare their contracts and start through startDeviceDriver', async () => {
    assert.equal(BlkDriver.type.deviceId, DeviceId.BLOCK);
    assert.equal(BlkDriver.type.wantedFeatures, BLK_DRIVER_FEATURES);
    assert.equal(BlkDriver.type.requiredFeatures, 0n);
    assert.equal(EntropyDriver.type.deviceId, DeviceId.ENTROPY);
    const blkConn = connectInProcess(new BlkDevice(new MemoryBackend(1 << 20), { serial: 'contract' }));
    const blk = await startDeviceDriver(blkConn.transport, BlkDriver.type, { dma: blkConn.dma, transportFeatures: DEFAULT_TRANSPORT_FEATURES | F.RING_PACKED });
    try {
      assert.notEqual(blk.virtio.features & F.RING_PACKED, 0n);
      const data = Uint8Array.from({ length: 1024 }, (_, i) => i & 0xff);
      await blk.driver.write(4, data);
      assert.deepEqual(await blk.driver.read(4, 1024), data);
      assert.equal(await blk.driver.getId(), 'contract');
    } finally {
      blk.close();
    }
    const rngConn = connectInProcess(new EntropyDevice());
    const rng = await startDeviceDriver(rngConn.transport, EntropyDriver.type, { dma: rngConn.dma, driverOptions: { chunk: 16 } });
    try {
      assert.equal((await rng.driver.read(100)).length, 100);
    } finally {
      rng.close();
    }
  });
});
