import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliError, CliFault } from '../../cli/options.js';
import type { ConsoleCliOptions } from './cli.js';
import { parsePortSpec } from './port-spec.js';

const opts = (args: string[]): ConsoleCliOptions => (parseCommandLine(['console', '--socket-path', 'c.sock', ...args]) as unknown as { options: ConsoleCliOptions }).options;
const refused = (args: string[], pattern: RegExp): void => {
  assert.throws(
    () => opts(args),
    (e: unknown) => e instanceof CliError && e.command === 'console' && (e.fault === CliFault.BAD_VALUE || e.fault === CliFault.BAD_NUMBER) && pattern.test(e.message),
  );
};

describe('virtio-ts console: command line', () => {
  it('--port SPEC per port, in order; without one, a console on stdio', () => {
    const o = opts(['--port', 'name=org.qemu.guest_agent.0,socket=/run/qga.sock', '--port', 'console,pty', '--port', 'file=/tmp/g.log,name=log', '--port', 'stdio', '--size', '100x40', '--max-ports', '8']);
    assert.deepEqual(o.ports, [
      { console: false, name: 'org.qemu.guest_agent.0', host: { kind: 'socket', path: '/run/qga.sock' } },
      { console: true, name: null, host: { kind: 'pty' } },
      { console: false, name: 'log', host: { kind: 'file', path: '/tmp/g.log' } },
      { console: false, name: null, host: { kind: 'stdio' } },
    ]);
    assert.deepEqual(o.size, { cols: 100, rows: 40 });
    assert.equal(o.maxPorts, 8);
    assert.equal(o.socketPath, 'c.sock');
    const d = opts([]);
    assert.deepEqual(d.ports, [{ console: true, name: null, host: { kind: 'stdio' } }]);
    assert.equal(d.maxPorts, 1);
    assert.equal(d.size, null);
  });

  it('bad specs are usage errors that name the problem', () => {
    refused(['--port', 'console'], /no host side/);
    refused(['--port', 'pty,stdio'], /more than one host side/);
    refused(['--port', 'pty,colour=red'], /unknown item "colour=red"/);
    refused(['--port', 'name=,pty'], /name= needs a value/);
    refused(['--port', 'socket=,name=x'], /socket= needs a value/);
    refused(['--port', 'pty=1'], /pty takes no value/);
    refused(['--port', 'console,console,pty'], /console given twice/);
    refused(['--port', `name=${'n'.repeat(256)},pty`], /longer than 255/);
    refused(['--port', `socket=/${'s'.repeat(120)}`], /longer than 107/);
    refused(['--port', 'stdio', '--port', 'console,stdio'], /stdio serves one port/);
    refused(['--port', 'socket=/a', '--port', 'socket=/a'], /given for two ports/);
    refused(['--port', 'name=x,pty', '--port', 'name=x,pty'], /same name/);
    refused(['--port', 'pty', '--port', 'pty', '--max-ports', '1'], /at most 1/);
    refused(['--size', '80'], /COLSxROWS/);
    refused(['--size', '0x24'], /COLSxROWS/);
    refused(['--max-ports', '1025'], /out of range/);
    assert.throws(() => parsePortSpec(''), CliError);
  });
});
