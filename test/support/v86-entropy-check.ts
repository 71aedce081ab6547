/**
 * An entropy device whose bytes can be recognised: its source is a seeded xorshift stream that
 * counts what it supplied, so the host can check that what the guest read from /dev/hwrng is a
 * stretch of that stream, i.e. came from our device and not from another generator.
 *
 * The kernel's hwrng core also reads the device (32 bytes of early randomness at registration,
 * and a fill thread when the source has a quality): `rng_core.default_quality=0` on the command
 * line (rng-core is built into the 686 kernel) keeps the fill thread off, so the guest's read
 * is one contiguous stretch of the stream after the early bytes.
 */
import assert from 'node:assert/strict';
import { EntropyDevice } from '../../src/devices/entropy/entropy-device.js';
import { xorshiftBytes } from './v86-pattern.js';

/** Command line for a run with an entropy device: no hwrng fill thread. */
export const V86_ENTROPY_APPEND = 'rng_core.default_quality=0';

/** Bytes the guest reads from /dev/hwrng. */
export const GUEST_RNG_BYTES = 256;

/** The stream is regenerated for the check; a source that supplied more than this is a failure. */
const MAX_CHECKED_BYTES = 16 << 20;

/** An EntropyDevice fed by a counted, reproducible stream. */
export class CountedEntropy {
  /** Bytes handed to the device so far (the stream's length). */
  supplied = 0;
  /** Calls of the source: one per span of a guest buffer. */
  fills = 0;
  readonly device: EntropyDevice;
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0 || 1;
    this.device = new EntropyDevice({ source: (dst) => this.fill(dst) });
  }

  private fill(dst: Uint8Array): void {
    let x = this.state;
    for (let i = 0; i < dst.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      dst[i] = x & 0xff;
    }
    this.state = x;
    this.supplied += dst.length;
    this.fills++;
  }

  /** Everything supplied so far, regenerated. */
  stream(): Uint8Array {
    assert.ok(this.supplied <= MAX_CHECKED_BYTES, `the device supplied ${this.supplied} bytes: more than any run should ask`);
    return xorshiftBytes(this.supplied, this.seed);
  }
}

/**
 * Guest script lines: waits for the hwrng, reports which one is current (`rng_current`), the
 * virtio device (`rng_dev`) and whether it negotiated VERSION_1 (`rng_version1`), and the hex of
 * GUEST_RNG_BYTES read from /dev/hwrng (`rng_hex`).
 */
export const ENTROPY_SCRIPT = `
wait_path /dev/hwrng 600 || fail "no /dev/hwrng"
result rng_current "$(cat /sys/class/misc/hw_random/rng_current)"
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat $d/device)" = 0x0004 ] && rng_dev=$(basename $d)
done
[ -n "$rng_dev" ] || fail "no virtio entropy device in sysfs"
result rng_dev "$rng_dev"
result rng_version1 "$(has_feature "$rng_dev" 32 && echo 1 || echo 0)"
result rng_hex "$(head -c ${GUEST_RNG_BYTES} /dev/hwrng | hexdump -v -e '1/1 "%02x"')"
`;

/** Host checks: the guest read GUEST_RNG_BYTES that are one stretch of the device's stream. */
export function checkEntropy(results: ReadonlyMap<string, string>, rng: CountedEntropy): void {
  assert.match(results.get('rng_current') ?? '', /^virtio_rng\.\d+$/, 'the virtio hwrng is the current one');
  const hex = results.get('rng_hex') ?? '';
  assert.equal(hex.length, 2 * GUEST_RNG_BYTES, `the guest read ${GUEST_RNG_BYTES} bytes`);
  const got = Buffer.from(hex, 'hex');
  assert.ok(rng.supplied >= GUEST_RNG_BYTES, `the device supplied ${rng.supplied} bytes, fewer than the guest read`);
  const at = Buffer.from(rng.stream()).indexOf(got);
  assert.ok(at >= 0, `the guest's bytes are not a stretch of what the device supplied (${rng.supplied} bytes in ${rng.fills} fills)`);
}
