import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../errors.js';
import { parseSize } from './parse-size.js';

describe('parseSize', () => {
  it('accepts plain and binary-unit sizes', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('256M'), 256 * 1024 * 1024);
    assert.equal(parseSize('1G'), 1 << 30);
    assert.equal(parseSize('2KiB'), 2048);
    assert.equal(parseSize('3mb'), 3 * 1024 * 1024);
  });
  it('rejects garbage, zero and overflow with INVALID_ARGUMENT', () => {
    for (const bad of ['', 'abc', '-1', '0', '1.5M', '99999999999T', '12Q']) {
      assert.throws(() => parseSize(bad), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT, bad);
    }
  });
});
