import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../../cli/args.js';
import { expectCliFault } from '../../../cli/cli-test-helpers.js';
import { CliFault } from '../../../cli/options.js';
import type { BlkOptions } from '../cli.js';

function blk(argv: string[]): BlkOptions {
  const p = parseCommandLine(['blk', '--socket-path', '/tmp/x.sock', ...argv]);
  assert.equal(p.kind, 'device');
  return (p as unknown as { options: BlkOptions }).options;
}

describe('virtio-ts blk --nbd', () => {
  it('--nbd URI, with --nbd-connections N (default 1)', () => {
    const o = blk(['--nbd', 'nbd+unix:///disk?socket=/run/n.sock']);
    assert.deepEqual(o.nbd, { uri: 'nbd+unix:///disk?socket=/run/n.sock', connections: 1 });
    assert.equal(o.image, null);
    assert.equal(o.memoryBytes, null);
    assert.deepEqual(blk(['--nbd', 'nbd://127.0.0.1:10809/x', '--nbd-connections', '4']).nbd, { uri: 'nbd://127.0.0.1:10809/x', connections: 4 });
    assert.equal(blk(['--memory', '1M']).nbd, undefined, 'absent without --nbd');
  });

  it('refuses a bad URI, --nbd with --image or --memory, --nbd-connections out of 1..16 or without --nbd', () => {
    expectCliFault('blk', ['--nbd', 'nbd+unix:///x'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'ftp://h/x'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'nbd://h/x', '--image', 'a.img'], CliFault.CONFLICT);
    expectCliFault('blk', ['--nbd', 'nbd://h/x', '--memory', '1M'], CliFault.CONFLICT);
    expectCliFault('blk', ['--nbd', 'nbd://h/x', '--nbd-connections', '17'], CliFault.BAD_NUMBER);
    expectCliFault('blk', ['--nbd', 'nbd://h/x', '--nbd-connections', '0'], CliFault.BAD_NUMBER);
    expectCliFault('blk', ['--memory', '1M', '--nbd-connections', '2'], CliFault.BAD_VALUE);
  });
});
