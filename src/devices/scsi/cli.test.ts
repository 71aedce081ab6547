/** `virtio-ts scsi`: option parsing, usage and capabilities (serving is proven by the guest test). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import type { ScsiOptions } from './cli.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('scsi', argv, f);

describe('virtio-ts scsi command line', () => {
  it('parses repeated --lun specs (file or memory, readonly, serial) and the queue options', () => {
    const p = parseCommandLine(['scsi', '--socket-path', '/tmp/x.sock', '--lun', 'file=/tmp/a.img,readonly', '--lun', 'memory=1M,serial=disk two', '--num-queues', '2']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: ScsiOptions }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      luns: [
        { file: '/tmp/a.img', memoryBytes: null, readOnly: true, serial: null },
        { file: null, memoryBytes: 1 << 20, readOnly: false, serial: 'disk two' },
      ],
      numQueues: 2,
      queueSize: 128,
    });
  });

  it('refuses a missing --lun, a spec with both or neither backend, unknown keys, bad sizes and serials', () => {
    fault([], CliFault.MISSING_IMAGE);
    fault(['--lun', 'file=/a,memory=1M'], CliFault.BAD_VALUE);
    fault(['--lun', 'readonly'], CliFault.BAD_VALUE);
    fault(['--lun', 'file=/a,cache=none'], CliFault.BAD_VALUE);
    fault(['--lun', 'memory=1000'], CliFault.BAD_SIZE);
    fault(['--lun', 'memory=1M,serial=' + 'x'.repeat(33)], CliFault.BAD_VALUE);
    fault(['--lun', 'memory=1M', '--queue-size', '2'], CliFault.BAD_NUMBER);
  });

  it('--print-capabilities prints {"type":"scsi"}; --help names --lun', async () => {
    const caps = await run(['scsi', '--print-capabilities']);
    assert.equal(caps.code, 0);
    assert.deepEqual(JSON.parse(caps.out), { type: 'scsi' });
    const help = await run(['scsi', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--lun SPEC/);
  });
});
