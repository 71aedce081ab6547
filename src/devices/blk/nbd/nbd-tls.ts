/**
 * TLS for NBD (proto.md "TLS support"): after the server acknowledged NBD_OPT_STARTTLS the same
 * socket carries a TLS 1.2 or 1.3 session (`node:tls`) and the rest of the handshake and all
 * transmission go through it. Two ways to authenticate, as qemu-nbd and nbdkit offer them:
 *
 * - X.509: the server's certificate is checked against a CA (the file given, or node's default
 *   store); its name is checked against the TCP host, or `hostname` when given. Over a Unix
 *   socket there is no host to check, so only the chain is (as QEMU does without tls-hostname),
 *   unless `hostname` is given. A client certificate and key are sent when given (qemu-nbd's
 *   x509 credentials verify the peer by default).
 * - PSK: an identity and a key from a psktool-format file (`identity:hexkey` per line, the file
 *   nbdkit `--tls-psk` and qemu's `tls-creds-psk` read). The session must really be PSK: a
 *   server that shows a certificate instead is refused.
 *
 * Never a fallback to plaintext: a server that refuses STARTTLS is TLS_UNAVAILABLE, a failed
 * TLS handshake TLS_HANDSHAKE or TLS_CERTIFICATE.
 */
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { NbdError, NbdFault } from './nbd-error.js';

/** A pre-shared key: the identity sent to the server and the key bytes. */
export interface NbdTlsPsk {
  /** The PSK identity (psktool's "username"). */
  readonly identity: string;
  /** The key (psktool writes it as hex). */
  readonly key: Uint8Array;
}

/**
 * How to authenticate a TLS session (`nbds://`, `nbds+unix://`): X.509 (`ca`, `cert`, `key`,
 * `hostname`) or a pre-shared key (`psk`), not both. No field at all: X.509 against node's
 * default CA store.
 */
export interface NbdTlsOptions {
  /** Trusted CA certificates, PEM; node's default store when absent. */
  readonly ca?: string | Buffer;
  /** Client certificate, PEM (with `key`). */
  readonly cert?: string | Buffer;
  /** Client private key, PEM (with `cert`). */
  readonly key?: string | Buffer;
  /** The name the server's certificate must carry (and the SNI); the TCP host by default, none over a Unix socket. */
  readonly hostname?: string;
  /** Authenticate with a pre-shared key instead of certificates. */
  readonly psk?: NbdTlsPsk;
}

/** File names for {@link loadNbdTlsFiles}: what the CLI's `--nbd-tls-*` options give. */
export interface NbdTlsFiles {
  /** `--nbd-tls-ca`: PEM CA certificates. */
  readonly caFile?: string;
  /** `--nbd-tls-cert`: PEM client certificate. */
  readonly certFile?: string;
  /** `--nbd-tls-key`: PEM client key. */
  readonly keyFile?: string;
  /** `--nbd-tls-psk`: psktool-format key file. */
  readonly pskFile?: string;
  /** `--nbd-tls-username`: which identity of the PSK file (default: its first). */
  readonly pskIdentity?: string;
  /** `--nbd-tls-hostname`: the name the server's certificate must carry. */
  readonly hostname?: string;
}

/** A shared place for the last TLS session of a client, so reconnections can resume it. */
export interface NbdTlsSessionCache {
  /** The last session ticket the server issued, or undefined. */
  session: Buffer | undefined;
}

function config(message: string, cause?: unknown): NbdError {
  return new NbdError(NbdFault.TLS_CONFIG, message, cause === undefined ? undefined : { cause });
}

/**
 * Checks that X.509 and PSK settings are not mixed and that a certificate comes with its key.
 *
 * @throws NbdError TLS_CONFIG
 */
export function checkNbdTlsOptions(o: NbdTlsOptions): void {
  if (o.psk !== undefined && (o.ca !== undefined || o.cert !== undefined || o.key !== undefined)) throw config('a PSK excludes certificates (ca, cert, key)');
  if ((o.cert === undefined) !== (o.key === undefined)) throw config('a client certificate needs its key, and a key its certificate');
  if (o.psk !== undefined && (o.psk.key.length === 0 || o.psk.identity === '')) throw config('an empty PSK identity or key');
}

/**
 * Reads a psktool-format key file (`identity:hexkey` per line) and returns the entry for
 * `identity`, or the first one when no identity is given.
 *
 * @throws NbdError TLS_CONFIG for a malformed file or a missing identity
 */
export function parsePskFile(text: string, identity?: string): NbdTlsPsk {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const colon = line.lastIndexOf(':');
    const id = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (colon <= 0 || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) throw config('PSK file lines are identity:hexkey (psktool format)');
    if (identity === undefined || id === identity) return { identity: id, key: Buffer.from(hex, 'hex') };
  }
  throw config(identity === undefined ? 'the PSK file has no key' : `the PSK file has no key for ${JSON.stringify(identity)}`);
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw config(`cannot read the ${what} ${file}: ${(e as Error).message}`, e);
  }
}

/**
 * Reads the files the CLI names into {@link NbdTlsOptions} (checked with
 * {@link checkNbdTlsOptions}).
 *
 * @throws NbdError TLS_CONFIG for an unreadable or malformed file or a bad combination
 */
export function loadNbdTlsFiles(f: NbdTlsFiles): NbdTlsOptions {
  const psk = f.pskFile === undefined ? undefined : parsePskFile(readPem(f.pskFile, 'PSK file').toString('utf8'), f.pskIdentity);
  if (f.pskIdentity !== undefined && f.pskFile === undefined) throw config('a PSK username needs a PSK file');
  const o: NbdTlsOptions = {
    ...(f.caFile === undefined ? {} : { ca: readPem(f.caFile, 'CA file') }),
    ...(f.certFile === undefined ? {} : { cert: readPem(f.certFile, 'certificate file') }),
    ...(f.keyFile === undefined ? {} : { key: readPem(f.keyFile, 'key file') }),
    ...(f.hostname === undefined ? {} : { hostname: f.hostname }),
    ...(psk === undefined ? {} : { psk }),
  };
  checkNbdTlsOptions(o);
  return o;
}

/** OpenSSL verification codes and node's name check: the server's certificate was not accepted. */
const CERTIFICATE_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
]);

function handshakeError(e: unknown, where: string): NbdError {
  if (e instanceof NbdError) return e;
  const code = (e as { code?: unknown }).code;
  const text = `${(e as Error).message ?? String(e)}${typeof code === 'string' ? ` (${code})` : ''}`;
  if (typeof code === 'string' && CERTIFICATE_CODES.has(code)) return new NbdError(NbdFault.TLS_CERTIFICATE, `${where}: the server's certificate is not accepted: ${text}`, { cause: e });
  return new NbdError(NbdFault.TLS_HANDSHAKE, `${where}: TLS handshake failed: ${text}`, { cause: e });
}

/** What {@link startNbdTls} needs besides the socket. */
export interface StartTlsParams {
  /** How to authenticate (X.509 or PSK). */
  readonly tls: NbdTlsOptions;
  /** The TCP host (checked against the certificate by default), null over a Unix socket. */
  readonly host: string | null;
  /** For messages. */
  readonly where: string;
  /** Where the last session is kept and resumed from (one per client). */
  readonly cache?: NbdTlsSessionCache;
}

/**
 * Starts TLS on `raw` (the server just acknowledged NBD_OPT_STARTTLS) and returns the TLS socket
 * once the session is up. `onSocket` receives it at once, before the handshake, so its owner can
 * tear it down (a time-out) while it is pending.
 *
 * @throws NbdError TLS_CERTIFICATE (the server's certificate or name was not accepted),
 *   TLS_HANDSHAKE (anything else: a wrong PSK, no common version or cipher, a closed socket)
 */
export function startNbdTls(raw: Socket, p: StartTlsParams, onSocket: (t: TLSSocket) => void): Promise<TLSSocket> {
  const o = p.tls;
  const opts: ConnectionOptions = { socket: raw, minVersion: 'TLSv1.2' };
  if (p.cache?.session !== undefined) opts.session = p.cache.session;
  if (o.psk !== undefined) {
    const psk = o.psk;
    opts.pskCallback = () => ({ psk: Buffer.from(psk.key), identity: psk.identity });
    // TLS 1.2 needs a PSK suite named; TLS 1.3 carries the PSK in an extension.
    opts.ciphers = 'PSK';
    opts.checkServerIdentity = () => undefined;
  } else {
    if (o.ca !== undefined) opts.ca = o.ca;
    if (o.cert !== undefined) opts.cert = o.cert;
    if (o.key !== undefined) opts.key = o.key;
    const name = o.hostname ?? p.host;
    if (name === null) {
      // A Unix socket and no name asked for: the chain is verified, no name is.
      opts.checkServerIdentity = () => undefined;
    } else {
      opts.host = name;
      // RFC 6066: SNI carries DNS names, never addresses.
      if (isIP(name) === 0) opts.servername = name;
    }
  }
  return new Promise((resolve, reject) => {
    let t: TLSSocket;
    try {
      t = tlsConnect(opts);
    } catch (e) {
      reject(config(`${p.where}: bad TLS settings: ${(e as Error).message}`, e));
      return;
    }
    onSocket(t);
    const fail = (e: unknown): void => {
      t.removeListener('secureConnect', ok);
      t.destroy();
      reject(handshakeError(e, p.where));
    };
    const closed = (): void => fail(new Error('the connection closed during the TLS handshake'));
    const ok = (): void => {
      t.removeListener('error', fail);
      t.removeListener('close', closed);
      // A PSK session has no server certificate; one that shows a certificate did not use the key.
      if (o.psk !== undefined && Object.keys(t.getPeerCertificate()).length > 0) {
        fail(new Error('the server authenticated with a certificate, not the pre-shared key'));
        return;
      }
      resolve(t);
    };
    t.once('secureConnect', ok);
    t.once('error', fail);
    t.once('close', closed);
    if (p.cache !== undefined) {
      const cache = p.cache;
      t.on('session', (s: Buffer) => {
        cache.session = s;
      });
    }
  });
}
