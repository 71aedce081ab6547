/** `virtio-ts crypto`: option parsing, usage and capabilities (serving is proven by the guest test). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import type { CryptoOptions } from './cli.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('crypto', argv, f);

describe('virtio-ts crypto command line', () => {
  it('parses the defaults and the queue, session and size options', () => {
    const d = parseCommandLine(['crypto', '--socket-path', '/tmp/x.sock']);
    assert.deepEqual((d as unknown as { options: CryptoOptions }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      numQueues: 1,
      queueSize: 1024,
      maxSessions: 256,
      maxSize: 1 << 20,
    });
    const p = parseCommandLine(['crypto', '--socket-path', '/tmp/x.sock', '--num-queues', '2', '--queue-size', '256', '--max-sessions', '16', '--max-size', '64K']);
    const o = (p as unknown as { options: CryptoOptions }).options;
    assert.deepEqual([o.numQueues, o.queueSize, o.maxSessions, o.maxSize], [2, 256, 16, 64 << 10]);
  });

  it('refuses bad numbers and sizes', () => {
    fault(['--max-sessions', '0'], CliFault.BAD_NUMBER);
    fault(['--max-sessions', 'many'], CliFault.BAD_NUMBER);
    fault(['--max-size', '10'], CliFault.BAD_SIZE);
    fault(['--max-size', '2G'], CliFault.BAD_SIZE);
    fault(['--queue-size', '3'], CliFault.BAD_NUMBER);
  });

  it('--print-capabilities prints {"type":"crypto"}; --help names the options', async () => {
    const caps = await run(['crypto', '--print-capabilities']);
    assert.equal(caps.code, 0);
    assert.deepEqual(JSON.parse(caps.out), { type: 'crypto' });
    const help = await run(['crypto', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--max-sessions N/);
    assert.match(help.out, /cryptodev-vhost-user/);
  });
});
