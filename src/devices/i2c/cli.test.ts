/** `virtio-ts i2c`: option parsing, usage and capabilities (serving is proven by the guest test). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import type { I2cOptions } from './cli.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';

const run = runMain;

const fault = (argv: string[], f: CliFault): void => expectCliFault('i2c', argv, f);

describe('virtio-ts i2c command line', () => {
  it('parses repeated --target specs (EEPROM with file and page, register file, 10-bit) and --queue-size', () => {
    const p = parseCommandLine(['i2c', '--socket-path', '/tmp/x.sock', '--target', '0x50=eeprom:256,file=/tmp/e.bin,page=16', '--target', '32=regs:16', '--target', '0x2a5=regs:4', '--queue-size', '64']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: I2cOptions }).options, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      targets: [
        { address: 0x50, tenBit: false, kind: 'eeprom', size: 256, file: '/tmp/e.bin', pageSize: 16 },
        { address: 0x20, tenBit: false, kind: 'regs', count: 16 },
        { address: 0x2a5, tenBit: true, kind: 'regs', count: 4 },
      ],
      queueSize: 64,
    });
  });

  it('refuses no target, bad addresses, kinds, sizes, options and duplicates', () => {
    fault([], CliFault.BAD_VALUE);
    fault(['--target', '0x50'], CliFault.BAD_VALUE);
    fault(['--target', '0x78=regs:4'], CliFault.BAD_VALUE);
    fault(['--target', '0x400=regs:4'], CliFault.BAD_VALUE);
    fault(['--target', 'zz=regs:4'], CliFault.BAD_VALUE);
    fault(['--target', '0x50=flash:256'], CliFault.BAD_VALUE);
    fault(['--target', '0x50=eeprom:300'], CliFault.BAD_SIZE);
    fault(['--target', '0x50=eeprom:256,page=3'], CliFault.BAD_SIZE);
    fault(['--target', '0x50=eeprom:256,cache=on'], CliFault.BAD_VALUE);
    fault(['--target', '0x20=regs:0'], CliFault.BAD_NUMBER);
    fault(['--target', '0x20=regs:300'], CliFault.BAD_NUMBER);
    fault(['--target', '0x20=regs:4,x'], CliFault.BAD_VALUE);
    fault(['--target', '0x20=regs:4', '--target', '32=eeprom:128'], CliFault.CONFLICT);
    fault(['--target', '0x20=regs:4', '--queue-size', '3'], CliFault.BAD_NUMBER);
  });

  it('--print-capabilities: vhost-user.json has no I2C back-end type, so it says so and exits 1; --help names --target', async () => {
    const caps = await run(['i2c', '--print-capabilities']);
    assert.equal(caps.code, 1);
    assert.equal(caps.out, '');
    assert.match(caps.err, /vhost-user\.json defines no back-end type/);
    const help = await run(['i2c', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--target ADDR=eeprom:SIZE/);
  });
});
