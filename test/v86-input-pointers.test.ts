/**
 * Linux's virtio_input driver (the i386 686 kernel under v86) on virtio-ts's mouse and tablet
 * presets, both on v86's PCI bus in one boot: the guest finds each evdev node by name, reports
 * the capabilities Linux built from our EV_BITS (sysfs `capabilities/rel` and `abs`) and the
 * properties, then reads the events of one update of each device, which the test compares with
 * what the host sent (relative motion and a wheel step; an absolute position).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputDevice } from '../src/devices/input/input-device.js';
import { mouseProfile, tabletProfile } from '../src/devices/input/input-presets.js';
import { EvCode, EvType } from '../src/spec/input.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 10 * 60_000;
const MOUSE = 'virtio-ts v86 mouse';
const TABLET = 'virtio-ts v86 tablet';

// i386 struct input_event: 8 bytes of timeval, le16 type, le16 code, le32 value (16 bytes).
const SCRIPT = `
wait_path /sys/class/input 100 || fail "no input class"
find_ev() {
  for i in $(seq 1 100); do
    for d in /sys/class/input/event*; do
      [ "$(cat $d/device/name 2>/dev/null)" = "$1" ] && [ -e /dev/input/\${d##*/} ] && { echo \${d##*/}; return 0; }
    done
    sleep 0.1
  done
  return 1
}
m=$(find_ev "${MOUSE}") || fail "no event node for the mouse"
t=$(find_ev "${TABLET}") || fail "no event node for the tablet"
result mouse_rel "$(cat /sys/class/input/$m/device/capabilities/rel)"
result mouse_abs "$(cat /sys/class/input/$m/device/capabilities/abs)"
result tablet_abs "$(cat /sys/class/input/$t/device/capabilities/abs)"
result tablet_rel "$(cat /sys/class/input/$t/device/capabilities/rel)"
exec 3</dev/input/$m
exec 4</dev/input/$t
result ready 1
dd bs=16 count=3 <&4 2>/dev/null | od -An -tx1 -v | while read l; do echo "TAB $l"; done
dd bs=16 count=3 <&3 2>/dev/null | od -An -tx1 -v | while read l; do echo "MOU $l"; done
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

describe('v86: Linux virtio_input on the virtio-ts mouse and tablet presets', { skip: deps.ok ? false : deps.reason }, () => {
  it('the guest sees REL axes on the mouse, ABS axes on the tablet, and reads one update of each', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const mouse = new InputDevice({ profile: mouseProfile(MOUSE) });
    const tablet = new InputDevice({ profile: tabletProfile(TABLET) });
    let sent = false;
    let refresh: () => void = () => undefined;
    const res = await runV86DeviceGuest({
      // The update is sent from a console line, outside any guest access: v86's RAM views are
      // refreshed first (its wasm memory may have grown since the guest last touched a device).
      onAttach: (r) => (refresh = r),
      assets: deps,
      devices: [{ device: mouse }, { device: tablet }],
      script: SCRIPT,
      timeoutMs: RUN_TIMEOUT_MS,
      onLine: (line) => {
        if (line.includes('RESULT ready=1') && !sent) {
          sent = true;
          refresh();
          assert.ok(tablet.sendUpdate([
            { type: EvType.ABS, code: EvCode.ABS_X, value: 1000 },
            { type: EvType.ABS, code: EvCode.ABS_Y, value: 2000 },
          ]));
          assert.ok(mouse.sendUpdate([
            { type: EvType.REL, code: EvCode.REL_X, value: -5 },
            { type: EvType.REL, code: EvCode.REL_WHEEL, value: 1 },
          ]));
        }
      },
    });
    assert.ok(sent, res.output);
    console.log(`v86 mouse+tablet: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms`);
    assert.equal(res.results.get('ok'), '1', res.output);
    // sysfs bitmaps in hex: REL_X | REL_Y | REL_WHEEL = bits 0, 1, 8; ABS_X | ABS_Y = bits 0, 1.
    assert.equal(res.results.get('mouse_rel'), '103');
    assert.equal(res.results.get('mouse_abs'), '0');
    assert.equal(res.results.get('tablet_abs'), '3');
    assert.equal(res.results.get('tablet_rel'), '0');
    assert.deepEqual(events(res.output, 'TAB'), [
      [EvType.ABS, EvCode.ABS_X, 1000],
      [EvType.ABS, EvCode.ABS_Y, 2000],
      [EvType.SYN, EvCode.SYN_REPORT, 0],
    ]);
    assert.deepEqual(events(res.output, 'MOU'), [
      [EvType.REL, EvCode.REL_X, -5],
      [EvType.REL, EvCode.REL_WHEEL, 1],
      [EvType.SYN, EvCode.SYN_REPORT, 0],
    ]);
    assert.deepEqual(res.badAccesses, []);
  });
});
