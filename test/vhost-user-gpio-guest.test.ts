/**
 * The `virtio-ts gpio` back-end serving a real Linux guest through QEMU 7.2's vhost-user-gpio-pci
 * (q35, generic kernel with the out-of-tree gpio-virtio module). Four lines: "led", "button"
 * (an input at reset), an unnamed one and "reset". The guest exports the named lines through sysfs (they
 * lines appear under their names, from GET_LINE_NAMES), drives "led" high, which the host reads
 * on the control socket; reads "button" after the host drove it;
 * unexporting returns the line to direction none (device/gpio/8). QEMU 7.2 does not pass
 * VIRTIO_GPIO_F_IRQ on, so the interrupt path is proven under v86 (v86-gpio.test.ts).
 *
 * The back-end runs as the built CLI in a child process; the test drives the host side of the
 * lines through its --control-socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import {
  ensureGuestKit,
  guestKitPartsFor,
  isSocket,
  makeTempDir,
  repoRoot,
  runDeviceGuest,
  startProcess,
  waitForPath,
  withConsole,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';


const GUEST = { kernel: 'generic', devices: ['gpio'] } as const;
const deps = ensureGuestKit(guestKitPartsFor(GUEST));
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

async function startGpio(sock: string, control: string, args: readonly string[]): Promise<ManagedProcess> {
  const p = startProcess(process.execPath, [CLI, 'gpio', '--socket-path', sock, '--control-socket', control, ...args, '-v']);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
    await waitForPath(control, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts gpio did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/** One control command, its one-line answer (bounded by 10 s). */
function control(path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`control "${command}": no answer`));
    }, 10_000);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        s.end();
        resolve(buf.slice(0, nl));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const script = `
chip=""
for i in $(seq 1 50); do
  for c in /sys/class/gpio/gpiochip*; do
    [ -e "$c/label" ] || continue
    case "$(cat $c/label)" in virtio*) chip=$c;; esac
  done
  [ -n "$chip" ] && break
  sleep 0.2
done
[ -n "$chip" ] || fail "no virtio gpiochip: $(ls /sys/class/gpio)"
result features "$(virtio_features $(ls /sys/bus/virtio/devices | head -n 1))"
result ngpio "$(cat $chip/ngpio)"
base=$(cat $chip/base)
echo $base > /sys/class/gpio/export || fail "export led"
echo $((base + 1)) > /sys/class/gpio/export || fail "export button"
result exported "$(ls /sys/class/gpio | grep -v -e gpiochip -e export | tr '\\n' ' ')"
led=/sys/class/gpio/led
btn=/sys/class/gpio/button
result button_dir "$(cat $btn/direction)"
echo high > $led/direction || fail "led high"
result led_dir "$(cat $led/direction)"
result phase led
host_wait go1 || fail "no go1"
result button_value "$(cat $btn/value)"
echo 0 > $led/value
echo $base > /sys/class/gpio/unexport || fail "unexport"
result phase end
host_wait go2 || fail "no go2"
`;

describe('virtio-ts gpio: vhost-user back-end serving a real Linux guest (QEMU 7.2 vhost-user-gpio-pci)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vugpio-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('device/gpio/2 device/gpio/4 device/gpio/5 device/gpio/8: sysfs export by name, an output the host reads, an input the host drives, unexport back to none', async (t) => {
    const sock = tmp.file('gpio.sock');
    const ctl = tmp.file('gpio.ctl');
    const be = await startGpio(sock, ctl, ['--line', 'led', '--line', 'button=in', '--line', '', '--line', 'reset']);
    const host: Record<string, string> = {};
    const hostErrors: string[] = [];
    try {
      const res = await runDeviceGuest({
        ...GUEST,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: ['vhost-user-gpio-pci,chardev=c0'],
        script,
        memfd: true,
        timeoutMs: 150_000,
        onLine: (line, guest) => {
          const step = async (): Promise<void> => {
            if (line === 'RESULT phase=led') {
              host['led'] = await control(ctl, 'get led');
              host['set'] = await control(ctl, 'set button 1');
              guest.send('go1\n');
            } else if (line === 'RESULT phase=end') {
              host['led_end'] = await control(ctl, 'get led');
              host['button_end'] = await control(ctl, 'get button');
              guest.send('go2\n');
            }
          };
          step().catch((e: unknown) => {
            hostErrors.push(String(e));
            guest.send('go1\ngo2\n');
          });
        },
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts gpio -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      const ended = await be.stop(5000);
      await withConsole(res, be.output(), async () => {
        assert.deepEqual(hostErrors, []);
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
        assert.equal(isSocket(ctl), false, 'back-end removed its control socket');
        const f = res.results.get('features') ?? '';
        assert.match(f, /^[01]{64}$/);
        // QEMU 7.2's vhost-user-gpio does not pass VIRTIO_GPIO_F_IRQ on to the guest although
        // the back-end offers it (bit 0 of these features is 0): interrupts are proven with v86
        // (v86-gpio.test.ts).
        assert.equal(res.results.get('ngpio'), '4');
        // Named lines export under their names (GET_LINE_NAMES).
        assert.deepEqual((res.results.get('exported') ?? '').trim().split(' ').sort(), ['button', 'led']);
        assert.equal(res.results.get('button_dir'), 'in', 'the reset direction from --line button=in');
        assert.equal(res.results.get('led_dir'), 'out');
        assert.equal(host['led'], 'ok level=1 direction=out output=1 input=0 irq=none', 'the host sees the level the guest drives');
        assert.equal(host['set'], 'ok');
        assert.equal(res.results.get('button_value'), '1', 'the guest reads the level the host drives');
        assert.equal(host['led_end'], 'ok level=0 direction=none output=0 input=0 irq=none', 'unexport: SET_DIRECTION none, state discarded');
        assert.equal(host['button_end'], 'ok level=1 direction=in output=0 input=1 irq=none');
      });
    } finally {
      await be.stop();
    }
  });
});
