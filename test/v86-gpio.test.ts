/**
 * Linux's gpio-virtio (built out of tree for the i386 686 kernel) drives a virtio-ts GpioDevice on
 * v86's PCI bus, with VIRTIO_GPIO_F_IRQ (QEMU 7.2's vhost-user-gpio does not pass that feature
 * on, so interrupts are proven here): the guest exports lines through sysfs, drives "led" high
 * (the host reads the line), enables a rising-edge interrupt on "button" through sysfs, and a
 * static C program blocked in poll() on the value file wakes when the host raises the line.
 * Setting the edge back to none disables the interrupt: the device returns the line's eventq
 * buffer INVALID.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GpioDevice } from '../src/devices/gpio/gpio-device.js';
import { GpioDirection, GpioIrqType } from '../src/spec/gpio.js';
import { writeFile } from 'node:fs/promises';
import { GuestKitPart, OutOfTreeModule, OutOfTreeTarget, StaticArch, buildOutOfTreeModules, compileStatic, ensureGuestKit, makeTempDir } from './support/guest.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const v86 = ensureV86Deps();
const kit = ensureGuestKit([GuestKitPart.TOOLS, GuestKitPart.HEADERS_686, GuestKitPart.SOURCE]);
const skip = !v86.ok ? v86.reason : !kit.ok ? kit.reason : false;
const RUN_TIMEOUT_MS = 6 * 60_000;

const POLL_SOURCE = String.raw`
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* gpio-poll VALUE_FILE TIMEOUT_MS: waits in poll() for an interrupt on a sysfs GPIO value file. */
int main(int argc, char **argv) {
  char b[8];
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) { printf("open failed\n"); return 1; }
  if (read(fd, b, sizeof b) < 0) { printf("read failed\n"); return 1; }
  printf("armed\n");
  fflush(stdout);
  struct pollfd p = { fd, POLLPRI | POLLERR, 0 };
  int r = poll(&p, 1, atoi(argv[2]));
  if (r <= 0) { printf("timeout\n"); return 1; }
  lseek(fd, 0, SEEK_SET);
  int n = read(fd, b, sizeof b - 1);
  b[n > 0 ? n : 0] = 0;
  printf("edge value=%c pri=%d\n", b[0], (p.revents & POLLPRI) ? 1 : 0);
  return 0;
}
`;

const SCRIPT = `
chip=""
for i in $(seq 1 100); do
  for c in /sys/class/gpio/gpiochip*; do
    [ -e "$c/label" ] || continue
    case "$(cat $c/label)" in virtio*) chip=$c;; esac
  done
  [ -n "$chip" ] && break
  sleep 0.2
done
[ -n "$chip" ] || fail "no virtio gpiochip: $(ls /sys/class/gpio)"
result ngpio "$(cat $chip/ngpio)"
base=$(cat $chip/base)
echo $base > /sys/class/gpio/export || fail "export led"
echo $((base + 1)) > /sys/class/gpio/export || fail "export button"
led=/sys/class/gpio/led
btn=/sys/class/gpio/button
echo high > $led/direction || fail "led high"
result phase led
echo in > $btn/direction || fail "button in"
echo rising > $btn/edge || fail "edge"
/bin/gpio-poll $btn/value 120000 > /tmp/poll.out &
poller=$!
for i in $(seq 1 300); do grep -q armed /tmp/poll.out && break; sleep 0.1; done
grep -q armed /tmp/poll.out || fail "poller did not start"
result phase raise
wait $poller
result poll "$(tail -n 1 /tmp/poll.out)"
result button_value "$(cat $btn/value)"
echo none > $btn/edge || fail "edge none"
result phase end
result ok 1
`;

describe('v86: Linux gpio-virtio on a virtio-ts GPIO device, with interrupts', { skip }, () => {
  it('device/gpio/9 device/gpio/12 device/gpio/13: a rising edge the host raises wakes poll() in the guest; edge none returns the buffer', { timeout: RUN_TIMEOUT_MS + 120_000 }, async () => {
    if (!v86.ok) throw new Error(v86.reason);
    const oot = await buildOutOfTreeModules(OutOfTreeTarget.I686, [OutOfTreeModule.GPIO_VIRTIO]);
    const tmp = await makeTempDir('vts-v86gpio-');
    const ko = tmp.file('gpio-virtio.ko');
    await writeFile(ko, oot.modules[0]!.data);
    const poller = await compileStatic({ source: POLL_SOURCE, path: '/bin/gpio-poll', arch: StaticArch.I386 });
    const outputs: string[] = [];
    const device = new GpioDevice([{ name: 'led' }, { name: 'button' }, { name: 'reset' }], { onOutput: (line, level) => outputs.push(`${line}=${level}`) });
    let refresh: () => void = () => undefined;
    const seen: Record<string, string> = {};
    let res: Awaited<ReturnType<typeof runV86DeviceGuest>>;
    try {
      res = await runV86DeviceGuest({
        assets: v86,
        devices: [{ device, modules: [], extraModules: [{ path: ko }] }],
        extraFiles: [poller],
        script: SCRIPT,
        timeoutMs: RUN_TIMEOUT_MS,
        onAttach: (r) => (refresh = r),
        onLine: (line) => {
          if (line === 'RESULT phase=led') {
            const l = device.line('led');
            seen['led'] = `${l.direction}:${l.level}`;
          } else if (line === 'RESULT phase=raise') {
            const b = device.line('button');
            seen['armed'] = `${b.direction}:${b.irqType}:${b.irqUnmasked ? 'unmasked' : 'masked'}`;
            // The device completes the eventq buffer outside any guest access: v86's RAM view first.
            refresh();
            device.setInput('button', 1);
          } else if (line === 'RESULT phase=end') {
            const b = device.line('button');
            seen['end'] = `${b.irqType}:${b.irqUnmasked ? 'unmasked' : 'masked'}`;
          }
        },
      });
    } finally {
      await tmp.remove();
    }
    console.log(`v86 gpio: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ${device.stats.interrupts} interrupts, ${device.stats.invalidated} buffers returned invalid`);
    assert.equal(res.results.get('ok'), '1', res.output);
    assert.equal(res.results.get('ngpio'), '3');
    assert.equal(seen['led'], `${GpioDirection.OUT}:1`, 'the host saw the output the guest drove');
    assert.deepEqual(outputs, ['0=1']);
    assert.equal(seen['armed'], `${GpioDirection.IN}:${GpioIrqType.EDGE_RISING}:unmasked`, 'enabled, then unmasked with the eventq buffer');
    assert.equal(res.results.get('poll'), 'edge value=1 pri=1', `poll() woke on the edge\n${res.output}`);
    assert.equal(res.results.get('button_value'), '1');
    assert.equal(device.stats.interrupts, 1);
    assert.equal(seen['end'], `${GpioIrqType.NONE}:masked`, 'edge none: SET_IRQ_TYPE NONE, the buffer returned');
    assert.ok(device.stats.invalidated >= 1, 'the held buffer came back INVALID');
    assert.deepEqual(res.badAccesses, []);
  });
});
