/**
 * NBD URIs (the NBD project's doc/uri.md, as qemu and libnbd read them):
 * `nbd://HOST[:PORT]/EXPORT` over TCP and `nbd+unix:///EXPORT?socket=PATH` over a Unix socket;
 * `nbds://` and `nbds+unix://` are the same over TLS (the "s": NBD_OPT_STARTTLS, required).
 */
import { NBD_DEFAULT_PORT, NBD_MAX_STRING } from './nbd-protocol.js';
import { NbdError, NbdFault } from './nbd-error.js';

/** Where an NBD export is: the parsed form of an NBD URI (see {@link parseNbdUri}). */
export type NbdAddress =
  | {
      /** `nbd+unix://`: a Unix domain socket. */
      readonly kind: 'unix';
      /** The Unix socket's path (the URI's `socket=` query parameter). */
      readonly path: string;
      /** The export name sent in NBD_OPT_GO / NBD_OPT_EXPORT_NAME ('' selects the server's default export). */
      readonly exportName: string;
      /** `nbds+unix://`: TLS required (NBD_OPT_STARTTLS). */
      readonly tls?: boolean;
    }
  | {
      /** `nbd://`: TCP. */
      readonly kind: 'tcp';
      /** Host name or IP address; an IPv6 literal without its brackets. */
      readonly host: string;
      /** TCP port, 1..65535 (10809, the NBD port, when the URI names none). */
      readonly port: number;
      /** The export name sent in NBD_OPT_GO / NBD_OPT_EXPORT_NAME ('' selects the server's default export). */
      readonly exportName: string;
      /** `nbds://`: TLS required (NBD_OPT_STARTTLS). */
      readonly tls?: boolean;
    };

function bad(uri: string, why: string): NbdError {
  return new NbdError(NbdFault.BAD_URI, `bad URI ${JSON.stringify(uri)}: ${why}`);
}

/**
 * Parses an NBD URI: `nbd://HOST[:PORT]/EXPORT` (TCP, port 10809 by default) or
 * `nbd+unix:///EXPORT?socket=PATH`, and their TLS forms `nbds://` and `nbds+unix://` (`tls`
 * set). The export name is the path without its leading slash, percent-decoded, at most 4096
 * bytes (NBD_MAX_STRING).
 *
 * @throws NbdError with fault BAD_URI for anything else (`nbd+vsock` and `nbds+vsock` included).
 */
export function parseNbdUri(uri: string): NbdAddress {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw bad(uri, 'not a URI (nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)');
  }
  const given = u.protocol.slice(0, -1);
  // nbds / nbds+unix: the same address, TLS required.
  const tls = given === 'nbds' || given === 'nbds+unix';
  const scheme = tls ? `nbd${given.slice(4)}` : given;
  // The export is the path without its leading slash, percent-decoded.
  let exportName: string;
  try {
    exportName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  } catch {
    throw bad(uri, 'the export name is not valid percent-encoding');
  }
  if (Buffer.byteLength(exportName) > NBD_MAX_STRING) throw bad(uri, `the export name is longer than ${NBD_MAX_STRING} bytes`);
  if (scheme === 'nbd+unix') {
    if (u.host !== '') throw bad(uri, `${given} takes no host (${given}:///EXPORT?socket=PATH)`);
    const path = u.searchParams.get('socket');
    if (path === null || path === '') throw bad(uri, `${given} needs ?socket=PATH`);
    return tls ? { kind: 'unix', path, exportName, tls } : { kind: 'unix', path, exportName };
  }
  if (scheme === 'nbd') {
    if (u.hostname === '') throw bad(uri, `${given}:// needs a host`);
    if (u.search !== '') throw bad(uri, `unexpected query ${u.search} (socket= is for nbd+unix)`);
    const port = u.port === '' ? NBD_DEFAULT_PORT : Number(u.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(uri, `bad port ${u.port}`);
    // URL keeps IPv6 literals in brackets; node:net wants them bare.
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    return tls ? { kind: 'tcp', host, port, exportName, tls } : { kind: 'tcp', host, port, exportName };
  }
  throw bad(uri, `unsupported scheme ${given}: (nbd, nbd+unix, nbds or nbds+unix)`);
}

/**
 * The URI of an address, for logs and device descriptions: the inverse of {@link parseNbdUri}
 * (the port is always written; the export name is percent-encoded).
 */
export function formatNbdAddress(a: NbdAddress): string {
  const s = a.tls === true ? 's' : '';
  return a.kind === 'unix'
    ? `nbd${s}+unix:///${encodeURIComponent(a.exportName)}?socket=${a.path}`
    : `nbd${s}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/${encodeURIComponent(a.exportName)}`;
}
