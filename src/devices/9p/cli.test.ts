/** `virtio-ts 9p`: option parsing, usage and capabilities (serving: cli-process.test.ts). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import type { P9Options } from './cli.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('9p', argv, f);

describe('virtio-ts 9p command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vts-9pcli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses --shared-dir, --tag, --read-only, --msize, --queue-size, --translate-uid/-gid with their defaults', () => {
    const p = parseCommandLine(['9p', '--socket-path', '/tmp/x.sock', '--shared-dir', dir]);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: P9Options }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      sharedDir: dir,
      tag: 'virtio-ts',
      readOnly: false,
      msize: 512 * 1024,
      queueSize: 128,
    });
    const q = parseCommandLine(['9p', '--fd', '3', '--shared-dir', dir, '--tag', 'share', '--read-only', '--msize', '65536', '--queue-size', '256']);
    const o = (q as unknown as { options: P9Options }).options;
    assert.equal(o.tag, 'share');
    assert.equal(o.readOnly, true);
    assert.equal(o.msize, 65536);
    assert.equal(o.queueSize, 256);
    assert.equal(o.xattrPrefix, undefined);
    const x = parseCommandLine(['9p', '--fd', '3', '--shared-dir', dir, '--xattr-prefix', 'user.9p.']);
    assert.equal((x as unknown as { options: P9Options }).options.xattrPrefix, 'user.9p.');
    assert.equal(o.translateUid, undefined);
    const m = (parseCommandLine(['9p', '--fd', '3', '--shared-dir', dir, '--translate-uid', '0:1000:1', '--translate-gid', '0:100:1,5:200:2']) as unknown as { options: P9Options }).options;
    assert.equal(m.translateUid, '0:1000:1');
    assert.equal(m.translateGid, '0:100:1,5:200:2');
  });

  it('refuses a missing or non-directory --shared-dir, an empty or over-long --tag, a bad --msize, --queue-size or id map', () => {
    writeFileSync(join(dir, 'file'), '');
    fault([], CliFault.BAD_VALUE);
    fault(['--shared-dir', join(dir, 'nope')], CliFault.BAD_VALUE);
    fault(['--shared-dir', join(dir, 'file')], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', ''], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', 'x'.repeat(33)], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--msize', '1000'], CliFault.BAD_NUMBER);
    fault(['--shared-dir', dir, '--queue-size', '100'], CliFault.BAD_NUMBER);
    fault(['--shared-dir', dir, '--xattr-prefix', 'trusted.x.'], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--translate-uid', '1:2'], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--translate-gid', 'a:b:c'], CliFault.BAD_VALUE);
  });

  it('--help prints the usage; --print-capabilities reports vhost-user type "9p"; the top-level usage lists it', async () => {
    const h = await run(['9p', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, /^Usage: virtio-ts 9p .*--shared-dir DIR/);
    const c = await run(['9p', '--print-capabilities']);
    assert.equal(c.code, 0);
    assert.deepEqual(JSON.parse(c.out), { type: '9p' });
    const top = await run(['--help']);
    assert.match(top.out, /^\s+9p\s+share a host directory as a virtio 9P/m);
  });
});
