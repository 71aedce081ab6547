import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LogLevel } from '../log.js';
import { CliError, CliFault, DEFAULTS, EXIT, MAX_NUM_QUEUES, parseCommandLine, usage, type BlkOptions, type Parsed } from './args.js';
import { runMain } from './cli-test-helpers.js';

function fault(argv: string[], f: CliFault): void {
  assert.throws(
    () => parseCommandLine(argv),
    (e: unknown) => {
      assert.ok(e instanceof CliError, `CliError, got ${String(e)}`);
      assert.equal(e.fault, f, e.message);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      return true;
    },
  );
}

function blk(argv: string[]): BlkOptions {
  const p: Parsed = parseCommandLine(['blk', ...argv]);
  assert.equal(p.kind, 'device');
  assert.equal((p as { command: string }).command, 'blk');
  return (p as { options: unknown }).options as BlkOptions;
}

const run = runMain;

describe('virtio-ts command line', () => {
  it('blk: defaults and every option', () => {
    const d = blk(['--socket-path', '/tmp/x.sock', '--memory', '1M']);
    assert.deepEqual(d, {
      socketPath: '/tmp/x.sock',
      fd: null,
      verbosity: DEFAULTS.verbosity,
      image: null,
      memoryBytes: 1 << 20,
      readOnly: false,
      numQueues: 1,
      queueSize: 1024,
      serial: null,
      pollUs: null,
      threads: 0,
    });
    const o = blk(['--fd=5', '--image', 'disk.img', '--read-only', '--num-queues', '4', '--queue-size=512', '--serial', 'abc', '-vv']);
    assert.equal(o.fd, 5);
    assert.equal(o.socketPath, null);
    assert.equal(o.image, 'disk.img');
    assert.equal(o.readOnly, true);
    assert.equal(o.numQueues, 4);
    assert.equal(o.queueSize, 512);
    assert.equal(o.serial, 'abc');
    assert.equal(o.verbosity, LogLevel.DEBUG);
    assert.equal(blk(['--socket-path', 's', '--blk-file', 'f.img']).image, 'f.img', '--blk-file (vhost-user-blk convention) is --image');
    assert.equal(blk(['--socket-path', 's', '--memory', '4096', '--quiet']).verbosity, LogLevel.ERROR);
  });

  it('rng and demo parse', () => {
    assert.deepEqual(parseCommandLine(['rng', '--socket-path', 'r.sock']), {
      kind: 'device',
      command: 'rng',
      options: { socketPath: 'r.sock', fd: null, verbosity: DEFAULTS.verbosity },
    });
    const d = parseCommandLine(['demo', '--disk-size', '128K', '--entropy-bytes', '16']);
    assert.equal(d.kind, 'demo');
    assert.deepEqual((d as { options: unknown }).options, { verbosity: LogLevel.WARN, diskBytes: 128 * 1024, entropyBytes: 16 });
  });

  it('unknown commands and options are refused', () => {
    fault(['frobnicate'], CliFault.UNKNOWN_COMMAND);
    fault(['blk', '--socket-path', 's', '--memory', '1M', '--bogus'], CliFault.UNKNOWN_OPTION);
    fault(['rng', '--socket-path', 's', '--image', 'x'], CliFault.UNKNOWN_OPTION);
    fault(['demo', '--socket-path', 's'], CliFault.UNKNOWN_OPTION);
    fault(['blk', '--socket-path', 's', '--memory', '1M', 'extra'], CliFault.BAD_SYNTAX);
    fault(['blk', '--memory', '1M', '--socket-path'], CliFault.BAD_SYNTAX);
  });

  it('the socket: exactly one of --socket-path and --fd, a usable value', () => {
    fault(['blk', '--memory', '1M'], CliFault.MISSING_SOCKET);
    fault(['rng'], CliFault.MISSING_SOCKET);
    fault(['rng', '--socket-path', 's', '--fd', '3'], CliFault.CONFLICT);
    fault(['rng', '--fd', '-1'], CliFault.BAD_SYNTAX); // parseArgs: "-1" looks like an option
    fault(['rng', '--fd=-1'], CliFault.BAD_NUMBER);
    fault(['rng', '--fd', '2'], CliFault.BAD_NUMBER); // 0..2 are stdio
    fault(['rng', '--fd', '0x5'], CliFault.BAD_NUMBER);
    fault(['rng', '--fd', '3.5'], CliFault.BAD_NUMBER);
    fault(['rng', '--socket-path', ''], CliFault.BAD_VALUE);
    fault(['rng', '--socket-path', '/tmp/' + 'x'.repeat(103)], CliFault.BAD_VALUE); // 108 bytes
    assert.equal((parseCommandLine(['rng', '--socket-path', '/tmp/' + 'x'.repeat(102)]) as { options: { socketPath: string } }).options.socketPath.length, 107);
  });

  it('blk: the image: exactly one of --image and --memory, sizes checked', () => {
    fault(['blk', '--socket-path', 's'], CliFault.MISSING_IMAGE);
    fault(['blk', '--socket-path', 's', '--image', 'a', '--memory', '1M'], CliFault.CONFLICT);
    fault(['blk', '--socket-path', 's', '--image', 'a', '--blk-file', 'b'], CliFault.CONFLICT);
    fault(['blk', '--socket-path', 's', '--image', ''], CliFault.BAD_VALUE);
    for (const bad of ['', 'lots', '1X', '-1M', '0', '1.5M', '100']) {
      fault(['blk', '--socket-path', 's', `--memory=${bad}`], CliFault.BAD_SIZE);
    }
    fault(['blk', '--socket-path', 's', '--memory', '1T'], CliFault.BAD_SIZE); // above Buffer's limit
    assert.equal(blk(['--socket-path', 's', '--memory', '512']).memoryBytes, 512);
    assert.equal(blk(['--socket-path', 's', '--memory', '2GiB']).memoryBytes, 2 * 1024 ** 3);
  });

  it('blk: queue count and size, serial length', () => {
    for (const bad of ['0', '-3', 'two', '1.0', String(MAX_NUM_QUEUES + 1), '']) {
      fault(['blk', '--socket-path', 's', '--memory', '1M', `--num-queues=${bad}`], CliFault.BAD_NUMBER);
    }
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--num-queues', String(MAX_NUM_QUEUES)]).numQueues, MAX_NUM_QUEUES);
    for (const bad of ['0', '1', '3', '100', '65536']) {
      fault(['blk', '--socket-path', 's', '--memory', '1M', `--queue-size=${bad}`], CliFault.BAD_NUMBER);
    }
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--queue-size', '32768']).queueSize, 32768);
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--queue-size', '2']).queueSize, 2);
    fault(['blk', '--socket-path', 's', '--memory', '1M', '--serial', 'x'.repeat(21)], CliFault.BAD_VALUE);
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--serial', 'x'.repeat(20)]).serial, 'x'.repeat(20));
    fault(['blk', '--socket-path', 's', '--memory', '1M', '-v', '--quiet'], CliFault.CONFLICT);
  });

  it('--print-capabilities wins over every other option, valid or not (Backend program conventions)', () => {
    assert.deepEqual(parseCommandLine(['blk', '--print-capabilities']), { kind: 'capabilities', command: 'blk' });
    assert.deepEqual(parseCommandLine(['blk', '--bogus', '--memory', 'nonsense', '--print-capabilities']), { kind: 'capabilities', command: 'blk' });
    assert.deepEqual(parseCommandLine(['rng', '--print-capabilities', '--socket-path', 's', '--fd', '9']), { kind: 'capabilities', command: 'rng' });
  });

  it('help and version', () => {
    for (const argv of [['-h'], ['--help'], ['help']]) assert.equal(parseCommandLine(argv).kind, 'help');
    assert.deepEqual(parseCommandLine(['blk', '--help']), { kind: 'help', text: usage('blk') });
    for (const cmd of ['blk', 'rng', 'demo']) assert.deepEqual(parseCommandLine([cmd, '--version']), { kind: 'version' }, `${cmd} --version`);
    assert.deepEqual(parseCommandLine(['blk', '--socket-path', '/tmp/s', '--version']), { kind: 'version' }, 'before the other options are checked');
    assert.deepEqual(parseCommandLine(['rng', '-h']), { kind: 'help', text: usage('rng') });
    assert.deepEqual(parseCommandLine(['demo', '-h']), { kind: 'help', text: usage('demo') });
    assert.equal(parseCommandLine(['--version']).kind, 'version');
    assert.match(usage('blk'), /--socket-path PATH.*--fd N/s);
    assert.match(usage('blk'), /--image FILE.*--memory SIZE/s);
    assert.match(usage(null), /blk.*rng.*demo/s);
  });

  it('the usage text is true: every option it lists is accepted by its command, and -v/-q set the levels it describes', () => {
    const base = { blk: ['--socket-path', 's', '--memory', '1M'], rng: ['--socket-path', 's'], demo: [] as string[] } as const;
    const value: Record<string, string> = {
      '--socket-path': 's',
      '--fd': '5',
      '--image': 'a.img',
      '--blk-file': 'a.img',
      '--memory': '1M',
      '--num-queues': '2',
      '--queue-size': '256',
      '--serial': 'abc',
      '--poll-us': '20',
      '--wait-us': '50',
      '--threads': '1',
      '--nbd': 'nbd://127.0.0.1/x',
      '--nbd-connections': '2',
      '--nbd-tls-ca': 'ca.pem',
      '--nbd-tls-cert': 'c.pem',
      '--nbd-tls-key': 'k.pem',
      '--nbd-tls-hostname': 'h',
      '--nbd-tls-psk': 'keys.psk',
      '--nbd-tls-username': 'u',
      '--aio': 'threads',
      '--disk-size': '128K',
      '--entropy-bytes': '8',
      '--stats-interval': '10',
      '--metrics': '127.0.0.1:9100',
      '--inspect': '127.0.0.1:9101',
    };
    for (const cmd of ['blk', 'rng', 'demo'] as const) {
      const listed = [...new Set([...usage(cmd).matchAll(/(?:^|\s)(--[a-z-]+)/g)].map((m) => m[1]!))];
      assert.ok(listed.length >= 3, `${cmd} lists its options`);
      for (const opt of listed) {
        if (opt === '--help' || opt === '--print-capabilities' || opt === '--version') continue; // each has its own kind, tested above
        // Drop what conflicts with the option under test, then add it.
        let argv: string[] = [...base[cmd]];
        if (opt === '--fd') argv = argv.filter((a, i) => a !== '--socket-path' && argv[i - 1] !== '--socket-path');
        if (opt === '--image' || opt === '--blk-file' || opt.startsWith('--nbd')) argv = argv.filter((a, i) => a !== '--memory' && argv[i - 1] !== '--memory');
        if (opt === '--nbd-connections') argv.push('--nbd', 'nbd://127.0.0.1/x');
        // The TLS options take an nbds URI, and some go in pairs.
        const tlsCompanion: Record<string, string[]> = { '--nbd-tls-cert': ['--nbd-tls-key', 'k.pem'], '--nbd-tls-key': ['--nbd-tls-cert', 'c.pem'], '--nbd-tls-username': ['--nbd-tls-psk', 'keys.psk'] };
        if (opt.startsWith('--nbd-tls-')) argv.push('--nbd', 'nbds://127.0.0.1/x', ...(tlsCompanion[opt] ?? []));
        if (argv.includes(opt)) continue;
        const v = value[opt];
        const p = parseCommandLine([cmd, ...argv, opt, ...(v === undefined ? [] : [v])]);
        assert.equal(p.kind === 'device' ? p.command : p.kind, cmd, `${cmd} ${opt}`);
      }
    }
    assert.equal(blk(['--socket-path', 's', '--memory', '1M']).verbosity, LogLevel.INFO, 'default: connections, rings, shutdown (info)');
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '-v']).verbosity, LogLevel.DEBUG, '-v: debug');
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '-q']).verbosity, LogLevel.ERROR, '-q: errors only');
    assert.match(usage('blk'), /--memory SIZE .*multiple of 512/);
    assert.match(usage('blk'), /--num-queues N .*1\.\.256/);
  });

  it('blk --poll-us: 0..1000 microseconds, null (the command default) when absent', () => {
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--poll-us', '0']).pollUs, 0);
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--poll-us=1000']).pollUs, 1000);
    assert.equal(blk(['--socket-path', 's', '--image', 'a.img']).pollUs, null);
    for (const bad of ['-1', '1001', '2.5', 'x', '']) {
      assert.throws(() => parseCommandLine(['blk', '--socket-path', 's', '--memory', '1M', '--poll-us', bad]), CliError, bad);
    }
  });

  it('main(): a usage error is one line and a hint to --help on stderr, exit code 2', async () => {
    const r = await run(['blk', '--socket-path', 's']);
    assert.equal(r.code, EXIT.USAGE);
    assert.equal(r.out, '');
    assert.equal(r.err, "virtio-ts blk: give --image FILE, --memory SIZE or --nbd URI\nTry 'virtio-ts blk --help' for its options.\n");
    const u = await run(['nope']);
    assert.equal(u.code, EXIT.USAGE);
    assert.equal(u.err, "virtio-ts: unknown command \"nope\"\nTry 'virtio-ts --help' for the commands.\n");
  });

  it('main(): no command at all is a usage error too (exit code 2), not the help', async () => {
    assert.throws(() => parseCommandLine([]), (e: unknown) => e instanceof CliError && e.fault === CliFault.MISSING_COMMAND);
    const r = await run([]);
    assert.equal(r.code, EXIT.USAGE);
    assert.equal(r.out, '');
    assert.equal(r.err, "virtio-ts: no command given\nTry 'virtio-ts --help' for the commands.\n");
  });

  it('main(): help, version and capabilities go to stdout with exit code 0', async () => {
    const h = await run(['rng', '--help']);
    assert.deepEqual(h, { code: 0, out: usage('rng'), err: '' });
    const v = await run(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.out, /^virtio-ts \d+\.\d+\.\d+\n$/);
    const c = await run(['blk', '--print-capabilities']);
    assert.equal(c.code, 0);
    assert.deepEqual(JSON.parse(c.out), { type: 'block', features: ['read-only', 'blk-file'] });
    const r = await run(['rng', '--print-capabilities']);
    assert.deepEqual(JSON.parse(r.out), { type: 'rng' });
  });
});
