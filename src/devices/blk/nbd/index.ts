export { NbdBackend, type NbdBackendOptions, type NbdDeviceHints } from './nbd-backend.js';
export { NbdClient, type NbdClientOptions } from './nbd-client.js';
export { NbdError, NbdFault } from './nbd-error.js';
export type { NbdExportInfo } from './nbd-handshake.js';
export { parseNbdUri, formatNbdAddress, type NbdAddress } from './nbd-uri.js';
export type { NbdConnection, NbdConnectionOwner } from './nbd-connection.js';
export type { NbdRequest } from './nbd-request.js';
export { loadNbdTlsFiles, parsePskFile, checkNbdTlsOptions, type NbdTlsOptions, type NbdTlsFiles, type NbdTlsPsk, type NbdTlsSessionCache } from './nbd-tls.js';
