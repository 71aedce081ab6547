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

describe('virtio-ts blk --nbd over TLS', () => {
  it('--nbd-tls-* options ride with an nbds URI: X.509 files, or a PSK file and its username', () => {
    const x = blk(['--nbd', 'nbds://host/x', '--nbd-tls-ca', 'ca.pem', '--nbd-tls-cert', 'c.pem', '--nbd-tls-key', 'k.pem', '--nbd-tls-hostname', 'disk.example']);
    assert.deepEqual(x.nbd, { uri: 'nbds://host/x', connections: 1, tls: { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem', hostname: 'disk.example' } });
    const p = blk(['--nbd', 'nbds+unix:///?socket=/s', '--nbd-tls-psk', 'keys.psk', '--nbd-tls-username', 'alice']);
    assert.deepEqual(p.nbd, { uri: 'nbds+unix:///?socket=/s', connections: 1, tls: { pskFile: 'keys.psk', pskIdentity: 'alice' } });
    assert.deepEqual(blk(['--nbd', 'nbds://host/x']).nbd, { uri: 'nbds://host/x', connections: 1 }, 'nbds alone: the system CAs');
  });

  it('refuses TLS options without nbds (no silent plaintext), PSK mixed with certificates, a certificate without its key, a username without a PSK', () => {
    expectCliFault('blk', ['--nbd', 'nbd://h/x', '--nbd-tls-ca', 'ca.pem'], CliFault.CONFLICT);
    expectCliFault('blk', ['--memory', '1M', '--nbd-tls-ca', 'ca.pem'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'nbds://h/x', '--nbd-tls-psk', 'k', '--nbd-tls-ca', 'ca.pem'], CliFault.CONFLICT);
    expectCliFault('blk', ['--nbd', 'nbds://h/x', '--nbd-tls-cert', 'c.pem'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'nbds://h/x', '--nbd-tls-key', 'k.pem'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'nbds://h/x', '--nbd-tls-username', 'u'], CliFault.BAD_VALUE);
    expectCliFault('blk', ['--nbd', 'nbds://h/x', '--nbd-tls-ca', ''], CliFault.BAD_VALUE);
  });
});
