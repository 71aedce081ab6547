/**
 * Linux's virtio_input and virtio_balloon drivers (the i386 686 kernel under v86) on a virtio-ts
 * input device (keyboard preset) and traditional balloon, both on v86's PCI bus in one boot.
 *
 * Input: the guest opens /dev/input/eventN of our device and says so; the host then taps a key;
 * the guest reads the evdev events (busybox od) and the test compares them with what the host
 * sent. The guest writes an LED event to the same node, which Linux forwards on the statusq.
 * Balloon: the target set before boot is inflated by the guest (PFNs checked by the device);
 * the host lowers it and waits for `actual` to follow, then asks for memory statistics. The
 * host's last key press tells the guest it may end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BalloonDevice } from '../src/devices/balloon/balloon-device.js';
import { InputDevice } from '../src/devices/input/input-device.js';
import { keyboardProfile } from '../src/devices/input/input-presets.js';
import { BalloonStatTag } from '../src/spec/balloon.js';
import { EvCode, EvType } from '../src/spec/input.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 10 * 60_000;
const NAME = 'virtio-ts v86 keyboard';
const FIRST_TARGET = 256; // pages of 4 KiB: 1 MiB
const SECOND_TARGET = 64;

// i386 struct input_event: 8 bytes of timeval, le16 type, le16 code, le32 value (16 bytes).
const SCRIPT = `
wait_path /sys/class/input 100 || fail "no input class"
ev=""
for i in $(seq 1 100); do
  for d in /sys/class/input/event*; do
    [ "$(cat $d/device/name 2>/dev/null)" = "${NAME}" ] && ev=/dev/input/\${d##*/}
  done
  [ -n "$ev" ] && [ -e "$ev" ] && break
  sleep 0.1
done
[ -n "$ev" ] || fail "no event node for ${NAME}"
result name "$(cat /sys/class/input/\${ev##*/}/device/name)"
exec 3<"$ev"
result ready 1
dd bs=16 count=4 <&3 2>/dev/null | od -An -tx1 -v | while read l; do echo "EV $l"; done
printf '\\0\\0\\0\\0\\0\\0\\0\\0\\021\\0\\001\\0\\001\\0\\0\\0' >"$ev"
dd bs=16 count=2 <&3 2>/dev/null | od -An -tx1 -v | while read l; do echo "END $l"; done
result ok 1
`;

/** The type, code and value of the evdev events in the guest's "PREFIX hex..." lines. */
function events(output: string, prefix: string): number[][] {
  return output
    .split('\n')
    .filter((l) => l.startsWith(prefix + ' '))
    .map((l) => {
      const b = l.slice(prefix.length).trim().split(/\s+/).map((h) => parseInt(h, 16));
      const v = new DataView(Uint8Array.from(b).buffer);
      return [v.getUint16(8, true), v.getUint16(10, true), v.getInt32(12, true)];
    });
}

describe('v86: Linux virtio_input and virtio_balloon on virtio-ts devices', { skip: deps.ok ? false : deps.reason }, () => {
  it('the guest reads our key events from evdev, its LED change reaches the statusq; the balloon follows the target', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const status: number[][] = [];
    const input = new InputDevice({ profile: keyboardProfile(NAME), onStatus: (t, c, v) => void status.push([t, c, v]) });
    let inflated = 0;
    let deflated = 0;
    const balloon = new BalloonDevice({ numPages: FIRST_TARGET, onInflate: (_p, n) => void (inflated += n), onDeflate: (_p, n) => void (deflated += n) });
    let hostDone: Promise<void> | null = null;
    let hostError: unknown = null;
    const hostSide = async (): Promise<void> => {
      assert.ok(input.tapKey(EvCode.KEY_A));
      await balloon.whenActual(FIRST_TARGET);
      balloon.setTarget(SECOND_TARGET);
      await balloon.whenActual(SECOND_TARGET);
      stats = await balloon.requestStats();
      assert.ok(input.sendUpdate([{ type: EvType.KEY, code: EvCode.KEY_ESC, value: 1 }]));
    };
    let stats: Readonly<Partial<Record<number, number>>> | null = null;
    // The balloon's state at the end of the run, read before detaching resets the device.
    let final = { actual: -1, balloonedPages: -1, refusedPfns: -1 };
    const res = await runV86DeviceGuest({
      assets: deps,
      devices: [{ device: input }, { device: balloon }],
      script: SCRIPT,
      timeoutMs: RUN_TIMEOUT_MS,
      beforeDetach: () => {
        final = { actual: balloon.actual, balloonedPages: balloon.balloonedPages, refusedPfns: balloon.refusedPfns };
      },
      onLine: (line) => {
        if (line.includes('RESULT ready=1') && hostDone === null) {
          // Kept settled-or-pending and awaited after the run; a failure is recorded, not unhandled.
          hostDone = hostSide().catch((e: unknown) => {
            hostError = e;
          });
        }
      },
    });
    assert.notEqual(hostDone, null, res.output);
    await hostDone;
    if (hostError !== null) throw hostError;
    console.log(`v86 input+balloon: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms; inflated ${inflated}, deflated ${deflated}, stats ${JSON.stringify(stats)}`);
    assert.equal(res.results.get('ok'), '1', res.output);
    assert.equal(res.results.get('name'), NAME);
    assert.deepEqual(events(res.output, 'EV'), [
      [EvType.KEY, EvCode.KEY_A, 1],
      [EvType.SYN, EvCode.SYN_REPORT, 0],
      [EvType.KEY, EvCode.KEY_A, 0],
      [EvType.SYN, EvCode.SYN_REPORT, 0],
    ]);
    assert.deepEqual(events(res.output, 'END'), [
      [EvType.KEY, EvCode.KEY_ESC, 1],
      [EvType.SYN, EvCode.SYN_REPORT, 0],
    ]);
    assert.ok(status.some(([t, c, v]) => t === EvType.LED && c === EvCode.LED_CAPSL && v === 1), `statusq: ${JSON.stringify(status)}`);
    assert.equal(final.actual, SECOND_TARGET);
    assert.equal(final.balloonedPages, SECOND_TARGET);
    assert.ok(inflated >= FIRST_TARGET && deflated >= FIRST_TARGET - SECOND_TARGET);
    assert.equal(final.refusedPfns, 0);
    assert.ok(stats !== null && (stats[BalloonStatTag.MEMTOT] ?? 0) > 0, `stats: ${JSON.stringify(stats)}`);
    assert.deepEqual(res.badAccesses, []);
  });
});
