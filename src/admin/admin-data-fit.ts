/**
 * 2.13 (device/admin/15, /16, /18): a device acts as if data a driver did not supply were zero and
 * ignores data past what it expects, and never fails a command for a buffer being shorter or
 * longer than described (drivers pad both parts to multiples of 8 bytes). Command modules read
 * their fixed structures through this.
 */

/** `data` cut or zero-extended to exactly `length` bytes (a copy when it has to change). */
export function fitAdminData(data: Uint8Array, length: number): Uint8Array {
  if (data.length === length) return data;
  if (data.length > length) return data.subarray(0, length);
  const out = new Uint8Array(length);
  out.set(data);
  return out;
}
