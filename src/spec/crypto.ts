/**
 * 5.9 Crypto Device: feature bits, virtqueue numbering, configuration layout, services,
 * algorithms, opcodes, status codes and the byte layouts of the control and data requests.
 * Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.9.3 Feature bits (bit numbers). */
export const CryptoFeatureBit = {
  REVISION_1: 0,
  CIPHER_STATELESS_MODE: 1,
  HASH_STATELESS_MODE: 2,
  MAC_STATELESS_MODE: 3,
  AEAD_STATELESS_MODE: 4,
  AKCIPHER_STATELESS_MODE: 5,
} as const;

/** 5.9.3 Feature bits as masks. */
export const CryptoF = {
  REVISION_1: bit(CryptoFeatureBit.REVISION_1),
  CIPHER_STATELESS_MODE: bit(CryptoFeatureBit.CIPHER_STATELESS_MODE),
  HASH_STATELESS_MODE: bit(CryptoFeatureBit.HASH_STATELESS_MODE),
  MAC_STATELESS_MODE: bit(CryptoFeatureBit.MAC_STATELESS_MODE),
  AEAD_STATELESS_MODE: bit(CryptoFeatureBit.AEAD_STATELESS_MODE),
  AKCIPHER_STATELESS_MODE: bit(CryptoFeatureBit.AKCIPHER_STATELESS_MODE),
} as const;

/** 5.9.4 Supported crypto services (bit numbers of crypto_services; the service of an opcode). */
export const CryptoService = {
  CIPHER: 0,
  HASH: 1,
  MAC: 2,
  AEAD: 3,
  AKCIPHER: 4,
  IPSEC: 5,
} as const;

/** 5.9.4.1 CIPHER algorithms (values, and bit numbers of cipher_algo_l/h). */
export const CipherAlgo = {
  NO_CIPHER: 0,
  ARC4: 1,
  AES_ECB: 2,
  AES_CBC: 3,
  AES_CTR: 4,
  DES_ECB: 5,
  DES_CBC: 6,
  DES3_ECB: 7,
  DES3_CBC: 8,
  DES3_CTR: 9,
  KASUMI_F8: 10,
  SNOW3G_UEA2: 11,
  AES_F8: 12,
  AES_XTS: 13,
  ZUC_EEA3: 14,
} as const;

/** 5.9.4.2 HASH algorithms. */
export const HashAlgo = {
  NO_HASH: 0,
  MD5: 1,
  SHA1: 2,
  SHA_224: 3,
  SHA_256: 4,
  SHA_384: 5,
  SHA_512: 6,
  SHA3_224: 7,
  SHA3_256: 8,
  SHA3_384: 9,
  SHA3_512: 10,
  SHA3_SHAKE128: 11,
  SHA3_SHAKE256: 12,
} as const;

/** 5.9.4.3 MAC algorithms. */
export const MacAlgo = {
  NO_MAC: 0,
  HMAC_MD5: 1,
  HMAC_SHA1: 2,
  HMAC_SHA_224: 3,
  HMAC_SHA_256: 4,
  HMAC_SHA_384: 5,
  HMAC_SHA_512: 6,
  CMAC_3DES: 25,
  CMAC_AES: 26,
  KASUMI_F9: 27,
  SNOW3G_UIA2: 28,
  GMAC_AES: 41,
  GMAC_TWOFISH: 42,
  CBCMAC_AES: 49,
  CBCMAC_KASUMI_F9: 50,
  XCBC_AES: 53,
  ZUC_EIA3: 54,
} as const;

/** 5.9.4.4 AEAD algorithms. */
export const AeadAlgo = {
  NO_AEAD: 0,
  GCM: 1,
  CCM: 2,
  CHACHA20_POLY1305: 3,
} as const;

/** 5.9.4.5 AKCIPHER algorithms. */
export const AkcipherAlgo = {
  NO_AKCIPHER: 0,
  RSA: 1,
  ECDSA: 2,
} as const;

/** Every algorithm the spec defines, per service: the device sets no other bit (device/crypto/6). */
export const DEFINED_CIPHER_ALGOS: readonly number[] = Object.values(CipherAlgo).filter((v) => v !== 0);
/** Every hash algorithm the spec defines (HashAlgo without NO_HASH). */
export const DEFINED_HASH_ALGOS: readonly number[] = Object.values(HashAlgo).filter((v) => v !== 0);
/** Every MAC algorithm the spec defines (MacAlgo without NO_MAC). */
export const DEFINED_MAC_ALGOS: readonly number[] = Object.values(MacAlgo).filter((v) => v !== 0);
/** Every AEAD algorithm the spec defines (AeadAlgo without NO_AEAD). */
export const DEFINED_AEAD_ALGOS: readonly number[] = Object.values(AeadAlgo).filter((v) => v !== 0);
/** Every asymmetric cipher algorithm the spec defines (AkcipherAlgo without NO_AKCIPHER). */
export const DEFINED_AKCIPHER_ALGOS: readonly number[] = Object.values(AkcipherAlgo).filter((v) => v !== 0);

/** 5.9.5 status field: the only defined bit. */
export const CRYPTO_S_HW_READY = 1;

/** 5.9.5 struct virtio_crypto_config (56 bytes; akcipher_algo took the old `reserve` slot). */
export const CryptoConfig = {
  SIZE: 56,
  STATUS: 0,
  MAX_DATAQUEUES: 4,
  CRYPTO_SERVICES: 8,
  CIPHER_ALGO_L: 12,
  CIPHER_ALGO_H: 16,
  HASH_ALGO: 20,
  MAC_ALGO_L: 24,
  MAC_ALGO_H: 28,
  AEAD_ALGO: 32,
  MAX_CIPHER_KEY_LEN: 36,
  MAX_AUTH_KEY_LEN: 40,
  AKCIPHER_ALGO: 44,
  MAX_SIZE: 48,
} as const;

/** 5.9.5: every field always exists and is read-only for the driver. */
export const CRYPTO_CONFIG_LAYOUT = defineConfigLayout(CryptoConfig.SIZE, [
  { name: 'status', offset: CryptoConfig.STATUS, width: 4, feature: null, access: 'ro' },
  { name: 'maxDataqueues', offset: CryptoConfig.MAX_DATAQUEUES, width: 4, feature: null, access: 'ro' },
  { name: 'cryptoServices', offset: CryptoConfig.CRYPTO_SERVICES, width: 4, feature: null, access: 'ro' },
  { name: 'cipherAlgoL', offset: CryptoConfig.CIPHER_ALGO_L, width: 4, feature: null, access: 'ro' },
  { name: 'cipherAlgoH', offset: CryptoConfig.CIPHER_ALGO_H, width: 4, feature: null, access: 'ro' },
  { name: 'hashAlgo', offset: CryptoConfig.HASH_ALGO, width: 4, feature: null, access: 'ro' },
  { name: 'macAlgoL', offset: CryptoConfig.MAC_ALGO_L, width: 4, feature: null, access: 'ro' },
  { name: 'macAlgoH', offset: CryptoConfig.MAC_ALGO_H, width: 4, feature: null, access: 'ro' },
  { name: 'aeadAlgo', offset: CryptoConfig.AEAD_ALGO, width: 4, feature: null, access: 'ro' },
  { name: 'maxCipherKeyLen', offset: CryptoConfig.MAX_CIPHER_KEY_LEN, width: 4, feature: null, access: 'ro' },
  { name: 'maxAuthKeyLen', offset: CryptoConfig.MAX_AUTH_KEY_LEN, width: 4, feature: null, access: 'ro' },
  { name: 'akcipherAlgo', offset: CryptoConfig.AKCIPHER_ALGO, width: 4, feature: null, access: 'ro' },
  { name: 'maxSize', offset: CryptoConfig.MAX_SIZE, width: 8, feature: null, access: 'ro' },
] as const);
/** The field names of CRYPTO_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type CryptoConfigField = (typeof CRYPTO_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.9.7.1 Operation status. */
export const CryptoStatus = {
  OK: 0,
  ERR: 1,
  BADMSG: 2,
  NOTSUPP: 3,
  INVSESS: 4,
  NOSPC: 5,
  KEY_REJECTED: 6,
  IPSEC_SA_SOFT_EXPIRY: 7,
} as const;

/** VIRTIO_CRYPTO_OPCODE(service, op). */
export function cryptoOpcode(service: number, op: number): number {
  return ((service << 8) | op) >>> 0;
}

/** 5.9.7.2 controlq opcodes. */
export const CryptoCtrlOp = {
  CIPHER_CREATE_SESSION: cryptoOpcode(CryptoService.CIPHER, 0x02),
  CIPHER_DESTROY_SESSION: cryptoOpcode(CryptoService.CIPHER, 0x03),
  HASH_CREATE_SESSION: cryptoOpcode(CryptoService.HASH, 0x02),
  HASH_DESTROY_SESSION: cryptoOpcode(CryptoService.HASH, 0x03),
  MAC_CREATE_SESSION: cryptoOpcode(CryptoService.MAC, 0x02),
  MAC_DESTROY_SESSION: cryptoOpcode(CryptoService.MAC, 0x03),
  AEAD_CREATE_SESSION: cryptoOpcode(CryptoService.AEAD, 0x02),
  AEAD_DESTROY_SESSION: cryptoOpcode(CryptoService.AEAD, 0x03),
  AKCIPHER_CREATE_SESSION: cryptoOpcode(CryptoService.AKCIPHER, 0x04),
  AKCIPHER_DESTROY_SESSION: cryptoOpcode(CryptoService.AKCIPHER, 0x05),
} as const;

/** 5.9.7.3 dataq opcodes. */
export const CryptoDataOp = {
  CIPHER_ENCRYPT: cryptoOpcode(CryptoService.CIPHER, 0x00),
  CIPHER_DECRYPT: cryptoOpcode(CryptoService.CIPHER, 0x01),
  HASH: cryptoOpcode(CryptoService.HASH, 0x00),
  MAC: cryptoOpcode(CryptoService.MAC, 0x00),
  AEAD_ENCRYPT: cryptoOpcode(CryptoService.AEAD, 0x00),
  AEAD_DECRYPT: cryptoOpcode(CryptoService.AEAD, 0x01),
  AKCIPHER_ENCRYPT: cryptoOpcode(CryptoService.AKCIPHER, 0x00),
  AKCIPHER_DECRYPT: cryptoOpcode(CryptoService.AKCIPHER, 0x01),
  AKCIPHER_SIGN: cryptoOpcode(CryptoService.AKCIPHER, 0x02),
  AKCIPHER_VERIFY: cryptoOpcode(CryptoService.AKCIPHER, 0x03),
  IPSEC_OUTBOUND: cryptoOpcode(CryptoService.IPSEC, 0x00),
  IPSEC_INBOUND: cryptoOpcode(CryptoService.IPSEC, 0x01),
} as const;

/** 5.9.7.2.1 cipher op (encryption or decryption). */
export const CryptoOpDirection = {
  ENCRYPT: 1,
  DECRYPT: 2,
} as const;

/** 5.9.7.2.1 symmetric session op_type. */
export const SymOpType = {
  NONE: 0,
  CIPHER: 1,
  ALGORITHM_CHAINING: 2,
} as const;

/** 5.9.7.2.1 alg_chain_order. */
export const AlgChainOrder = {
  HASH_THEN_CIPHER: 1,
  CIPHER_THEN_HASH: 2,
} as const;

/** 5.9.7.2.1 hash_mode of a chain. */
export const SymHashMode = {
  PLAIN: 1,
  AUTH: 2,
  NESTED: 3,
} as const;

/** 5.9.7.2.1 RSA padding and hash. */
export const RsaPadding = {
  RAW: 0,
  PKCS1: 1,
} as const;
/** 5.9.7.2.1.5 VIRTIO_CRYPTO_RSA_* hash algorithms of RSA session parameters. */
export const RsaHash = {
  NO_HASH: 0,
  MD2: 1,
  MD3: 2,
  MD4: 3,
  MD5: 4,
  SHA1: 5,
  SHA256: 6,
  SHA384: 7,
  SHA512: 8,
  SHA224: 9,
} as const;
/**
 * 5.9.7.2.1.5 VIRTIO_CRYPTO_AKCIPHER_KEY_TYPE_*: whether an asymmetric session's key is public or
 * private.
 */
export const AkcipherKeyType = {
  PUBLIC: 1,
  PRIVATE: 2,
} as const;

/** 5.9.7.3 VIRTIO_CRYPTO_FLAG_SESSION_MODE of the data header's flag. */
export const CRYPTO_FLAG_SESSION_MODE = 1;

/** 5.9.7.2 struct virtio_crypto_ctrl_header (16 bytes). */
export const CryptoCtrlHeader = {
  SIZE: 16,
  OPCODE: 0,
  ALGO: 4,
  FLAG: 8,
  RESERVED: 12,
} as const;

/** 5.9.7.2 VIRTIO_CRYPTO_CTRLQ_OP_SPEC_HDR_LEGACY: op_flf is padded to this without REVISION_1. */
export const CTRLQ_OP_SPEC_HDR_LEGACY = 56;

/** 5.9.7.2.1 op_flf sizes with REVISION_1 (each padded to 56 without it). */
export const CtrlFlfSize = {
  /** struct virtio_crypto_sym_create_session_flf: op_flf[48], op_type, padding. */
  SYM: 56,
  HASH: 8,
  MAC: 16,
  AEAD: 24,
  /** struct virtio_crypto_akcipher_create_session_flf: algo, key_type, key_len, algo_flf[44]. */
  AKCIPHER: 56,
  DESTROY: 8,
} as const;

/** struct virtio_crypto_sym_create_session_flf: op_type after the 48-byte union. */
export const SYM_SESS_OP_TYPE = 48;
/** struct virtio_crypto_alg_chain_session_flf offsets inside op_flf[48]. */
export const AlgChainSessionFlf = {
  ALG_CHAIN_ORDER: 0,
  HASH_MODE: 4,
  CIPHER_HDR: 8,
  ALGO_FLF: 24,
  AAD_LEN: 40,
} as const;

/** struct virtio_crypto_create_session_input (device-writable, 16 bytes). */
export const CreateSessionInput = {
  SIZE: 16,
  SESSION_ID: 0,
  STATUS: 8,
} as const;

/** struct virtio_crypto_destroy_session_input: u8 status. */
export const DESTROY_SESSION_INPUT_SIZE = 1;

/** 5.9.7.3 struct virtio_crypto_op_header (24 bytes). */
export const CryptoOpHeader = {
  SIZE: 24,
  OPCODE: 0,
  ALGO: 4,
  SESSION_ID: 8,
  FLAG: 16,
  PADDING: 20,
} as const;

/** 5.9.7.3 VIRTIO_CRYPTO_DATAQ_OP_SPEC_HDR_LEGACY: op_flf is padded to this without REVISION_1. */
export const DATAQ_OP_SPEC_HDR_LEGACY = 48;

/** 5.9.7.3 session-mode data op_flf sizes with REVISION_1. */
export const DataFlfSize = {
  /** struct virtio_crypto_sym_data_flf: op_type_flf[40], op_type, padding. */
  SYM: 48,
  HASH: 8,
  MAC: 8,
  AEAD: 24,
  AKCIPHER: 8,
} as const;

/** struct virtio_crypto_sym_data_flf: op_type after the 40-byte union. */
export const SYM_DATA_OP_TYPE = 40;

/** struct virtio_crypto_alg_chain_data_flf field offsets. */
export const AlgChainDataFlf = {
  IV_LEN: 0,
  SRC_DATA_LEN: 4,
  DST_DATA_LEN: 8,
  CIPHER_START_SRC_OFFSET: 12,
  LEN_TO_CIPHER: 16,
  HASH_START_SRC_OFFSET: 20,
  LEN_TO_HASH: 24,
  AAD_LEN: 28,
  HASH_RESULT_LEN: 32,
} as const;

/** Stateless op_flf sizes (REVISION_1 and the service's STATELESS_MODE negotiated). */
export const StatelessFlfSize = {
  /** struct virtio_crypto_sym_data_flf_stateless: op_type_flf[72], op_type. */
  SYM: 76,
  HASH: 16,
  MAC: 16,
  AEAD: 32,
  /** sess_para (algo, key_type, key_len, 8 bytes of RSA/ECDSA parameters), src_data_len, dst_data_len. */
  AKCIPHER: 28,
} as const;

/** struct virtio_crypto_sym_data_flf_stateless: op_type after op_type_flf[72]. */
export const SYM_STATELESS_OP_TYPE = 72;

/** struct virtio_crypto_inhdr: u8 status, the last device-writable byte of a data request. */
export const CRYPTO_INHDR_SIZE = 1;
