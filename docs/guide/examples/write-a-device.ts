// A device type of your own, in one file: the device on the kit's QueueServer, its driver on a
// RequestQueue with a DeviceDriver contract, both run in one process and then over the PCI
// transport at register level. The device reverses the bytes of each request.
// Run: node dist/docs/guide/examples/write-a-device.js
import assert from 'node:assert/strict';
import { F, GuestMemory } from 'virtio-ts';
import { type DeviceContext, type QueueRequest, QueueServer, type VirtioDevice } from 'virtio-ts/device';
import { DmaAllocator, type DeviceDriver, type DeviceDriverType, type DriverContext, RequestQueue, checkDriverContext, startDeviceDriver } from 'virtio-ts/driver';
import { ChainCursor } from 'virtio-ts/queue';
import { connectInProcess } from 'virtio-ts/testing';
import { TransportKind, createTransportPair, deviceCoreFactory } from 'virtio-ts/transport';

/** A device id no device type of the specification uses (the kit's EchoDevice uses it too). */
const REVERSE_DEVICE_ID = 0x3f;
const REQUESTQ = 0;
/** The largest request the device reverses; longer ones are cut (never trust a guest length). */
const MAX_REQUEST = 4096;

/** The device: each buffer's readable bytes come back reversed in its writable part. */
export class ReverseDevice implements VirtioDevice {
  readonly deviceId = REVERSE_DEVICE_ID;
  // Requests complete synchronously and in order, so IN_ORDER holds.
  readonly offeredFeatures = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes = [128];
  readonly configSize = 0;
  // Allocated once: nothing is allocated per request.
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly buf = new Uint8Array(MAX_REQUEST);
  private readonly server = new QueueServer({
    name: 'reverse',
    numQueues: 1,
    handler: (i) => (i === REQUESTQ ? (req: QueueRequest) => this.serve(req) : null),
  });

  /** One request; returns the bytes written into its writable part (the used length). */
  private serve({ chain }: QueueRequest): number {
    if (chain.fault !== null) return 0; // a buffer outside guest memory: fail this request only
    const n = this.reader.reset(chain).read(this.buf, 0, Math.min(chain.readableBytes, MAX_REQUEST));
    this.buf.subarray(0, n).reverse();
    return this.writer.reset(chain).write(this.buf, 0, n);
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // no configuration space
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }
  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }
  reset(): void {
    this.server.reset();
  }
  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

/** The driver: its contract for VirtioDriver's negotiation, and one typed request. */
export class ReverseDriver implements DeviceDriver {
  static readonly type: DeviceDriverType<ReverseDriver> = {
    name: 'reverse',
    deviceId: REVERSE_DEVICE_ID,
    wantedFeatures: 0n, // no device-type feature bits
    requiredFeatures: 0n,
    attach: (ctx) => new ReverseDriver(ctx),
  };
  private readonly queue: RequestQueue;

  constructor(private readonly ctx: DriverContext) {
    checkDriverContext(ReverseDriver.type, ctx);
    this.queue = new RequestQueue(ctx, REQUESTQ);
  }

  /** Sends `data` and resolves with what the device wrote back. */
  async reverse(data: Uint8Array): Promise<Uint8Array> {
    const out = this.ctx.dma.alloc(data.length, 16);
    const back = this.ctx.dma.alloc(data.length, 16);
    try {
      this.ctx.memory.write(out, data);
      const used = await this.queue.submit([{ addr: out, len: data.length }], [{ addr: back, len: data.length }]);
      const result = new Uint8Array(used);
      this.ctx.memory.read(back, result);
      return result;
    } finally {
      this.ctx.dma.free(out);
      this.ctx.dma.free(back);
    }
  }

  detach(): void {
    this.queue.detach();
  }
}

const hello = new TextEncoder().encode('hello, virtio');

// In process: the device core and the driver call each other directly.
const conn = connectInProcess(new ReverseDevice());
const inProcess = await startDeviceDriver(conn.transport, ReverseDriver.type, { dma: conn.dma, transportFeatures: F.VERSION_1 | F.RING_PACKED });
assert.equal(new TextDecoder().decode(await inProcess.driver.reverse(hello)), 'oitriv ,olleh');
inProcess.close();

// Over modern PCI at register level: the driver reads the capabilities and programs the common
// configuration structure through BAR accesses, as a guest driver does; MSI-X interrupts.
const memory = GuestMemory.allocate(4 << 20);
const pair = createTransportPair(TransportKind.PCI_MODERN, memory, deviceCoreFactory(new ReverseDevice(), memory));
const overPci = await startDeviceDriver(pair.driver, ReverseDriver.type, { dma: new DmaAllocator(0x1000, (4 << 20) - 0x1000) });
assert.equal(new TextDecoder().decode(await overPci.driver.reverse(hello)), 'oitriv ,olleh');
overPci.close();
console.log('the reverse device works in process (packed ring) and over modern PCI');
