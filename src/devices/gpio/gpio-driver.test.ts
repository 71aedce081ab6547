import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { DescriptorChain } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { GPIO_CONFIG_LAYOUT, GpioDirection, GpioF, GpioIrqStatus, GpioIrqType, GpioMsg, GpioQueue, GpioStatus, encodeGpioNames } from '../../spec/gpio.js';
import { createTestPair } from '../blk/test-pair.js';
import { GpioDevice } from './gpio-device.js';
import { GpioDriver, GpioRequestError } from './gpio-driver.js';

const T = { timeout: 10_000 };

interface Seen {
  queue: number;
  readable: number[];
  writable: number;
  readableSegments: number;
  writableSegments: number;
}

/** A GPIO device that records every chain and answers OK (value 1) or holds eventq buffers. */
class StubGpio implements VirtioDevice {
  readonly deviceId = DeviceId.GPIO;
  readonly queueMaxSizes = [16, 16];
  readonly configSize = 8;
  readonly seen: Seen[] = [];
  readonly held: { chain: DescriptorChain }[] = [];
  status: number = GpioStatus.OK;
  private ctx: DeviceContext | null = null;
  constructor(readonly offeredFeatures: bigint = F.VERSION_1 | GpioF.IRQ) {}
  readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    encodeConfig(GPIO_CONFIG_LAYOUT, { ngpio: 3, gpioNamesSize: encodeGpioNames(['a', null, 'c']).length }, features, offset, dst, le);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  /** Returns the held eventq buffers with `status`. */
  release(status: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(GpioQueue.EVENTQ)!;
    for (const h of this.held.splice(0)) {
      ctx.memory.writeU8(h.chain.addrs[h.chain.readableCount]!, status);
      q.push(h.chain, 1);
    }
    ctx.notifyUsed(GpioQueue.EVENTQ);
  }
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    for (;;) {
      const chain = new DescriptorChain(ctx.memory, 16);
      if (!q.pop(chain)) break;
      const r: number[] = [];
      for (let s = 0; s < chain.readableCount; s++) {
        const b = new Uint8Array(chain.lens[s]!);
        ctx.memory.read(chain.addrs[s]!, b);
        r.push(...b);
      }
      this.seen.push({ queue: i, readable: r, writable: chain.writableBytes, readableSegments: chain.readableCount, writableSegments: chain.writableCount });
      if (i === GpioQueue.EVENTQ) {
        this.held.push({ chain });
        continue;
      }
      const w = chain.addrs[chain.readableCount]!;
      ctx.memory.writeU8(w, this.status);
      if (chain.writableBytes > 1) ctx.memory.fill(w + 1, chain.writableBytes - 1, 0);
      if (r[0] === GpioMsg.GET_LINE_NAMES) ctx.memory.write(w + 1, encodeGpioNames(['a', null, 'c']));
      else ctx.memory.writeU8(w + 1, 1);
      q.push(chain, chain.writableBytes);
    }
    ctx.notifyUsed(i);
  }
}

const le16 = (b: number[], o: number): number => b[o]! | (b[o + 1]! << 8);

describe('GpioDriver', T, () => {
  it('driver/gpio/1 driver/gpio/2 driver/gpio/3 driver/gpio/4: each message a readable request and a writable response, on the requestq', async () => {
    const stub = new StubGpio();
    const drv = new GpioDriver(createTestPair(stub).ctx);
    assert.equal(drv.ngpio, 3);
    assert.deepEqual(await drv.lineNames(), ['a', null, 'c']);
    await drv.setValue(2, 1);
    assert.equal(await drv.getValue(2), 1);
    await drv.setDirection(0, GpioDirection.OUT, 1);
    assert.equal(await drv.getDirection(1), 1);
    assert.ok(stub.seen.every((s) => s.queue === GpioQueue.REQUESTQ));
    for (const s of stub.seen) {
      assert.equal(s.readable.length, 8);
      assert.equal(s.readableSegments, 1);
      assert.equal(s.writableSegments, 1);
    }
    assert.deepEqual(
      stub.seen.map((s) => [le16(s.readable, 0), le16(s.readable, 2), s.readable[4], s.writable]),
      [
        [GpioMsg.GET_LINE_NAMES, 0, 0, 1 + 5],
        [GpioMsg.SET_VALUE, 2, 1, 2],
        [GpioMsg.GET_VALUE, 2, 0, 2],
        [GpioMsg.SET_VALUE, 0, 1, 2], // 5.18.6.3: the value before the direction
        [GpioMsg.SET_DIRECTION, 0, GpioDirection.OUT, 2],
        [GpioMsg.GET_DIRECTION, 1, 0, 2],
      ],
    );
    stub.status = GpioStatus.ERR;
    await assert.rejects(drv.getValue(1), (e: unknown) => e instanceof GpioRequestError && e.code === ErrorCode.REQUEST_FAILED && e.line === 1);
    await assert.rejects(drv.getValue(3), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('driver/gpio/5: several messages in flight at once, for the same and different lines', async () => {
    const device = new GpioDevice([{ name: 'x' }, { name: 'y' }], { queueSize: 4 });
    const pair = createTestPair(device, { queueSize: 4 });
    const drv = new GpioDriver(pair.ctx);
    await drv.setDirection(0, GpioDirection.OUT, 0);
    device.setInput('y', 1);
    const r = await Promise.all([drv.setValue(0, 1), drv.getValue(0), drv.getValue(1), drv.setValue(0, 0), drv.getValue(0), drv.getDirection(1), drv.getValue(1)]);
    assert.deepEqual(r, [undefined, 1, 1, undefined, 0, GpioDirection.NONE, 1]);
  });

  it('driver/gpio/6 driver/gpio/7: no IRQ message without the feature or for an output line', async () => {
    const stub = new StubGpio(F.VERSION_1);
    const drv = new GpioDriver(createTestPair(stub).ctx);
    assert.equal(drv.hasIrq, false);
    await assert.rejects(drv.enableInterrupt(1, GpioIrqType.EDGE_RISING, () => undefined), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.FEATURES_REJECTED);
    await assert.rejects(drv.disableInterrupt(1), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.FEATURES_REJECTED);
    const stub2 = new StubGpio();
    const drv2 = new GpioDriver(createTestPair(stub2).ctx);
    await drv2.setDirection(0, GpioDirection.OUT, 1);
    const before = stub2.seen.length;
    await assert.rejects(drv2.enableInterrupt(0, GpioIrqType.EDGE_RISING, () => undefined), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(stub.seen.length + stub2.seen.length - before, 0, 'nothing sent');
    // And a line with an interrupt is not made an output.
    await drv2.enableInterrupt(1, GpioIrqType.EDGE_RISING, () => undefined);
    await assert.rejects(drv2.setDirection(1, GpioDirection.OUT, 0), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    drv2.detach();
  });

  it('driver/gpio/8 driver/gpio/9 driver/gpio/10 driver/gpio/11 driver/gpio/12 driver/gpio/13: enabled before unmasked, one buffer per line, a type change through NONE, NONE when done', async () => {
    const stub = new StubGpio();
    const drv = new GpioDriver(createTestPair(stub).ctx);
    const fired: number[] = [];
    await drv.enableInterrupt(1, GpioIrqType.EDGE_RISING, (l) => fired.push(l));
    await drv.enableInterrupt(2, GpioIrqType.LEVEL_HIGH, (l) => fired.push(l));
    await new Promise((r) => setImmediate(r));
    const msgs = stub.seen.map((s) => (s.queue === GpioQueue.EVENTQ ? `ev:${le16(s.readable, 0)}` : `irq:${le16(s.readable, 2)}:${s.readable[4]}`));
    // Each line: SET_IRQ_TYPE first, then its single eventq pair (2 readable bytes, 1 writable).
    assert.deepEqual(msgs, [`irq:1:${GpioIrqType.EDGE_RISING}`, 'ev:1', `irq:2:${GpioIrqType.LEVEL_HIGH}`, 'ev:2']);
    for (const s of stub.seen.filter((x) => x.queue === GpioQueue.EVENTQ)) assert.deepEqual([s.readable.length, s.writable], [2, 1]);
    // An interrupt: the handler runs and the line's buffer goes back (one per line, never two).
    stub.release(GpioIrqStatus.VALID);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(fired.sort(), [1, 2]);
    assert.equal(stub.held.length, 2, 'each line unmasked again with one buffer');
    // Changing the type of an enabled interrupt: NONE first (driver/gpio/9).
    stub.seen.length = 0;
    await drv.enableInterrupt(1, GpioIrqType.EDGE_FALLING, (l) => fired.push(l));
    assert.deepEqual(stub.seen.filter((s) => s.queue === GpioQueue.REQUESTQ).map((s) => s.readable[4]), [GpioIrqType.NONE, GpioIrqType.EDGE_FALLING]);
    // close(): NONE for every line still enabled (driver/gpio/8); INVALID buffers are not requeued.
    stub.seen.length = 0;
    await drv.close();
    assert.deepEqual(stub.seen.map((s) => s.readable[4]).sort(), [GpioIrqType.NONE, GpioIrqType.NONE]);
    assert.deepEqual(drv.interruptLines, []);
  });

  it('against GpioDevice: names, an output the host sees, an edge interrupt the host raises, disable', async () => {
    const outputs: string[] = [];
    const device = new GpioDevice([{ name: 'led' }, { name: 'button', direction: GpioDirection.IN }], { onOutput: (l, v) => outputs.push(`${l}=${v}`) });
    const pair = createTestPair(device, { packed: true });
    const drv = new GpioDriver(pair.ctx);
    assert.deepEqual(await drv.lineNames(), ['led', 'button']);
    await drv.setDirection(0, GpioDirection.OUT, 1);
    assert.deepEqual(outputs, ['0=1']);
    let hit!: () => void;
    const irq = new Promise<void>((r) => (hit = r));
    await drv.enableInterrupt(1, GpioIrqType.EDGE_BOTH, () => hit());
    device.setInput('button', 1);
    await irq;
    await drv.disableInterrupt(1);
    assert.equal(device.line('button').irqType, GpioIrqType.NONE);
    assert.deepEqual(pair.resets, []);
  });
});
