/**
 * Throw-away TLS credentials for the NBD-over-TLS tests, made with `openssl` at run time into a
 * directory of the test's: a CA, a server certificate for `localhost` and 127.0.0.1 signed by it
 * (with its key, under the names nbdkit's `--tls-certificates` and QEMU's `tls-creds-x509 dir=`
 * read: ca-cert.pem, server-cert.pem, server-key.pem), a client certificate and key, a second CA
 * that signed nothing (the wrong CA), and psktool-format PSK files (right and wrong key).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Paths of the generated credentials. */
export interface NbdTlsCredentials {
  /** Server directory: ca-cert.pem, server-cert.pem, server-key.pem. */
  readonly serverDir: string;
  readonly caCert: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA that signed nothing here. */
  readonly wrongCaCert: string;
  /** Directory with keys.psk (QEMU's tls-creds-psk dir=) whose file is also nbdkit's --tls-psk. */
  readonly pskDir: string;
  readonly pskFile: string;
  /** The PSK identity in pskFile. */
  readonly pskIdentity: string;
  /** Same identity, another key. */
  readonly wrongPskFile: string;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

function ecKey(out: string, cwd: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out], cwd);
}

function selfSignedCa(name: string, cwd: string): void {
  ecKey(`${name}-key.pem`, cwd);
  openssl(['req', '-x509', '-new', '-key', `${name}-key.pem`, '-out', `${name}-cert.pem`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], cwd);
}

function signed(name: string, subject: string, section: string, cwd: string): void {
  ecKey(`${name}-key.pem`, cwd);
  openssl(['req', '-new', '-key', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject], cwd);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial',
    '-out', `${name}-cert.pem`, '-days', '2', '-extfile', 'ext.cnf', '-extensions', section], cwd);
}

/** Generates every credential into `dir` (created) with openssl. */
export function makeNbdTlsCredentials(dir: string): NbdTlsCredentials {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'ext.cnf'),
    '[server]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' +
      '[client]\nextendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n',
  );
  selfSignedCa('ca', dir);
  selfSignedCa('wrong-ca', dir);
  signed('server', '/CN=localhost', 'server', dir);
  signed('client', '/CN=virtio-ts-client', 'client', dir);
  const pskDir = join(dir, 'psk');
  mkdirSync(pskDir);
  const pskIdentity = 'virtio-ts';
  writeFileSync(join(pskDir, 'keys.psk'), `${pskIdentity}:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'wrong.psk'), `${pskIdentity}:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return {
    serverDir: dir,
    caCert: join(dir, 'ca-cert.pem'),
    clientCert: join(dir, 'client-cert.pem'),
    clientKey: join(dir, 'client-key.pem'),
    wrongCaCert: join(dir, 'wrong-ca-cert.pem'),
    pskDir,
    pskFile: join(pskDir, 'keys.psk'),
    pskIdentity,
    wrongPskFile: join(dir, 'wrong.psk'),
  };
}
