import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DeviceId } from '../spec/device-id.js';
import { VirtioError } from '../errors.js';
import { VHOST_USER_BACKEND_TYPES, backendDescription, backendTypeOf, capabilities, printCapabilities } from './capabilities.js';

describe('vhost-user capabilities (vhost-user.json)', () => {
  it('knows exactly the schema types', () => {
    let schema: string | null = null;
    try {
      schema = readFileSync('/work/shared/vhost-user.json', 'utf8');
    } catch {
      // the shared schema is not on every machine; the list below is then checked on its own
    }
    if (schema) {
      const m = /'enum': 'VHostUserBackendType',\s*'data': \[([^\]]*)\]/.exec(schema);
      assert.ok(m);
      const types = [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]);
      assert.deepEqual([...VHOST_USER_BACKEND_TYPES], types);
    }
    assert.equal(VHOST_USER_BACKEND_TYPES.length, 15);
  });

  it('maps device ids to back-end types', () => {
    assert.equal(backendTypeOf(DeviceId.BLOCK), 'block');
    assert.equal(backendTypeOf(DeviceId.ENTROPY), 'rng');
    assert.equal(backendTypeOf(DeviceId.FS), 'fs');
    assert.equal(backendTypeOf(DeviceId.GPIO), null);
  });

  it('prints the --print-capabilities JSON', () => {
    assert.deepEqual(JSON.parse(printCapabilities('block', ['read-only', 'blk-file'])), { type: 'block', features: ['read-only', 'blk-file'] });
    assert.deepEqual(JSON.parse(printCapabilities('rng')), { type: 'rng' });
    assert.ok(printCapabilities('rng').endsWith('\n'));
  });

  it('refuses unknown types and features', () => {
    assert.throws(() => capabilities('block-device'), VirtioError);
    assert.throws(() => capabilities('block', ['virgl']), VirtioError);
    assert.throws(() => capabilities('rng', ['read-only']), VirtioError);
  });

  it('describes a back-end for management software', () => {
    assert.deepEqual(backendDescription('rng', '/usr/bin/virtio-ts', 'virtio-ts rng'), {
      description: 'virtio-ts rng',
      type: 'rng',
      binary: '/usr/bin/virtio-ts',
    });
    assert.throws(() => backendDescription('rng', 'virtio-ts', 'x'), VirtioError);
  });
});
