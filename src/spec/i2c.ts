/**
 * 5.16 I2C Adapter Device: one request queue, one feature bit, no configuration space. Each
 * request is `virtio_i2c_out_hdr` (readable), an optional buffer (readable for a write request,
 * writable for a read request) and `virtio_i2c_in_hdr` (one writable status byte).
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.16.2: the single queue. */
export const I2C_REQUESTQ = 0;

/** 5.16.3 feature bits. */
export const I2cF = {
  /** Zero-length requests and the M_RD flag; mandatory for both sides (device/i2c/1, driver/i2c/1). */
  ZERO_LENGTH_REQUEST: 1n << 0n,
} as const;

/** Every device-specific bit virtio-ts knows. */
export const I2C_FEATURES = I2cF.ZERO_LENGTH_REQUEST;

/** 5.16.4: no configuration space. */
export const I2C_CONFIG_SIZE = 0;
/** The (empty) configuration layout of an I2C adapter. */
export const I2C_CONFIG_LAYOUT = defineConfigLayout(I2C_CONFIG_SIZE, []);

/** 5.16.6.1 `flags` of virtio_i2c_out_hdr. */
export const I2cFlags = {
  /** The request is grouped with the next one: if it fails, the next one fails too. */
  FAIL_NEXT: 1 << 0,
  /** A read request (the buffer is device-writable). */
  M_RD: 1 << 1,
} as const;

/** Bits of `flags` that are reserved as zero (driver/i2c/3). */
export const I2C_FLAGS_RESERVED = ~(I2cFlags.FAIL_NEXT | I2cFlags.M_RD) >>> 0;

/** 5.16.6.1 `status` of virtio_i2c_in_hdr. */
export const I2cStatus = {
  OK: 0,
  ERR: 1,
} as const;
export type I2cStatus = (typeof I2cStatus)[keyof typeof I2cStatus];

/** struct virtio_i2c_out_hdr: le16 addr, le16 padding, le32 flags. */
export const I2C_OUT_HDR_SIZE = 8;
/** Byte offsets of struct virtio_i2c_out_hdr's fields. */
export const I2C_OUT_HDR = { addr: 0, padding: 2, flags: 4 } as const;
/** struct virtio_i2c_in_hdr: u8 status. */
export const I2C_IN_HDR_SIZE = 1;

/** The largest 7-bit and 10-bit target addresses. */
export const I2C_MAX_7BIT_ADDRESS = 0x7f;
/** The largest 10-bit target address. */
export const I2C_MAX_10BIT_ADDRESS = 0x3ff;

/** An I2C target address as the bus sees it. */
export interface I2cAddress {
  /** The target address without the R/W bit: 0..0x7f, or 0..0x3ff when `tenBit`. */
  readonly address: number;
  /** True for a 10-bit address (5.16.6.1, sent under the 11110 prefix), false for 7-bit. */
  readonly tenBit: boolean;
}

/**
 * 5.16.6.1 the `addr` field of an address: 7-bit A6..A0 in bits 7..1; 10-bit A9..A8 in bits
 * 2..1 under the 11110 prefix in bits 7..3, A7..A0 in bits 15..8. Bit 0 is always 0.
 */
export function encodeI2cAddress(address: number, tenBit = false): number {
  if (tenBit) return ((address & 0xff) << 8) | 0xf0 | (((address >> 8) & 3) << 1);
  return (address & 0x7f) << 1;
}

/**
 * Decodes `addr` into the key `i2cAddressKey` gives (7-bit: the address; 10-bit: 0x400 | the
 * address), or -1 for a value no table row produces (bit 0 set, or high bits without the
 * 10-bit prefix). Low byte 11110xx0 is the 10-bit prefix: 7-bit addresses 0x78..0x7b are
 * reserved for it by the I2C specification.
 */
export function decodeI2cAddressKey(addr: number): number {
  if ((addr & 1) !== 0 || addr > 0xffff || addr < 0) return -1;
  const low = addr & 0xff;
  if ((low & 0xf8) === 0xf0) return 0x400 | (((low >> 1) & 3) << 8) | (addr >>> 8);
  if (addr >>> 8 !== 0) return -1;
  return low >>> 1;
}

/** A number naming a target on the bus: 7-bit addresses as they are, 10-bit ones with bit 10 set. */
export function i2cAddressKey(address: number, tenBit: boolean): number {
  return tenBit ? 0x400 | (address & I2C_MAX_10BIT_ADDRESS) : address & I2C_MAX_7BIT_ADDRESS;
}
