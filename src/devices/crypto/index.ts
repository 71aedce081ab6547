export { CryptoDevice, CRYPTO_MAX_AUTH_KEY_LEN, CRYPTO_MAX_CIPHER_KEY_LEN, type CryptoDeviceOptions } from './crypto-device.js';
export { SERVED_ALGORITHMS, cryptoMasks, type CryptoAlgorithmSet, type CryptoMasks } from './crypto-algorithms.js';
export { CryptoSessionTable, type CryptoSession } from './crypto-sessions.js';
export { CryptoDriver, CRYPTO_DRIVER_FEATURES } from './crypto-driver.js';
export {
  CryptoStatusError,
  type AeadSessionParams,
  type ChainRegions,
  type ChainSessionParams,
  type CipherSessionParams,
  type CryptoDriverAlgorithms,
  type CryptoDriverConfig,
  type CryptoTarget,
  type RsaSessionParams,
} from './crypto-driver-types.js';
export { VhostUserCryptoSessionLayout, cryptoVhostUserHooks, sessionFromVhostUser } from './crypto-vhost-user.js';
export { CRYPTO_TYPE, type CryptoDeviceArgs } from './crypto-type.js';
export { CRYPTO_CLI, type CryptoOptions } from './cli.js';
export type { AeadSession, ChainSession, CipherSession, HashSession, MacSession, RsaSession, SessionLimits } from './crypto-sessions.js';
export type { CryptoVhostUserHost } from './crypto-vhost-user.js';
export type { CipherParams } from './crypto-sessions.js';
