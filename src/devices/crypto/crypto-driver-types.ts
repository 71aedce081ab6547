/**
 * The types of the virtio-crypto driver's API (5.9): the configuration it reads, the session
 * parameters a caller passes, and the error a non-OK status becomes.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** 5.9.5 configuration as numbers. */
export interface CryptoDriverConfig {
  /** `status` of struct virtio_crypto_config. */
  status: number;
  /** `max_dataqueues` of struct virtio_crypto_config. */
  maxDataqueues: number;
  /** `crypto_services` of struct virtio_crypto_config. */
  cryptoServices: number;
  /** `cipher_algo_l` of struct virtio_crypto_config. */
  cipherAlgoL: number;
  /** `cipher_algo_h` of struct virtio_crypto_config. */
  cipherAlgoH: number;
  /** `hash_algo` of struct virtio_crypto_config. */
  hashAlgo: number;
  /** `mac_algo_l` of struct virtio_crypto_config. */
  macAlgoL: number;
  /** `mac_algo_h` of struct virtio_crypto_config. */
  macAlgoH: number;
  /** `aead_algo` of struct virtio_crypto_config. */
  aeadAlgo: number;
  /** `max_cipher_key_len` of struct virtio_crypto_config. */
  maxCipherKeyLen: number;
  /** `max_auth_key_len` of struct virtio_crypto_config. */
  maxAuthKeyLen: number;
  /** `akcipher_algo` of struct virtio_crypto_config. */
  akcipherAlgo: number;
  /** `max_size` of struct virtio_crypto_config. */
  maxSize: number;
}

/** The algorithms of each advertised service (empty for a service not advertised). */
export interface CryptoDriverAlgorithms {
  /** VIRTIO_CRYPTO_CIPHER_* numbers set in cipher_algo_l/cipher_algo_h (5.9.5). */
  readonly cipher: readonly number[];
  /** VIRTIO_CRYPTO_HASH_* numbers set in hash_algo (5.9.5). */
  readonly hash: readonly number[];
  /** VIRTIO_CRYPTO_MAC_* numbers set in mac_algo_l/mac_algo_h (5.9.5). */
  readonly mac: readonly number[];
  /** VIRTIO_CRYPTO_AEAD_* numbers set in aead_algo (5.9.5). */
  readonly aead: readonly number[];
  /** VIRTIO_CRYPTO_AKCIPHER_* numbers set in akcipher_algo (5.9.5). */
  readonly akcipher: readonly number[];
}

/** A request the device answered with a status other than VIRTIO_CRYPTO_OK. */
export class CryptoStatusError extends VirtioError {
  constructor(
    /** The VIRTIO_CRYPTO_* status byte the device wrote (5.9.7.1), never VIRTIO_CRYPTO_OK. */
    readonly status: number,
    what: string,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-crypto ${what}: status ${status}`);
  }
}

/** Parameters of a cipher session (struct virtio_crypto_cipher_session_para, 5.9.7.2.1). */
export interface CipherSessionParams {
  /**
   * Algorithm number, advertised by the device: VIRTIO_CRYPTO_CIPHER_* (see
   * {@link CryptoDriverAlgorithms.cipher}), or VIRTIO_CRYPTO_AEAD_* in an {@link AeadSessionParams}.
   */
  readonly algo: number;
  /** The cipher key; at most max_cipher_key_len bytes. */
  readonly key: Uint8Array;
  /** true for VIRTIO_CRYPTO_OP_ENCRYPT (AEAD: encrypt and tag), false for VIRTIO_CRYPTO_OP_DECRYPT. */
  readonly encrypt: boolean;
}
/** Parameters of an AEAD session (struct virtio_crypto_aead_session_para, 5.9.7.2.1). */
export interface AeadSessionParams extends CipherSessionParams {
  /** Length of the authentication tag in bytes (tag_len). */
  readonly tagLen: number;
  /** Length of the additional authenticated data in bytes (aad_len); 0 when absent. */
  readonly aadLen?: number;
}
/** What createRsaSession sends (struct virtio_crypto_rsa_session_para and the key, 5.9.7.2.1.4). */
export interface RsaSessionParams {
  /** VIRTIO_CRYPTO_AKCIPHER_KEY_TYPE_PUBLIC or _PRIVATE. */
  readonly keyType: number;
  /** DER RSAPrivateKey or RSAPublicKey (PKCS#1). */
  readonly key: Uint8Array;
  /** VIRTIO_CRYPTO_RSA_RAW_PADDING or VIRTIO_CRYPTO_RSA_PKCS1_PADDING. */
  readonly padding: number;
  /** VIRTIO_CRYPTO_RSA_* hash for PKCS#1 sign/verify (NO_HASH, SHA1, SHA256...). */
  readonly hash: number;
}
/**
 * Parameters of an algorithm-chaining session (struct virtio_crypto_alg_chain_session_para,
 * 5.9.7.2.1): a cipher chained with a hash or a MAC.
 */
export interface ChainSessionParams {
  /** The cipher half of the chain. */
  readonly cipher: CipherSessionParams;
  /** alg_chain_order: VIRTIO_CRYPTO_SYM_ALG_CHAIN_ORDER_HASH_THEN_CIPHER (1) or _CIPHER_THEN_HASH (2). */
  readonly order: number;
  /** hash_mode: VIRTIO_CRYPTO_SYM_HASH_MODE_PLAIN (1), _AUTH (2, a MAC) or _NESTED (3). */
  readonly hashMode: number;
  /** VIRTIO_CRYPTO_HASH_* or VIRTIO_CRYPTO_MAC_* algorithm, per `hashMode`. */
  readonly hashAlgo: number;
  /** Length of the digest or MAC in bytes (hash_result_len). */
  readonly resultLen: number;
  /** The MAC key (at most max_auth_key_len bytes); absent for a plain hash. */
  readonly authKey?: Uint8Array;
  /** Length of the additional authenticated data in bytes; 0 when absent. */
  readonly aadLen?: number;
}

/** The regions of an algorithm-chaining request. */
export interface ChainRegions {
  /** Byte offset in the source where the cipher starts (cipher_start_src_offset). */
  readonly cipherStart: number;
  /** Bytes to cipher from `cipherStart` (len_to_cipher). */
  readonly cipherLen: number;
  /** Byte offset in the source where the hash starts (hash_start_src_offset). */
  readonly hashStart: number;
  /** Bytes to hash from `hashStart` (len_to_hash). */
  readonly hashLen: number;
  /** Length of the digest or MAC in bytes (hash_result_len). */
  readonly resultLen: number;
  /** Additional authenticated data, hashed before the source region; empty when absent. */
  readonly aad?: Uint8Array;
}

/** Where a data request's parameters come from: a session, or (stateless) the request itself. */
export type CryptoTarget =
  | {
      /** A session id the device returned from a create-session request. */
      readonly session: number;
    }
  | {
      /** Stateless mode (VIRTIO_CRYPTO_F_*_STATELESS_MODE): the parameters ride in the request. */
      readonly stateless: true;
    };
