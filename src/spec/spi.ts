/**
 * 5.21 SPI Controller Device: the request queue, the configuration layout, the transfer head
 * and result, mode bits, n-bit transfer values and the capability bits of the configuration.
 * Constants only. No feature bits (5.21.3).
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.21.2 the single request queue. */
export const SPI_REQUESTQ = 0;
/** 5.21.3: no device-specific feature bits. */
export const SPI_FEATURES = 0n;

/** 5.21.4 struct virtio_spi_config (32 bytes). */
export const SpiConfig = {
  SIZE: 32,
  CS_MAX_NUMBER: 0,
  CS_CHANGE_SUPPORTED: 1,
  TX_NBITS_SUPPORTED: 2,
  RX_NBITS_SUPPORTED: 3,
  BITS_PER_WORD_MASK: 4,
  MODE_FUNC_SUPPORTED: 8,
  MAX_FREQ_HZ: 12,
  MAX_WORD_DELAY_NS: 16,
  MAX_CS_SETUP_NS: 20,
  MAX_CS_HOLD_NS: 24,
  MAX_CS_INACTIVE_NS: 28,
} as const;
/** Every field is mandatory and driver-read-only (5.21.4). */
export const SPI_CONFIG_LAYOUT = defineConfigLayout(SpiConfig.SIZE, [
  { name: 'csMaxNumber', offset: SpiConfig.CS_MAX_NUMBER, width: 1, feature: null, access: 'ro' },
  { name: 'csChangeSupported', offset: SpiConfig.CS_CHANGE_SUPPORTED, width: 1, feature: null, access: 'ro' },
  { name: 'txNbitsSupported', offset: SpiConfig.TX_NBITS_SUPPORTED, width: 1, feature: null, access: 'ro' },
  { name: 'rxNbitsSupported', offset: SpiConfig.RX_NBITS_SUPPORTED, width: 1, feature: null, access: 'ro' },
  { name: 'bitsPerWordMask', offset: SpiConfig.BITS_PER_WORD_MASK, width: 4, feature: null, access: 'ro' },
  { name: 'modeFuncSupported', offset: SpiConfig.MODE_FUNC_SUPPORTED, width: 4, feature: null, access: 'ro' },
  { name: 'maxFreqHz', offset: SpiConfig.MAX_FREQ_HZ, width: 4, feature: null, access: 'ro' },
  { name: 'maxWordDelayNs', offset: SpiConfig.MAX_WORD_DELAY_NS, width: 4, feature: null, access: 'ro' },
  { name: 'maxCsSetupNs', offset: SpiConfig.MAX_CS_SETUP_NS, width: 4, feature: null, access: 'ro' },
  { name: 'maxCsHoldNs', offset: SpiConfig.MAX_CS_HOLD_NS, width: 4, feature: null, access: 'ro' },
  { name: 'maxCsInactiveNs', offset: SpiConfig.MAX_CS_INACTIVE_NS, width: 4, feature: null, access: 'ro' },
] as const);
/** The field names of SPI_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type SpiConfigField = (typeof SPI_CONFIG_LAYOUT.fields)[number]['name'];

/** tx_nbits_supported / rx_nbits_supported bits (SINGLE is always supported). */
export const SpiNbitsSupported = { DUAL: 1 << 0, QUAD: 1 << 1, OCTAL: 1 << 2 } as const;
/** Every defined bit of tx_nbits_supported / rx_nbits_supported. */
export const SPI_NBITS_SUPPORTED_DEFINED = 0x7;

/** mode_func_supported bits. */
export const SpiModeFunc = {
  CPHA_0: 1 << 0,
  CPHA_1: 1 << 1,
  CPOL_0: 1 << 2,
  CPOL_1: 1 << 3,
  CS_HIGH: 1 << 4,
  LSB_FIRST: 1 << 5,
  LOOPBACK: 1 << 6,
} as const;
/** Every defined bit of mode_func_supported. */
export const SPI_MODE_FUNC_DEFINED = 0x7f;

/** struct virtio_spi_transfer_head (32 bytes). */
export const SpiTransferHead = {
  SIZE: 32,
  CHIP_SELECT_ID: 0,
  BITS_PER_WORD: 1,
  CS_CHANGE: 2,
  TX_NBITS: 3,
  RX_NBITS: 4,
  RESERVED: 5,
  MODE: 8,
  FREQ: 12,
  WORD_DELAY_NS: 16,
  CS_SETUP_NS: 20,
  CS_DELAY_HOLD_NS: 24,
  CS_CHANGE_DELAY_INACTIVE_NS: 28,
} as const;
/** struct virtio_spi_transfer_result. */
export const SPI_RESULT_SIZE = 1;

/** Transfer head `mode` bits. */
export const SpiMode = {
  CPHA: 1 << 0,
  CPOL: 1 << 1,
  CS_HIGH: 1 << 2,
  LSB_FIRST: 1 << 3,
  LOOP: 1 << 4,
} as const;
/** Every defined bit of a transfer's mode. */
export const SPI_MODE_DEFINED = 0x1f;

/** tx_nbits / rx_nbits values: 0 and 1 single, 2 dual, 4 quad, 8 octal; others invalid. */
export const SpiNbits = { SINGLE: 1, DUAL: 2, QUAD: 4, OCTAL: 8 } as const;

/** Transfer results. */
export const SpiResult = { TRANS_OK: 0, PARAM_ERR: 1, TRANS_ERR: 2 } as const;
