import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverFeaturesError } from '../../driver/device-driver.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { DescriptorChain } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { I2C_FLAGS_RESERVED, I2cF, I2cFlags, I2cStatus } from '../../spec/i2c.js';
import { createTestPair } from '../blk/test-pair.js';
import { EepromTarget } from './eeprom-target.js';
import { I2cDevice } from './i2c-device.js';
import { I2cDriver, I2cTransferError } from './i2c-driver.js';
import { RegisterFileTarget } from './register-file-target.js';

const T = { timeout: 10_000 };

interface SeenRequest {
  addr: number;
  padding: number;
  flags: number;
  /** Readable bytes after the 8-byte header. */
  writeData: number[];
  /** Writable bytes before the status byte. */
  readLen: number;
  readableSegments: number;
  writableSegments: number;
}

/** An I2C device that records each request and answers with the statuses it is told. */
class StubI2c implements VirtioDevice {
  readonly deviceId = DeviceId.I2C_ADAPTER;
  readonly queueMaxSizes = [16];
  readonly configSize = 0;
  readonly seen: SeenRequest[] = [];
  /** Statuses for the next requests (OK when empty); read buffers are filled with 0xaa. */
  statuses: number[] = [];
  private ctx: DeviceContext | null = null;
  constructor(readonly offeredFeatures: bigint = F.VERSION_1 | I2cF.ZERO_LENGTH_REQUEST) {}
  readConfig(): void {}
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    const chain = new DescriptorChain(ctx.memory, 32);
    while (q.pop(chain)) {
      const all = new Uint8Array(chain.readableBytes);
      let o = 0;
      for (let s = 0; s < chain.readableCount; s++) {
        const b = new Uint8Array(chain.lens[s]!);
        ctx.memory.read(chain.addrs[s]!, b);
        all.set(b, o);
        o += b.length;
      }
      const dv = new DataView(all.buffer);
      this.seen.push({
        addr: dv.getUint16(0, true),
        padding: dv.getUint16(2, true),
        flags: dv.getUint32(4, true),
        writeData: Array.from(all.subarray(8)),
        readLen: chain.writableBytes - 1,
        readableSegments: chain.readableCount,
        writableSegments: chain.writableCount,
      });
      // Fill every writable byte with 0xaa, then the status in the last one.
      for (let s = chain.readableCount; s < chain.count; s++) ctx.memory.fill(chain.addrs[s]!, chain.lens[s]!, 0xaa);
      const last = chain.count - 1;
      ctx.memory.writeU8(chain.addrs[last]! + chain.lens[last]! - 1, this.statuses.shift() ?? I2cStatus.OK);
      q.push(chain, chain.writableBytes);
    }
    ctx.notifyUsed(i);
  }
}

describe('I2cDriver', T, () => {
  it('driver/i2c/1: accepts ZERO_LENGTH_REQUEST, and refuses a device that does not offer it', () => {
    assert.equal(I2cDriver.type.wantedFeatures & I2cF.ZERO_LENGTH_REQUEST, I2cF.ZERO_LENGTH_REQUEST);
    assert.equal(I2cDriver.type.requiredFeatures, I2cF.ZERO_LENGTH_REQUEST);
    const pair = createTestPair(new StubI2c(F.VERSION_1));
    assert.throws(() => new I2cDriver(pair.ctx), (e: unknown) => e instanceof DriverFeaturesError && e.missing === I2cF.ZERO_LENGTH_REQUEST);
    const ok = createTestPair(new StubI2c());
    assert.doesNotThrow(() => new I2cDriver(ok.ctx).detach());
  });

  it('driver/i2c/2 driver/i2c/3 driver/i2c/4 driver/i2c/6 driver/i2c/7 driver/i2c/8: header set, reserved bits zero, read/write buffers in the right direction, no buffer when zero-length, requests queued in order', async () => {
    const stub = new StubI2c();
    const drv = new I2cDriver(createTestPair(stub).ctx);
    const r = await drv.transfer([
      { address: 0x50, write: Uint8Array.of(1, 2, 3) },
      { address: 0x50, read: 4 },
      { address: 0x21, write: new Uint8Array(0) },
      { address: 0x22, read: 0 },
      { address: 0x2a5, tenBit: true, read: 1 },
    ]);
    assert.equal(r.ok, true);
    const { FAIL_NEXT, M_RD } = I2cFlags;
    assert.deepEqual(
      stub.seen.map((s) => [s.addr, s.padding, s.flags]),
      [
        [0xa0, 0, FAIL_NEXT],
        [0xa0, 0, FAIL_NEXT | M_RD],
        [0x42, 0, FAIL_NEXT],
        [0x44, 0, FAIL_NEXT | M_RD],
        [0xa5f4, 0, M_RD],
      ],
      'in order; FAIL_NEXT on all but the last; M_RD exactly on reads',
    );
    for (const s of stub.seen) assert.equal(s.flags & I2C_FLAGS_RESERVED, 0, 'reserved bits zero');
    // Write: header + data readable, status writable. Read: header readable, buffer + status writable.
    assert.deepEqual(stub.seen[0], { addr: 0xa0, padding: 0, flags: FAIL_NEXT, writeData: [1, 2, 3], readLen: 0, readableSegments: 2, writableSegments: 1 });
    assert.deepEqual(stub.seen[1], { addr: 0xa0, padding: 0, flags: FAIL_NEXT | M_RD, writeData: [], readLen: 4, readableSegments: 1, writableSegments: 2 });
    // Zero-length: no buffer at all, only the header and the status.
    for (const s of [stub.seen[2]!, stub.seen[3]!]) assert.deepEqual([s.readableSegments, s.writableSegments, s.writeData.length, s.readLen], [1, 1, 0, 0]);
    assert.deepEqual(r.reads[1], Uint8Array.of(0xaa, 0xaa, 0xaa, 0xaa));
    assert.deepEqual(r.reads[3], new Uint8Array(0));
    assert.equal(r.reads[0], null);
  });

  it('driver/i2c/5 driver/i2c/9: from the first ERR on, the group counts as failed whatever the later statuses, and no read buffer of it is used', async () => {
    const stub = new StubI2c();
    const drv = new I2cDriver(createTestPair(stub).ctx);
    stub.statuses = [I2cStatus.OK, I2cStatus.ERR, I2cStatus.OK, I2cStatus.OK];
    const r = await drv.transfer([
      { address: 0x10, read: 2 },
      { address: 0x10, read: 2 },
      { address: 0x10, read: 2 },
      { address: 0x10, write: Uint8Array.of(1) },
    ]);
    assert.equal(r.ok, false);
    assert.equal(r.completed, 1);
    assert.deepEqual(r.reads, [Uint8Array.of(0xaa, 0xaa), null, null, null]);
    stub.statuses = [I2cStatus.ERR];
    await assert.rejects(drv.read(0x10, 1), (e: unknown) => e instanceof I2cTransferError && e.completed === 0 && e.code === ErrorCode.REQUEST_FAILED);
  });

  it('refuses bad messages before sending anything', async () => {
    const stub = new StubI2c();
    const drv = new I2cDriver(createTestPair(stub).ctx);
    const bad = (e: unknown): boolean => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT;
    await assert.rejects(drv.transfer([]), bad);
    await assert.rejects(drv.transfer([{ address: 0x80, read: 1 }]), bad);
    await assert.rejects(drv.transfer([{ address: 0x400, tenBit: true, read: 1 }]), bad);
    await assert.rejects(drv.transfer([{ address: 0x10 }]), bad);
    await assert.rejects(drv.transfer([{ address: 0x10, read: 1, write: Uint8Array.of(1) }]), bad);
    await assert.rejects(drv.transfer([{ address: 0x10, read: 0x10000 }]), bad);
    assert.equal(stub.seen.length, 0);
  });

  for (const packed of [false, true]) {
    it(`against I2cDevice: probe, EEPROM write then read back, register write-read, more transfers than the ring holds (${packed ? 'packed' : 'split'})`, async () => {
      const device = new I2cDevice({ queueSize: 8 });
      const eeprom = new EepromTarget({ size: 2048 });
      const regs = new RegisterFileTarget({ count: 8 });
      device.attach(0x50, eeprom);
      device.attach(0x21, regs);
      const pair = createTestPair(device, { packed, queueSize: 8 });
      const drv = new I2cDriver(pair.ctx);
      assert.equal(await drv.probe(0x50), true);
      assert.equal(await drv.probe(0x52), false);
      // Two address bytes above 256 bytes; page of 32.
      const page = Uint8Array.from({ length: 32 }, (_, i) => 100 + i);
      await drv.write(0x50, Uint8Array.from([0x04, 0x00, ...page]));
      assert.deepEqual(eeprom.memory.subarray(0x400, 0x420), page);
      assert.deepEqual(await drv.writeRead(0x50, Uint8Array.of(0x04, 0x10), 4), page.subarray(16, 20));
      await drv.write(0x21, Uint8Array.of(6, 0x12, 0x34, 0x56));
      assert.deepEqual(regs.registers, Uint8Array.of(0x56, 0, 0, 0, 0, 0, 0x12, 0x34), 'the index rolled over');
      const many = await Promise.all(Array.from({ length: 20 }, (_, i) => drv.writeRead(0x21, Uint8Array.of(i % 8), 1)));
      assert.deepEqual(many.map((b) => b[0]), Array.from({ length: 20 }, (_, i) => regs.registers[i % 8]));
      await assert.rejects(drv.write(0x21, Uint8Array.of(8)), I2cTransferError);
      assert.deepEqual(pair.resets, []);
    });
  }
});
