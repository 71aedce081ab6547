/**
 * Live migration of a guest with a virtio-ts net port between two QEMU 7.2 processes (issue 16
 * §4): one `virtio-ts net` switch serves both QEMUs on two vhost-user sockets (port 0 for the
 * source, port 1 for the destination) and a TAP port into a namespace the test makes. The guest
 * pings the TAP's host side once a second before, during and after the move; after the move the
 * switch must have learned the guest's MAC on the destination's port (from the guest's
 * announcement or its next frame), and the pings must go on.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { EXIT } from '../src/cli/options.js';
import type { NetOptions } from '../src/devices/net/cli.js';
import { runNet } from '../src/devices/net/net-command.js';
import type { NetSwitch } from '../src/devices/net/switch.js';
import type { VhostUserNetDevice } from '../src/devices/net/vhost-user-net-device.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { ensureGuestDeps, isSocket, makeTempDir } from './support/guest.js';
import { runMigration } from './support/migration.js';
import { Netns } from './support/netns.js';

const deps = ensureGuestDeps();
function missing(): string | null {
  if (!deps.ok) return deps.reason;
  if (!nativePlatformAvailable()) return 'native addon not built';
  if (process.getuid?.() !== 0) return 'not root (TAP devices and namespaces)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun missing';
  return null;
}
const why = missing();
if (why !== null && process.env['CI'] === 'true') throw new Error(`CI=true: ${why}`);
const skip = why ?? false;

const GUEST_MAC = '52:54:00:94:00:02';
const PINGS_BEFORE = 4;
const PINGS_AFTER = 4;
const RUN_TIMEOUT_MS = 240_000;

/** Pings the TAP host once a second in the background until told to stop; then counts. */
const SCRIPT = `
wait_path /sys/class/net/eth0 || fail "no eth0"
ip link set eth0 up || fail "link up"
ip addr add 10.94.0.2/24 dev eth0 || fail "addr"
(
  i=0
  while [ ! -e /tmp/stop ] && [ $i -lt 600 ]; do
    if ping -c 1 -W 1 10.94.0.1 >/dev/null 2>&1; then echo "RESULT p$i=ok"; echo ok >> /tmp/pings; else echo "RESULT p$i=lost"; echo lost >> /tmp/pings; sleep 1; fi
    i=$((i + 1))
  done
) &
pinger=$!
host_wait moved || fail "no word from the host"
touch /tmp/stop
wait $pinger
result answered "$(grep -c ok /tmp/pings)"
result lost "$(grep -c lost /tmp/pings)"
ping -c 3 -W 2 10.94.0.1 >/dev/null 2>&1 && result final ok || result final lost
`;

describe('virtio-ts net: live migration between two QEMU 7.2 processes (two switch ports, a TAP in a namespace)', { skip, timeout: RUN_TIMEOUT_MS + 60_000 }, () => {
  it('the guest pings through the move; its MAC moves to the destination port; the pings go on', async (t) => {
    const tmp = await makeTempDir('vts-migrate-net-');
    const ns = new Netns('vts-mig');
    const ifname = `vtsmig${(process.pid % 10000).toString(36)}`;
    const sockA = tmp.file('a.sock');
    const sockB = tmp.file('b.sock');
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    let sw: NetSwitch | null = null;
    const devices = new Map<number, VhostUserNetDevice>();
    const log: string[] = [];
    const options: NetOptions = {
      socketPath: sockA,
      fd: null,
      verbosity: 2,
      socketPaths: [sockA, sockB],
      mac: Uint8Array.of(2, 0x76, 0x74, 0, 0, 1),
      mtu: 1500,
      queueSize: 256,
      taps: [ifname],
    };
    const running = runNet(options, { stdout: () => undefined, stderr: (l) => void log.push(l) }, { stop: stopped, onSwitch: (s) => (sw = s), onDevice: (d, port) => devices.set(port, d) });
    try {
      for (const end = Date.now() + 10_000; !isSocket(sockA) || !isSocket(sockB); ) {
        if (Date.now() > end) throw new Error(`the back-end did not listen: ${log.join('')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      ns.adopt(ifname, '10.94.0.1/24', '02:00:00:94:00:01');
      const nic = (sock: string): string[] => [
        '-chardev', `socket,id=c0,path=${sock}`,
        '-netdev', 'vhost-user,id=n0,chardev=c0',
        // vectors=0: QEMU 7.2 under TCG crashes starting vhost-user-net with MSI-X (QEMU-NOTES.md).
        '-device', `virtio-net-pci,netdev=n0,vectors=0,mac=${GUEST_MAC},id=nic0`,
      ];
      let okOnSource = 0;
      const mac = Uint8Array.from(GUEST_MAC.split(':').map((h) => parseInt(h, 16)));
      // Where the switch has the guest's MAC at each ping answered on the destination (read while
      // the guest runs: a port forgets its addresses when its front-end goes away).
      const learnedAt: (string | undefined)[] = [];
      const run = await runMigration({
        modules: ['virtio_net'],
        script: SCRIPT,
        sourceArgs: nic(sockA),
        destinationArgs: nic(sockB),
        qmpSource: tmp.file('a.qmp'),
        qmpDestination: tmp.file('b.qmp'),
        migrationSocket: tmp.file('migrate.sock'),
        migrateWhen: (line) => (/^RESULT p\d+=ok$/.test(line) ? ++okOnSource : okOnSource) >= PINGS_BEFORE,
        progressOnDestination: (line) => {
          if (!/^RESULT p\d+=ok$/.test(line)) return false;
          learnedAt.push(sw!.lookup(mac)?.name);
          return true;
        },
        progressNeeded: PINGS_AFTER,
        timeoutMs: RUN_TIMEOUT_MS,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts net -----\n${log.join('').slice(-6000)}`, { cause: e });
      });
      const res = run.destination;
      const m = run.migration;
      t.diagnostic(`migration ${JSON.stringify({ status: m['status'], 'total-time': m['total-time'], downtime: m['downtime'] })}; answered ${res.results.get('answered')}, lost ${res.results.get('lost')}`);
      assert.equal(m['status'], 'completed');
      assert.ok(okOnSource >= PINGS_BEFORE, 'pings answered on the source');
      assert.ok(run.destinationProgress >= PINGS_AFTER, 'pings answered on the destination');
      assert.equal(res.results.get('final'), 'ok', res.output);
      // The switch learned the guest on the destination's port (socket index 1, named net1).
      assert.ok(learnedAt.length >= PINGS_AFTER && learnedAt.every((p) => p === 'net1'), `the guest MAC is on the destination port at each answered ping there: ${JSON.stringify(learnedAt)}`);
      const dest = devices.get(1);
      assert.ok(dest !== undefined && dest.stats.rxFrames > 0 && dest.stats.txFrames > 0, 'the destination port carried frames both ways');
      // A ping or two may be lost while the guest is stopped; most are answered.
      assert.ok(Number(res.results.get('lost')) <= 2, `lost pings: ${res.results.get('lost')}\n${res.output}`);
    } finally {
      stop();
      assert.equal(await running, EXIT.OK);
      ns.remove();
      await tmp.remove();
    }
  });
});
