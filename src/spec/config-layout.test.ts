import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, VirtioError } from '../errors.js';
import { BLK_CONFIG_LAYOUT, BlkConfig, BlkF } from './blk.js';
import {
  type ConfigField,
  configFieldPresent,
  decodeConfigField,
  decodeConfigWrite,
  defineConfigLayout,
  encodeConfig,
  encodeConfigField,
  readConfigField,
  readConfigFields,
  writeConfigField,
} from './config-layout.js';
import { ENTROPY_CONFIG_LAYOUT } from './entropy.js';

const code = (c: string) => (e: unknown) => e instanceof VirtioError && e.code === c;
const maxOf = (f: ConfigField): number => (f.width === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * f.width) - 1);
const ALL_BLK_FEATURES = Object.values(BlkF).reduce((a, b) => a | b, 0n);

/** Values for every blk field, each within its width. */
const blkValues = fc.record(
  Object.fromEntries(BLK_CONFIG_LAYOUT.fields.map((f) => [f.name, fc.integer({ min: 0, max: maxOf(f) })])) as Record<string, fc.Arbitrary<number>>,
);
/** A subset of the blk feature bits (which fields exist). */
const blkFeatures = fc.subarray(Object.values(BlkF)).map((bits) => bits.reduce((a, b) => a | b, 0n));

describe('config layouts (spec/config-layout.ts)', () => {
  it('blk layout matches 5.2.4: offsets, widths and the whole 96-byte structure', () => {
    assert.equal(BLK_CONFIG_LAYOUT.size, BlkConfig.SIZE);
    assert.deepEqual(BLK_CONFIG_LAYOUT.field('capacity'), { name: 'capacity', offset: 0, width: 8, feature: null, access: 'ro' });
    assert.equal(BLK_CONFIG_LAYOUT.field('writeback').access, 'rw');
    assert.equal(BLK_CONFIG_LAYOUT.field('writeback').feature, BlkF.CONFIG_WCE);
    assert.equal(BLK_CONFIG_LAYOUT.field('numQueues').offset, 34);
    assert.equal(BLK_CONFIG_LAYOUT.field('zonedModel').offset, 92);
    // Only writeback is writable (driver/blk/21); every other field is read-only.
    assert.deepEqual(
      BLK_CONFIG_LAYOUT.fields.filter((f) => f.access === 'rw').map((f) => f.name),
      ['writeback'],
    );
    // The fields plus the three padding areas (unused0, unused1[3], unused2[3]) cover 96 bytes.
    const covered = BLK_CONFIG_LAYOUT.fields.reduce((n, f) => n + f.width, 0);
    assert.equal(covered + 1 + 3 + 3, BlkConfig.SIZE);
    assert.equal(ENTROPY_CONFIG_LAYOUT.size, 0);
    assert.equal(ENTROPY_CONFIG_LAYOUT.fields.length, 0);
  });

  it('encode then decode gives every present field back, absent fields read 0, in both byte orders (property)', () => {
    fc.assert(
      fc.property(blkValues, blkFeatures, fc.boolean(), (values, features, le) => {
        const bytes = new Uint8Array(BLK_CONFIG_LAYOUT.size);
        encodeConfig(BLK_CONFIG_LAYOUT, values, features, 0, bytes, le);
        for (const f of BLK_CONFIG_LAYOUT.fields) {
          const got = decodeConfigField(f, bytes.subarray(f.offset, f.offset + f.width), le);
          assert.equal(got, configFieldPresent(f, features) ? values[f.name] : 0, f.name);
        }
        // Padding stays zero (device/blk/3).
        assert.equal(bytes[BlkConfig.UNUSED0], 0);
        for (let i = 0; i < 3; i++) assert.equal(bytes[BlkConfig.UNUSED1 + i], 0);
        for (let i = 0; i < 3; i++) assert.equal(bytes[BlkConfig.UNUSED2 + i], 0);
      }),
    );
  });

  it('any offset/length window equals the same slice of the whole structure, zero past its end (property)', () => {
    fc.assert(
      fc.property(
        blkValues,
        blkFeatures,
        fc.boolean(),
        fc.integer({ min: 0, max: BLK_CONFIG_LAYOUT.size + 8 }),
        fc.integer({ min: 0, max: 40 }),
        (values, features, le, offset, length) => {
          const whole = new Uint8Array(BLK_CONFIG_LAYOUT.size + 64);
          encodeConfig(BLK_CONFIG_LAYOUT, values, features, 0, whole, le);
          const win = new Uint8Array(length).fill(0xee);
          encodeConfig(BLK_CONFIG_LAYOUT, values, features, offset, win, le);
          assert.deepEqual(win, whole.subarray(offset, offset + length));
        },
      ),
    );
  });

  it('byte orders: little-endian low byte first; big-endian (legacy guest) high byte first, 64-bit fields whole', () => {
    const values = { capacity: 0x0102_0304_0506_07, segMax: 0x0a0b0c0d, numQueues: 0x1234, writeback: 1 };
    const le = new Uint8Array(40);
    const be = new Uint8Array(40);
    encodeConfig(BLK_CONFIG_LAYOUT, values, ALL_BLK_FEATURES, 0, le, true);
    encodeConfig(BLK_CONFIG_LAYOUT, values, ALL_BLK_FEATURES, 0, be, false);
    assert.deepEqual([...le.subarray(0, 8)], [0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x00]);
    assert.deepEqual([...be.subarray(0, 8)], [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
    assert.deepEqual([...le.subarray(12, 16)], [0x0d, 0x0c, 0x0b, 0x0a]);
    assert.deepEqual([...be.subarray(12, 16)], [0x0a, 0x0b, 0x0c, 0x0d]);
    assert.deepEqual([...le.subarray(34, 36)], [0x34, 0x12]);
    assert.deepEqual([...be.subarray(34, 36)], [0x12, 0x34]);
    assert.equal(le[32], 1);
  });

  it('driver side: fields read one by one with their own width through a reader, 64-bit above 2^32 exact', () => {
    const values = { capacity: 2 ** 40 + 12345, blkSize: 4096, minIoSize: 8, physicalBlockExp: 3 };
    for (const le of [true, false]) {
      const bytes = new Uint8Array(BLK_CONFIG_LAYOUT.size);
      encodeConfig(BLK_CONFIG_LAYOUT, values, ALL_BLK_FEATURES, 0, bytes, le);
      const reads: [number, number][] = [];
      const reader = (offset: number, length: number): Uint8Array => {
        reads.push([offset, length]);
        return bytes.slice(offset, offset + length);
      };
      assert.equal(readConfigField(BLK_CONFIG_LAYOUT, 'capacity', reader, le), 2 ** 40 + 12345);
      assert.deepEqual(readConfigFields(BLK_CONFIG_LAYOUT, ['blkSize', 'minIoSize', 'physicalBlockExp'], reader, le), {
        blkSize: 4096,
        minIoSize: 8,
        physicalBlockExp: 3,
      });
      assert.deepEqual(reads, [
        [0, 8],
        [20, 4],
        [26, 2],
        [24, 1],
      ]);
    }
  });

  it('writes: only whole rw fields whose feature is negotiated are applied; encodeConfigField round-trips', () => {
    const seen: [string, number][] = [];
    const apply = (n: string, v: number): void => void seen.push([n, v]);
    decodeConfigWrite(BLK_CONFIG_LAYOUT, BlkConfig.WRITEBACK, Uint8Array.of(1), BlkF.CONFIG_WCE, true, apply);
    decodeConfigWrite(BLK_CONFIG_LAYOUT, BlkConfig.WRITEBACK, Uint8Array.of(0), 0n, true, apply); // CONFIG_WCE absent
    decodeConfigWrite(BLK_CONFIG_LAYOUT, BlkConfig.CAPACITY, new Uint8Array(8).fill(9), ALL_BLK_FEATURES, true, apply); // read-only
    decodeConfigWrite(BLK_CONFIG_LAYOUT, 30, Uint8Array.of(0, 0, 7, 0), BlkF.CONFIG_WCE, true, apply); // spans writeback
    assert.deepEqual(seen, [
      ['writeback', 1],
      ['writeback', 7],
    ]);
    const written: [number, number[]][] = [];
    writeConfigField(BLK_CONFIG_LAYOUT, 'writeback', 1, (o, b) => void written.push([o, [...b]]), true);
    assert.deepEqual(written, [[BlkConfig.WRITEBACK, [1]]]);
    assert.throws(() => writeConfigField(BLK_CONFIG_LAYOUT, 'capacity', 1, () => assert.fail('written'), true), code(ErrorCode.INVALID_ARGUMENT));
    fc.assert(
      fc.property(fc.constantFrom(...BLK_CONFIG_LAYOUT.fields), fc.boolean(), fc.nat(), (f, le, seed) => {
        const v = seed % (maxOf(f) + 1);
        assert.equal(decodeConfigField(f, encodeConfigField(f, v, le), le), v);
      }),
    );
  });

  it('bad layouts and values are typed errors', () => {
    const f = (name: string, offset: number, width: 1 | 2 | 4 | 8): ConfigField => ({ name, offset, width, feature: null, access: 'ro' });
    assert.throws(() => defineConfigLayout(8, [f('a', 0, 4), f('b', 2, 2)]), code(ErrorCode.INVALID_ARGUMENT)); // overlap
    assert.throws(() => defineConfigLayout(8, [f('a', 6, 4)]), code(ErrorCode.INVALID_ARGUMENT)); // past the end
    assert.throws(() => defineConfigLayout(8, [f('a', 1, 2)]), code(ErrorCode.INVALID_ARGUMENT)); // misaligned
    assert.throws(() => defineConfigLayout(8, [f('a', 0, 1), f('a', 1, 1)]), code(ErrorCode.INVALID_ARGUMENT)); // twice
    assert.throws(() => defineConfigLayout(8, [f('a', 0, 3 as 1)]), code(ErrorCode.INVALID_ARGUMENT)); // width
    assert.throws(() => BLK_CONFIG_LAYOUT.field('nope' as 'capacity'), code(ErrorCode.INVALID_ARGUMENT));
    const dst = new Uint8Array(8);
    assert.throws(() => encodeConfig(BLK_CONFIG_LAYOUT, { numQueues: 0x10000 }, BlkF.MQ, 0, new Uint8Array(96), true), code(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => encodeConfig(BLK_CONFIG_LAYOUT, { capacity: 2 ** 53 }, 0n, 0, dst, true), code(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => encodeConfig(BLK_CONFIG_LAYOUT, { capacity: -1 }, 0n, 0, dst, true), code(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => decodeConfigField(BLK_CONFIG_LAYOUT.field('capacity'), new Uint8Array(4), true), code(ErrorCode.CONFIG_OUT_OF_RANGE));
  });
});
