import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { I2C_FLAGS_RESERVED, I2cF, I2cFlags, I2cStatus, decodeI2cAddressKey, encodeI2cAddress } from '../../spec/i2c.js';
import { createTestPair } from '../blk/test-pair.js';
import { EepromTarget } from './eeprom-target.js';
import { I2cDevice, type I2cDeviceOptions } from './i2c-device.js';
import type { I2cTarget } from './i2c-target.js';
import { RawI2c } from './i2c-test-support.js';
import { RegisterFileTarget } from './register-file-target.js';

const T = { timeout: 10_000 };
const { OK, ERR } = I2cStatus;
const { FAIL_NEXT, M_RD } = I2cFlags;

/** A target that logs every bus event. */
class LoggingTarget implements I2cTarget {
  readonly log: string[] = [];
  nack = false;
  write(data: Uint8Array, length: number): boolean {
    this.log.push(`w:${Array.from(data.subarray(0, length)).join(',')}`);
    return !this.nack;
  }
  read(dst: Uint8Array, length: number): boolean {
    for (let i = 0; i < length; i++) dst[i] = 0x40 + i;
    this.log.push(`r:${length}`);
    return !this.nack;
  }
  stop(): void {
    this.log.push('stop');
  }
}

function setup(opts: { packed?: boolean; littleEndian?: boolean; accept?: bigint; device?: I2cDeviceOptions } = {}) {
  const device = new I2cDevice(opts.device ?? {});
  const eeprom = new EepromTarget({ size: 256, contents: Uint8Array.from({ length: 256 }, (_, i) => i) });
  const regs = new RegisterFileTarget({ count: 16 });
  const log = new LoggingTarget();
  device.attach(0x50, eeprom);
  device.attach(0x20, regs);
  device.attach(0x30, log);
  const pair = createTestPair(device, {
    packed: opts.packed ?? false,
    ...(opts.littleEndian !== undefined ? { littleEndian: opts.littleEndian } : {}),
    ...(opts.accept !== undefined ? { accept: opts.accept } : {}),
  });
  return { device, pair, eeprom, regs, log, raw: new RawI2c(pair.ctx) };
}

describe('I2cDevice', T, () => {
  it('5.16: device id 34, one request queue, no configuration space; address encoding of 5.16.6.1', () => {
    const d = new I2cDevice();
    assert.equal(d.deviceId, DeviceId.I2C_ADAPTER);
    assert.equal(d.configSize, 0);
    assert.deepEqual(d.queueMaxSizes, [256]);
    assert.equal(encodeI2cAddress(0x50), 0xa0);
    assert.equal(encodeI2cAddress(0x2a5, true), 0xa5f4);
    assert.equal(decodeI2cAddressKey(0xa0), 0x50);
    assert.equal(decodeI2cAddressKey(0xa5f4), 0x400 | 0x2a5);
    assert.equal(decodeI2cAddressKey(0xa1), -1, 'bit 0 set');
    assert.equal(decodeI2cAddressKey(0x01a0), -1, 'high byte without the 10-bit prefix');
    assert.throws(() => d.attach(0x78, new LoggingTarget()), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => d.attach(0x400, new LoggingTarget(), true), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    d.attach(0x10, new LoggingTarget());
    assert.throws(() => d.attach(0x10, new LoggingTarget()), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(d.detach(0x10), true);
    assert.equal(d.detach(0x10), false);
    assert.throws(() => new I2cDevice({ queueSize: 0 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => new I2cDevice({ maxSegment: 0 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('device/i2c/1: ZERO_LENGTH_REQUEST is offered, and a driver that does not accept it is refused at FEATURES_OK', () => {
    const d = new I2cDevice();
    assert.notEqual(d.offeredFeatures & I2cF.ZERO_LENGTH_REQUEST, 0n);
    assert.equal(d.validateFeatures(F.VERSION_1 | I2cF.ZERO_LENGTH_REQUEST), null);
    assert.match(d.validateFeatures(F.VERSION_1) ?? '', /ZERO_LENGTH_REQUEST/);
    assert.throws(() => createTestPair(new I2cDevice(), { accept: F.VERSION_1 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.FEATURES_REJECTED);
  });

  it('device/i2c/1: a legacy driver (no FEATURES_OK to refuse) without the feature gets ERR for every request', async () => {
    const { raw, log, pair } = setup({ accept: 0n });
    const [a, b] = await raw.send([{ address: 0x30, write: Uint8Array.of(1) }, { address: 0x30, flags: M_RD, read: 2 }]);
    assert.equal(a!.status, ERR);
    assert.equal(b!.status, ERR);
    assert.deepEqual(log.log, [], 'the target never saw the bus');
    assert.deepEqual(pair.resets, []);
  });

  for (const packed of [false, true]) {
    it(`device/i2c/5: a read request gets one segment of exactly the buffer's length; used length = buffer + status (${packed ? 'packed' : 'split'})`, async () => {
      const { raw, eeprom } = setup({ packed });
      eeprom.pointer = 0x10;
      const r = await raw.one({ address: 0x50, flags: M_RD, read: 5 });
      assert.equal(r.status, OK);
      assert.equal(r.usedLen, 6);
      assert.deepEqual(r.data, Uint8Array.of(0x10, 0x11, 0x12, 0x13, 0x14));
      assert.equal(eeprom.pointer, 0x15);
    });
  }

  it('device/i2c/3 device/i2c/4: the header (addr, padding, reserved flag bits) and a write buffer are never changed', async () => {
    const { raw, regs } = setup();
    const write = Uint8Array.of(2, 0xaa, 0xbb, 0xcc);
    const hdr = raw.header({ address: 0x20, flags: FAIL_NEXT });
    const [w, rsv] = await raw.send([
      { address: 0x20, flags: FAIL_NEXT, write },
      { address: 0x20, flags: 0x8000_0000 | M_RD, read: 3 },
    ]);
    assert.equal(w!.status, OK);
    assert.equal(w!.usedLen, 1, 'a write request: only the status is written');
    assert.deepEqual(w!.readable, Uint8Array.from([...hdr, ...write]));
    assert.deepEqual(regs.registers.subarray(2, 5), Uint8Array.of(0xaa, 0xbb, 0xcc));
    // Reserved flag bits: ERR, and the header comes back as sent.
    assert.equal(rsv!.status, ERR);
    assert.deepEqual(rsv!.readable, raw.header({ address: 0x20, flags: 0x8000_0000 | M_RD }));
    assert.equal((I2C_FLAGS_RESERVED & 0x8000_0000) >>> 0, 0x8000_0000);
  });

  it('device/i2c/6: requests received together are processed in ring order (write the pointer, read, write, read)', async () => {
    const { raw, regs } = setup();
    const r = await raw.send([
      { address: 0x20, write: Uint8Array.of(7, 1, 2) },
      { address: 0x20, write: Uint8Array.of(7) },
      { address: 0x20, flags: M_RD, read: 2 },
      { address: 0x20, write: Uint8Array.of(7, 9) },
      { address: 0x20, write: Uint8Array.of(7) },
      { address: 0x20, flags: M_RD, read: 2 },
    ]);
    assert.deepEqual(r.map((x) => x.status), [OK, OK, OK, OK, OK, OK]);
    assert.deepEqual(r[2]!.data, Uint8Array.of(1, 2));
    assert.deepEqual(r[5]!.data, Uint8Array.of(9, 2));
    assert.deepEqual(regs.registers.subarray(7, 9), Uint8Array.of(9, 2));
  });

  it('device/i2c/7: the first failed request of a group is ERR and the rest of the group fails without reaching the bus; the next group runs', async () => {
    const { raw, regs, log, device } = setup();
    const r = await raw.send([
      { address: 0x20, flags: FAIL_NEXT, write: Uint8Array.of(3, 0x11) },
      { address: 0x20, flags: FAIL_NEXT, write: Uint8Array.of(99) }, // no register 99: NACK
      { address: 0x30, flags: FAIL_NEXT, write: Uint8Array.of(5) },
      { address: 0x30, flags: M_RD, read: 2 }, // last of the group
      { address: 0x30, flags: FAIL_NEXT, write: Uint8Array.of(6) }, // a new group
      { address: 0x30, flags: M_RD, read: 1 },
    ]);
    assert.deepEqual(r.map((x) => x.status), [OK, ERR, ERR, ERR, OK, OK]);
    assert.equal(regs.registers[3], 0x11, 'requests before the failure took effect');
    assert.deepEqual(r[3]!.data, Uint8Array.of(0, 0), 'a failed read returns zeros, not target data');
    assert.equal(r[3]!.usedLen, 3);
    // The logging target saw only the second group: a write, a read, a STOP.
    assert.deepEqual(log.log, ['w:6', 'r:1', 'stop']);
    assert.equal(device.stats.skipped, 2);
  });

  it('device/i2c/2: bus behaviour: STOP after the last request of a group, a repeated START to another target stops the first, Quick commands ACK only present targets', async () => {
    const { raw, log } = setup();
    const r = await raw.send([
      { address: 0x30, flags: FAIL_NEXT, write: Uint8Array.of(1) },
      { address: 0x30, flags: FAIL_NEXT | M_RD, read: 1 },
      { address: 0x30, flags: FAIL_NEXT, write: new Uint8Array(0) },
      { address: 0x30, flags: M_RD },
      { address: 0x31 },
      { address: 0x31, flags: M_RD },
    ]);
    assert.deepEqual(r.map((x) => x.status), [OK, OK, OK, OK, ERR, ERR]);
    assert.equal(r[3]!.usedLen, 1, 'a zero-length read: only the status');
    assert.deepEqual(log.log, ['w:1', 'r:1', 'w:', 'r:0', 'stop']);
  });

  it('device/i2c/2: the EEPROM rolls the address over within a page on writes and at the end of memory on reads; 10-bit targets are addressed by the 10-bit form only', async () => {
    const { raw, eeprom, device } = setup();
    // Page of 8: writing 4 bytes from 0x0e wraps to 0x08.
    const w = await raw.one({ address: 0x50, write: Uint8Array.of(0x0e, 0xa1, 0xa2, 0xa3, 0xa4) });
    assert.equal(w.status, OK);
    assert.deepEqual(eeprom.memory.subarray(0x08, 0x10), Uint8Array.of(0xa3, 0xa4, 0x0a, 0x0b, 0x0c, 0x0d, 0xa1, 0xa2));
    const [, rd] = await raw.send([
      { address: 0x50, flags: FAIL_NEXT, write: Uint8Array.of(0xfe) },
      { address: 0x50, flags: M_RD, read: 4 },
    ]);
    assert.deepEqual(rd!.data, Uint8Array.of(0xfe, 0xff, 0, 1), 'reads roll over at the end of memory');
    const ten = new RegisterFileTarget({ count: 4, values: Uint8Array.of(9, 8, 7, 6) });
    device.attach(0x250, ten, true);
    const r = await raw.send([
      { addr: encodeI2cAddress(0x250, true), flags: FAIL_NEXT, write: Uint8Array.of(1) },
      { addr: encodeI2cAddress(0x250, true), flags: M_RD, read: 3 },
      { addr: encodeI2cAddress(0x50, true), flags: M_RD, read: 1 },
    ]);
    assert.deepEqual(r.map((x) => x.status), [OK, OK, ERR]);
    assert.deepEqual(r[1]!.data, Uint8Array.of(8, 7, 6));
  });

  it('the guest is untrusted: malformed requests get ERR (or used length 0 without a status byte), never a throw or a reset', async () => {
    const { raw, pair, device, regs } = setup({ device: { maxSegment: 64 } });
    const r = await raw.send([
      { rawHeader: Uint8Array.of(0xa0, 0, 0), statusBytes: 1 }, // short header
      { address: 0x20, flags: M_RD, write: Uint8Array.of(1), read: 1 }, // read carrying write data
      { address: 0x20, write: Uint8Array.of(1), read: 2 }, // write with a writable buffer
      { address: 0x20, flags: M_RD, read: 65 }, // over maxSegment
      { address: 0x20, write: new Uint8Array(65) }, // over maxSegment
      { addr: 0xa1, write: Uint8Array.of(0) }, // bit 0 of addr set
      { addr: 0x01a0, write: Uint8Array.of(0) }, // high byte without the 10-bit prefix
      { address: 0x20, flags: M_RD, read: 2, unmapped: true }, // unmapped buffer
      { address: 0x20, write: Uint8Array.of(1, 5), statusBytes: 4 }, // status at the end of 4 writable bytes
    ]);
    assert.deepEqual(r.map((x) => x.status), [ERR, ERR, ERR, ERR, ERR, ERR, ERR, ERR, ERR]);
    assert.equal(r[8]!.usedLen, 4);
    assert.equal(regs.registers[1], 0, 'nothing malformed reached the registers');
    const none = await raw.one({ address: 0x20, write: Uint8Array.of(1, 5), statusBytes: 0 });
    assert.equal(none.usedLen, 0, 'no writable byte: nothing can be answered');
    assert.equal(device.stats.unanswerable, 1);
    // A random storm: every request answered, the device never needs a reset.
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 20 }, () => ({
        addr: rnd(4) === 0 ? rnd(0x10000) : encodeI2cAddress([0x20, 0x30, 0x50, 0x51][rnd(4)]!),
        flags: rnd(8) === 0 ? rnd(0x100) : rnd(4),
        ...(rnd(2) ? { write: new Uint8Array(rnd(80)).map(() => rnd(256)) } : {}),
        ...(rnd(2) ? { read: rnd(80) } : {}),
        statusBytes: rnd(10) === 0 ? 0 : 1 + rnd(2),
      }));
      const replies = await raw.send(batch);
      assert.equal(replies.length, batch.length);
    }
    assert.deepEqual(pair.resets, []);
    assert.equal((await raw.one({ address: 0x20, write: Uint8Array.of(1, 6) })).status, OK);
  });

  it('legacy big-endian guest: header fields in guest byte order', async () => {
    const { raw, regs } = setup({ littleEndian: false, accept: I2cF.ZERO_LENGTH_REQUEST });
    const r = await raw.send([
      { address: 0x20, flags: FAIL_NEXT, write: Uint8Array.of(4, 0x77) },
      { address: 0x20, flags: FAIL_NEXT, write: Uint8Array.of(4) },
      { address: 0x20, flags: M_RD, read: 1 },
    ]);
    assert.deepEqual(r.map((x) => x.status), [OK, OK, OK]);
    assert.equal(regs.registers[4], 0x77);
    assert.deepEqual(r[2]!.data, Uint8Array.of(0x77));
  });

  it('reset ends the transaction (STOP) and forgets a pending group failure', async () => {
    const { raw, log, device, pair } = setup();
    log.nack = true;
    const [a] = await raw.send([{ address: 0x30, flags: FAIL_NEXT, write: Uint8Array.of(1) }]);
    assert.equal(a!.status, ERR);
    device.reset();
    assert.deepEqual(log.log, ['w:1', 'stop']);
    assert.deepEqual(pair.resets, []);
  });
});
