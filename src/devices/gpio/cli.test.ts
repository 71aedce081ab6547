/** `virtio-ts gpio`: option parsing, usage, capabilities and the control socket's commands. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConnection } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import { GpioDirection } from '../../spec/gpio.js';
import type { GpioOptions } from './cli.js';
import { gpioControlCommand, startGpioControl } from './gpio-control.js';
import { GpioDevice } from './gpio-device.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('gpio', argv, f);

describe('virtio-ts gpio command line', () => {
  it('parses --line NAME[=in|out], unnamed lines, --lines padding, --no-irq, --control-socket, --queue-size', () => {
    const p = parseCommandLine(['gpio', '--socket-path', '/tmp/x.sock', '--line', 'led', '--line', 'button=in', '--line', '=out', '--lines', '5', '--no-irq', '--control-socket', '/tmp/c.sock', '--queue-size', '64']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: GpioOptions }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      lines: [
        { name: 'led', direction: GpioDirection.NONE },
        { name: 'button', direction: GpioDirection.IN },
        { name: null, direction: GpioDirection.OUT },
        { name: null, direction: GpioDirection.NONE },
        { name: null, direction: GpioDirection.NONE },
      ],
      irq: false,
      controlSocket: '/tmp/c.sock',
      queueSize: 64,
    });
  });

  it('refuses no lines, bad names and directions, duplicate names, too few --lines', () => {
    fault([], CliFault.BAD_VALUE);
    fault(['--line', 'led=sideways'], CliFault.BAD_VALUE);
        fault(['--line', 'caf\u00e9'], CliFault.BAD_VALUE);
    fault(['--line', 'a', '--line', 'a=in'], CliFault.CONFLICT);
    fault(['--line', 'a', '--line', 'b', '--lines', '1'], CliFault.CONFLICT);
    fault(['--lines', '0'], CliFault.BAD_NUMBER);
    fault(['--line', 'a', '--control-socket', 'x'.repeat(200)], CliFault.BAD_VALUE);
  });

  it('--print-capabilities: vhost-user.json has no GPIO back-end type, so it says so and exits 1; --help names --line', async () => {
    const caps = await run(['gpio', '--print-capabilities']);
    assert.equal(caps.code, 1);
    assert.equal(caps.out, '');
    assert.match(caps.err, /vhost-user\.json defines no back-end type/);
    const help = await run(['gpio', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--line NAME\[=in\|out\]/);
  });

  it('the control socket: set and get by name or number, errors answered, long lines cut off', async () => {
    const device = new GpioDevice([{ name: 'led' }, { name: 'button', direction: GpioDirection.IN }]);
    const target = { setInput: (l: string, v: 0 | 1) => device.setInput(l, v), line: (l: string) => device.line(l) };
    assert.equal(gpioControlCommand(target, 'set button 1'), 'ok');
    assert.equal(gpioControlCommand(target, 'get 1'), 'ok level=1 direction=in output=0 input=1 irq=none');
    assert.match(gpioControlCommand(target, 'get nope'), /^err no GPIO line nope/);
    assert.match(gpioControlCommand(target, 'set led 2'), /^err commands/);
    const dir = await mkdtemp(join(tmpdir(), 'vts-gpioctl-'));
    const path = join(dir, 'c.sock');
    const ctl = await startGpioControl(path, target);
    try {
      const answers = await new Promise<string[]>((resolve, reject) => {
        const s = createConnection(path);
        let buf = '';
        s.setEncoding('utf8');
        s.on('connect', () => s.write('set button 0\nget button\n'));
        s.on('data', (d: string) => {
          buf += d;
          if (buf.split('\n').length > 2) {
            s.end();
            resolve(buf.trim().split('\n'));
          }
        });
        s.on('error', reject);
      });
      assert.deepEqual(answers, ['ok', 'ok level=0 direction=in output=0 input=0 irq=none']);
      const closed = await new Promise<boolean>((resolve) => {
        const s = createConnection(path);
        s.on('connect', () => s.write('x'.repeat(1000)));
        s.on('close', () => resolve(true));
        s.on('error', () => resolve(true));
      });
      assert.equal(closed, true, 'a line over 256 bytes closes the connection');
    } finally {
      await ctl.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
