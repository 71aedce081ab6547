/**
 * A simulated I2C target on the host side of the adapter (5.16: the device "organizes the host
 * I2C controlled devices"). The device hands it the segments of each transaction in order and a
 * STOP when the group ends (5.16.6.1: a group of requests chained with FAIL_NEXT is one
 * transaction with repeated STARTs between its segments).
 */
export interface I2cTarget {
  /**
   * A write segment of `length` bytes in `data[0, length)` (the buffer is the device's scratch,
   * valid only during the call). Returns false for a NACK. A zero-length write is the SMBus
   * Quick command: ACK when the target is present.
   */
  write(data: Uint8Array, length: number): boolean;
  /** A read segment: fills `dst[0, length)`; false for a NACK (dst is then ignored). */
  read(dst: Uint8Array, length: number): boolean;
  /** STOP: the transaction ended (also when another target is addressed by a repeated START). */
  stop(): void;
}
