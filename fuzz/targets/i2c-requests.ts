/**
 * virtio-i2c (5.16): requests on the request queue, each virtio_i2c_out_hdr (addr: one of the
 * targets on the bus, an absent or reserved address, or any u16 sometimes; padding 0 mostly;
 * flags 0, FAIL_NEXT, M_RD or both mostly, any u32 sometimes) then the write buffer as raw bytes,
 * and a writable part whose last byte is virtio_i2c_in_hdr (a read buffer before it). On the bus:
 * a 256-byte EEPROM at 0x50 (one address byte), a 4 KiB EEPROM at 0x51 (two address bytes, 32-byte
 * pages), a 16-register file at 0x20 and an 8-register file at 10-bit 0x123. ZERO_LENGTH_REQUEST
 * is always accepted: the device refuses FEATURES_OK without it (device/i2c/1).
 *
 * The targets' memories and pointers outlive a device reset (they are the host's chips): put back
 * as built before each input and part of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { EepromTarget } from '../../src/devices/i2c/eeprom-target.js';
import { I2cDevice } from '../../src/devices/i2c/i2c-device.js';
import { RegisterFileTarget } from '../../src/devices/i2c/register-file-target.js';
import { I2cF, I2cFlags, encodeI2cAddress } from '../../src/spec/i2c.js';

/** addr values: the four targets, an absent 7-bit one, a reserved 7-bit one (0x78), an absent 10-bit one. */
const ADDRS = [encodeI2cAddress(0x50), encodeI2cAddress(0x51), encodeI2cAddress(0x20), encodeI2cAddress(0x123, true), encodeI2cAddress(0x30), 0x78 << 1, encodeI2cAddress(0x3ff, true)];
const FLAGS = [0, I2cFlags.FAIL_NEXT, I2cFlags.M_RD, I2cFlags.FAIL_NEXT | I2cFlags.M_RD];

/** Selector bits: 0-1 any addr, 2-3 any flags, 4 a padding value. */
function header(_queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  return new ByteWriter()
    .u16((sel & 3) === 3 ? r.u16() : r.pick(ADDRS))
    .u16((sel & 0x10) !== 0 ? r.u16() : 0)
    .u32((sel & 0x0c) === 0x0c ? r.u32() : r.pick(FLAGS))
    .finish();
}

const spec: DeviceChainsSpec = {
  device: () => {
    const small = new EepromTarget({ size: 256 });
    const large = new EepromTarget({ size: 4096 });
    const regs = new RegisterFileTarget({ count: 16 });
    const regs10 = new RegisterFileTarget({ count: 8 });
    const device = new I2cDevice({ queueSize: 16, maxSegment: 1024 });
    device.attach(0x50, small);
    device.attach(0x51, large);
    device.attach(0x20, regs);
    device.attach(0x123, regs10, true);
    const pointers = new Uint8Array(8);
    return {
      device,
      resetHost: () => {
        for (const e of [small, large]) {
          e.memory.fill(0xff);
          e.pointer = 0;
        }
        for (const f of [regs, regs10]) {
          f.registers.fill(0);
          f.index = 0;
        }
      },
      hostState: () => {
        const v = new DataView(pointers.buffer);
        v.setUint16(0, small.pointer, true);
        v.setUint16(2, large.pointer, true);
        v.setUint16(4, regs.index, true);
        v.setUint16(6, regs10.index, true);
        return [small.memory, large.memory, regs.registers, regs10.registers, pointers];
      },
    };
  },
  queues: 1,
  heldQueues: [],
  header,
  requiredFeatures: I2cF.ZERO_LENGTH_REQUEST,
  queueSize: 16,
};

/** The shaper's input: selector 0, the addr's index in ADDRS, the flags' index in FLAGS. */
function req(addr: number, flags: number): number[] {
  return [0, ADDRS.indexOf(addr), FLAGS.indexOf(flags)];
}

/**
 * Seeds: an EEPROM write of 4 bytes at 0x10 then a write of the address and a 4-byte read (a
 * FAIL_NEXT group, as Linux sends a write-then-read); register 3 of the register file written
 * and read back; a 2-byte-address EEPROM write and read; a SMBus quick command to an absent address.
 */
function seeds(): Uint8Array[] {
  const a = (x: number, ten = false): number => encodeI2cAddress(x, ten);
  return [
    deviceChainsSeed(false, [[{ queue: 0, header: req(a(0x50), 0), rest: [0x10, 1, 2, 3, 4], writable: 1 }], [{ queue: 0, header: req(a(0x50), I2cFlags.FAIL_NEXT), rest: [0x10], writable: 1 }, { queue: 0, header: req(a(0x50), I2cFlags.M_RD), writable: 8 }]], spec),
    deviceChainsSeed(true, [[{ queue: 0, header: req(a(0x20), 0), rest: [3, 0xaa, 0xbb], writable: 1 }], [{ queue: 0, header: req(a(0x20), I2cFlags.FAIL_NEXT), rest: [3], writable: 1 }, { queue: 0, header: req(a(0x20), I2cFlags.M_RD), writable: 4 }], [{ queue: 0, header: req(a(0x123, true), I2cFlags.FAIL_NEXT), rest: [1], writable: 1 }, { queue: 0, header: req(a(0x123, true), I2cFlags.M_RD), writable: 8 }]], spec),
    deviceChainsSeed(false, [[{ queue: 0, header: req(a(0x51), 0), rest: [0x01, 0x20, 9, 8, 7], writable: 1 }], [{ queue: 0, header: req(a(0x51), I2cFlags.FAIL_NEXT), rest: [0x01, 0x20], writable: 1 }, { queue: 0, header: req(a(0x51), I2cFlags.M_RD), writable: 4 }], [{ queue: 0, header: req(a(0x30), 0), writable: 1 }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'i2c-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
