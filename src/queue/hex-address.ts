/**
 * A descriptor's 64-bit address for messages, from its two 32-bit halves. The ring walkers
 * turn an address above 2^53 into -1 (no region can hold it), so a message built from that
 * number would print the sentinel instead of what the driver wrote.
 */
export function hexAddress(hi: number, lo: number): string {
  return hi === 0 ? `0x${lo.toString(16)}` : `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`;
}
