import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NbdError, NbdFault } from './nbd-error.js';
import { formatNbdAddress, parseNbdUri } from './nbd-uri.js';

describe('NBD URIs', () => {
  it('nbd+unix:///EXPORT?socket=PATH and nbd://HOST[:PORT]/EXPORT', () => {
    assert.deepEqual(parseNbdUri('nbd+unix:///disk?socket=/run/nbd.sock'), { kind: 'unix', path: '/run/nbd.sock', exportName: 'disk' });
    assert.deepEqual(parseNbdUri('nbd+unix:///?socket=/s'), { kind: 'unix', path: '/s', exportName: '' });
    assert.deepEqual(parseNbdUri('nbd://127.0.0.1:10810/a%20b'), { kind: 'tcp', host: '127.0.0.1', port: 10810, exportName: 'a b' });
    assert.deepEqual(parseNbdUri('nbd://localhost'), { kind: 'tcp', host: 'localhost', port: 10809, exportName: '' });
    assert.deepEqual(parseNbdUri('nbd://[::1]:99/x'), { kind: 'tcp', host: '::1', port: 99, exportName: 'x' });
    assert.equal(formatNbdAddress(parseNbdUri('nbd://[::1]:99/x')), 'nbd://[::1]:99/x');
  });

  it('nbds://HOST[:PORT]/EXPORT and nbds+unix:///EXPORT?socket=PATH: the same addresses with TLS required', () => {
    assert.deepEqual(parseNbdUri('nbds+unix:///disk?socket=/run/nbd.sock'), { kind: 'unix', path: '/run/nbd.sock', exportName: 'disk', tls: true });
    assert.deepEqual(parseNbdUri('nbds://storage:10810/x'), { kind: 'tcp', host: 'storage', port: 10810, exportName: 'x', tls: true });
    assert.equal(formatNbdAddress(parseNbdUri('nbds://[::1]/x')), 'nbds://[::1]:10809/x');
    assert.equal(formatNbdAddress(parseNbdUri('nbds+unix:///?socket=/s')), 'nbds+unix:///?socket=/s');
  });

  for (const [uri, why] of [
    ['not a uri', /not a URI/],
    ['http://host/x', /unsupported scheme/],
    ['nbds+vsock://1/x', /unsupported scheme nbds\+vsock/],
    ['nbds+unix:///x', /nbds\+unix needs \?socket=PATH/],
    ['nbds:///x', /nbds:\/\/ needs a host/],
    ['nbd+unix:///x', /socket=PATH/],
    ['nbd+unix://host/x?socket=/s', /no host/],
    ['nbd:///x', /needs a host/],
    ['nbd://h/x?socket=/s', /unexpected query/],
    ['nbd://h:0/x', /bad port/],
    ['nbd://h/%zz', /percent-encoding/],
    [`nbd://h/${'a'.repeat(4097)}`, /longer than 4096/],
  ] as const) {
    it(`refuses ${uri.slice(0, 40)} (BAD_URI, INVALID_ARGUMENT)`, () => {
      assert.throws(
        () => parseNbdUri(uri),
        (e: unknown) => e instanceof NbdError && e.fault === NbdFault.BAD_URI && e.code === 'INVALID_ARGUMENT' && why.test(e.message),
      );
    });
  }
});
