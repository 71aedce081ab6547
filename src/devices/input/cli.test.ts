import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliError, CliFault } from '../../cli/options.js';
import { parseInputLine } from './input-command.js';

describe('virtio-ts input: command line', () => {
  it('parses --preset and --name with the back-end options; refuses an unknown preset', () => {
    const p = parseCommandLine(['input', '--socket-path', 'i.sock', '--preset', 'tablet', '--name', 'pad']);
    assert.equal(p.kind, 'device');
    const o = (p as unknown as { options: { preset: string; name?: string; socketPath: string } }).options;
    assert.equal(o.preset, 'tablet');
    assert.equal(o.name, 'pad');
    assert.equal(o.socketPath, 'i.sock');
    assert.equal((parseCommandLine(['input', '--socket-path', 'i.sock']) as unknown as { options: { preset: string } }).options.preset, 'keyboard');
    assert.throws(
      () => parseCommandLine(['input', '--socket-path', 'i.sock', '--preset', 'joystick']),
      (e: unknown) => e instanceof CliError && e.fault === CliFault.BAD_VALUE && e.command === 'input',
    );
  });

  it('input lines: "TYPE CODE VALUE", "SYN" or "0 0 0" end an update, anything else is refused', () => {
    assert.deepEqual(parseInputLine('1 30 1'), { type: 1, code: 30, value: 1 });
    assert.deepEqual(parseInputLine(' 2 0 -5 '), { type: 2, code: 0, value: -5 });
    assert.equal(parseInputLine('SYN'), 'syn');
    assert.equal(parseInputLine('0 0 0'), 'syn');
    assert.equal(parseInputLine(''), null);
    assert.equal(parseInputLine('1 30'), null);
    assert.equal(parseInputLine('1 x 1'), null);
    assert.equal(parseInputLine('70000 1 1'), null);
    assert.equal(parseInputLine('1 1 4294967296'), null);
  });
});
