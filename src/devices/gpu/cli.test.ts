/** `virtio-ts gpu`: option parsing, usage, and --print-capabilities checked against vhost-user.json. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliFault, DEFAULT_VERBOSITY } from '../../cli/options.js';
import { expectCliFault, runMain } from '../../cli/cli-test-helpers.js';
import type { GpuOptions } from './cli.js';

const fault = (argv: string[], f: CliFault): void => expectCliFault('gpu', argv, f);

/** The values of a QAPI enum in the schema text. */
function schemaEnum(schema: string, name: string): string[] {
  const m = new RegExp(`'enum': '${name}',\\s*'data': \\[([^\\]]*)\\]`).exec(schema);
  assert.ok(m, `enum ${name} in vhost-user.json`);
  return [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]!);
}

describe('virtio-ts gpu command line', () => {
  it('parses --display (repeatable) and --queue-size; one 1024x768 display by default', () => {
    const p = parseCommandLine(['gpu', '--socket-path', '/tmp/g.sock', '--display', '800x600', '--display', '1x4095', '--queue-size', '64']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as unknown as { options: GpuOptions }).options, {
      socketPath: '/tmp/g.sock',
      fd: null,
      verbosity: DEFAULT_VERBOSITY,
      displays: [
        { width: 800, height: 600 },
        { width: 1, height: 4095 },
      ],
      queueSize: 64,
    });
    const d = parseCommandLine(['gpu', '--fd', '3']);
    assert.deepEqual((d as unknown as { options: GpuOptions }).options.displays, [{ width: 1024, height: 768 }]);
  });

  it('refuses bad displays, too many, and bad queue sizes', () => {
    fault(['--display', '800'], CliFault.BAD_VALUE);
    fault(['--display', '0x600'], CliFault.BAD_SIZE);
    fault(['--display', '4096x10'], CliFault.BAD_SIZE);
    fault(Array.from({ length: 17 }, () => ['--display', '10x10']).flat(), CliFault.BAD_VALUE);
    fault(['--queue-size', '3'], CliFault.BAD_NUMBER);
  });

  it('--print-capabilities is valid against vhost-user.json (type gpu, features from VHostUserBackendGPUFeature: none, no virgl); --help names --display', async () => {
    const caps = await runMain(['gpu', '--print-capabilities']);
    assert.equal(caps.code, 0, caps.err);
    const out = JSON.parse(caps.out) as { type: string; features: string[] };
    const schema = readFileSync('/work/shared/vhost-user.json', 'utf8');
    assert.ok(schemaEnum(schema, 'VHostUserBackendType').includes(out.type));
    assert.equal(out.type, 'gpu');
    // VHostUserBackendCapabilitiesGPU: 'features' is required, each a VHostUserBackendGPUFeature.
    assert.ok(Array.isArray(out.features));
    const allowed = schemaEnum(schema, 'VHostUserBackendGPUFeature');
    assert.deepEqual(allowed, ['render-node', 'virgl']);
    for (const f of out.features) assert.ok(allowed.includes(f), f);
    assert.deepEqual(out.features, [], 'no --render-node, no --virgl');
    assert.deepEqual(Object.keys(out).sort(), ['features', 'type']);
    const help = await runMain(['gpu', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--display WxH/);
  });
});
