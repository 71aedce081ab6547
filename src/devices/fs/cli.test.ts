/** `virtio-ts fs`: option parsing, usage and capabilities (serving is proven by the guest tests). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import type { FsOptions } from './cli.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('fs', argv, f);

describe('virtio-ts fs command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vts-fscli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses --shared-dir, --tag and the queue options with their defaults', () => {
    const p = parseCommandLine(['fs', '--socket-path', '/tmp/x.sock', '--shared-dir', dir, '--tag', 'share']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: FsOptions }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      sharedDir: dir,
      tag: 'share',
      numRequestQueues: 1,
      queueSize: 1024,
    });
    const q = parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', '--num-request-queues', '4', '--queue-size', '256']);
    assert.equal((q as unknown as { options: FsOptions }).options.numRequestQueues, 4);
    assert.equal((q as unknown as { options: FsOptions }).options.queueSize, 256);
  });

  it('refuses a missing or non-directory --shared-dir, a missing, empty or over-long --tag, bad queue counts', () => {
    writeFileSync(join(dir, 'file'), '');
    fault(['--tag', 't'], CliFault.BAD_VALUE);
    fault(['--shared-dir', join(dir, 'nope'), '--tag', 't'], CliFault.BAD_VALUE);
    fault(['--shared-dir', join(dir, 'file'), '--tag', 't'], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', ''], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', 'é'.repeat(19)], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', 't', '--num-request-queues', '0'], CliFault.BAD_NUMBER);
    fault(['--shared-dir', dir, '--tag', 't', '--queue-size', '100'], CliFault.BAD_NUMBER);
  });

  it('parses --cache, --readonly, --translate-uid/-gid and --xattr-prefix; refuses bad values', () => {
    const p = parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', '--cache', 'never', '--readonly', '--translate-uid', '0:1000:1', '--translate-gid', '0:100:1,5:200:2', '--xattr-prefix', 'user.virtiofs.']);
    const o = (p as unknown as { options: FsOptions }).options;
    assert.deepEqual([o.cache, o.readOnly, o.translateUid, o.translateGid, o.xattrPrefix], ['never', true, '0:1000:1', '0:100:1,5:200:2', 'user.virtiofs.']);
    fault(['--shared-dir', dir, '--tag', 't', '--cache', 'sometimes'], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', 't', '--translate-uid', '1:2'], CliFault.BAD_VALUE);
    fault(['--shared-dir', dir, '--tag', 't', '--xattr-prefix', 'trusted.x.'], CliFault.BAD_VALUE);
    const n = parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', '--notification']);
    assert.equal((n as unknown as { options: FsOptions }).options.notification, true);
    assert.equal((p as unknown as { options: FsOptions }).options.notification, undefined, 'not offered unless asked');
    const a = parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', '--posix-acl']);
    assert.equal((a as unknown as { options: FsOptions }).options.posixAcl, true);
    fault(['--shared-dir', dir, '--tag', 't', '--posix-acl', '--translate-uid', '0:1000:1'], CliFault.BAD_VALUE);
  });

  it('--async-io and --no-io-uring: READ/WRITE on the thread pool, READs one pread each; neither by default', () => {
    const opts = (extra: string[]) => (parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', ...extra]) as unknown as { options: FsOptions }).options;
    assert.deepEqual([opts([]).asyncIo, opts([]).ioUring], [undefined, undefined]);
    assert.equal(opts(['--async-io']).asyncIo, true);
    assert.equal(opts(['--no-io-uring']).ioUring, false);
  });

  it('--retain-fds N: 0..65536, absent by default (HostFs keeps 4096); refuses other values', () => {
    const opts = (extra: string[]) => (parseCommandLine(['fs', '--fd', '3', '--shared-dir', dir, '--tag', 't', ...extra]) as unknown as { options: FsOptions }).options;
    assert.equal(opts([]).retainFds, undefined);
    assert.equal(opts(['--retain-fds', '0']).retainFds, 0);
    assert.equal(opts(['--retain-fds', '65536']).retainFds, 65536);
    fault(['--shared-dir', dir, '--tag', 't', '--retain-fds', '65537'], CliFault.BAD_NUMBER);
    fault(['--shared-dir', dir, '--tag', 't', '--retain-fds=-1'], CliFault.BAD_NUMBER);
    fault(['--shared-dir', dir, '--tag', 't', '--retain-fds', 'many'], CliFault.BAD_NUMBER);
  });

  it('--help prints the usage; --print-capabilities reports vhost-user type "fs"', async () => {
    const h = await run(['fs', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, /^Usage: virtio-ts fs .*--shared-dir DIR --tag TAG/);
    const c = await run(['fs', '--print-capabilities']);
    assert.equal(c.code, 0);
    assert.deepEqual(JSON.parse(c.out), { type: 'fs' });
    const top = await run(['--help']);
    assert.match(top.out, /^\s+fs\s+share a host directory as a virtio-fs device over vhost-user$/m);
  });
});
