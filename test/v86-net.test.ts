/**
 * Linux's virtio_net (the i386 686 kernel under v86, in this process) on a virtio-ts NetDevice on
 * v86's PCI bus, where the device owns the configuration space (unlike vhost-user, where QEMU
 * does): the host takes the link down and up (VIRTIO_NET_S_LINK_UP and a configuration change,
 * 5.1.4) and the guest's carrier follows; then the guest pings the host side of a TAP port on the
 * same switch (a network namespace this test makes and deletes). Needs root and /dev/net/tun:
 * under CI=true their absence fails the file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { NetDevice } from '../src/devices/net/net-device.js';
import type { NetPacket } from '../src/devices/net/packet.js';
import { NetSwitch } from '../src/devices/net/switch.js';
import { TapPort } from '../src/devices/net/tap-port.js';
import { loadNativePlatform, nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { attachV86Devices } from '../src/transport/v86/v86-attach.js';
import { ensureV86Deps, runV86Guest } from './support/v86-guest.js';
import { v86ModulesForDeviceId } from './support/v86-modules.js';

const deps = ensureV86Deps();
function missing(): string | null {
  if (!deps.ok) return deps.reason;
  if (!nativePlatformAvailable()) return 'native addon not built';
  if (process.getuid?.() !== 0) return 'not root (TAP devices and namespaces)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun missing';
  return null;
}
const why = missing();
if (why !== null && process.env['CI'] === 'true') throw new Error(`CI=true: ${why}`);

const ip = (...a: string[]): string => execFileSync('ip', a, { encoding: 'utf8', timeout: 10_000 });

/** Polls /sys/class/net/eth0/carrier for `want`, bounded; reports it. */
function waitCarrier(want: number, key: string): string {
  return `n=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != ${want} ] && [ $n -lt 600 ]; do usleep 100000; n=$((n + 1)); done
result ${key} "$(cat /sys/class/net/eth0/carrier)"`;
}

const SCRIPT = `
wait_path /sys/class/net/eth0 600 || fail "no eth0"
ip link set eth0 up || fail "link up"
ip addr add 10.94.0.2/24 dev eth0 || fail "addr"
${waitCarrier(1, 'carrier_start')}
echo VTS-LINK-READY
${waitCarrier(0, 'carrier_down')}
# operstate follows the carrier through Linux's linkwatch work, which runs later (up to a
# second, more under emulation): wait for it, bounded.
n=0; while [ "$(cat /sys/class/net/eth0/operstate)" != down ] && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
result operstate_down "$(cat /sys/class/net/eth0/operstate)"
echo VTS-LINK-DOWN-SEEN
${waitCarrier(1, 'carrier_up')}
ok=0
for i in $(seq 1 60); do if ping -c 1 -W 2 10.94.0.1 >/dev/null 2>&1; then ok=1; break; fi; done
result ping $ok
result guest_rx "$(cat /sys/class/net/eth0/statistics/rx_packets)"
result guest_tx "$(cat /sys/class/net/eth0/statistics/tx_packets)"
result neigh "$(ip neigh show dev eth0 | head -1)"
`;

describe('v86: Linux virtio_net on a virtio-ts NetDevice: link down/up, and a TAP port on the switch', { skip: why ?? false }, () => {
  it('the guest sees carrier go down and up with VIRTIO_NET_S_LINK_UP, then pings the TAP host through the switch', { timeout: 10 * 60_000 }, async () => {
    assert.equal(why, null);
    const ns = `vts-v86-${process.pid.toString(36)}`;
    const ifname = `vtsv${process.pid.toString(36)}`.slice(0, 15);
    ip('netns', 'add', ns);
    const sw = new NetSwitch();
    const dev = new NetDevice({ mac: Uint8Array.of(0x52, 0x54, 0, 0x94, 0, 2), name: 'v86-net' });
    // A frame from the TAP arrives outside any guest access: v86's RAM views must be rebound
    // first (its wasm memory may have grown, docs/v86.md).
    let refresh: () => void = () => undefined;
    const port = sw.attach({
      name: dev.name,
      deliver: (p: NetPacket) => {
        // The rebind keeps the core's queue objects (the kit rebinds them in place), so the
        // receive queue needs no notification pass before the frame is delivered.
        refresh();
        dev.deliver(p);
      },
    });
    dev.connect(port);
    let tap: TapPort | null = null;
    const events: string[] = [];
    try {
      tap = new TapPort({ ifname, platform: loadNativePlatform() });
      tap.attachTo(sw);
      ip('link', 'set', ifname, 'netns', ns);
      ip('-n', ns, 'addr', 'add', '10.94.0.1/24', 'dev', ifname);
      ip('-n', ns, 'link', 'set', ifname, 'up');
      const res = await runV86Guest({
        assets: deps as Exclude<typeof deps, { ok: false }>,
        modules: v86ModulesForDeviceId(DeviceId.NET)!,
        script: SCRIPT,
        timeoutMs: 9 * 60_000,
        attach: (cpu) => {
          const a = attachV86Devices(cpu, [{ device: dev }]);
          refresh = a.refreshMemory;
          return a.detach;
        },
        onLine: (line) => {
          if (line.includes('VTS-LINK-READY') && dev.isLinkUp) {
            events.push('down');
            dev.setLinkUp(false);
          } else if (line.includes('VTS-LINK-DOWN-SEEN') && !dev.isLinkUp) {
            events.push('up');
            dev.setLinkUp(true);
          }
        },
      });
      const r = (k: string): string | undefined => res.results.get(k);
      assert.deepEqual(events, ['down', 'up']);
      assert.deepEqual([r('carrier_start'), r('carrier_down'), r('operstate_down'), r('carrier_up')], ['1', '0', 'down', '1'], res.output.slice(-3000));
      const counters = `device ${JSON.stringify(dev.stats)} tap ${JSON.stringify(tap.stats)} guest rx ${r('guest_rx')} tx ${r('guest_tx')} neigh ${r('neigh')}`;
      assert.equal(r('ping'), '1', counters);
      assert.ok(tap.stats.rxFrames > 0 && tap.stats.txFrames > 0, JSON.stringify(tap.stats));
      assert.ok(dev.stats.rxFrames > 0 && dev.stats.txFrames > 0, JSON.stringify(dev.stats));
      console.log(`v86 net: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, device ${JSON.stringify(dev.stats)}`);
    } finally {
      tap?.close();
      ip('netns', 'del', ns);
    }
  });
});
