/**
 * Guest-to-guest TCP throughput with iperf3 (copied into each guest from the host), two q35
 * guests under QEMU 7.2 TCG: through `virtio-ts net` (two vhost-user sockets on its switch)
 * against the same two guests on QEMU's own `-netdev socket` link (UDP on 127.0.0.1, QEMU's
 * virtio-net model in each). The socket link has no vnet header, so QEMU offers the guests no
 * checksum or segmentation offload there; virtio-ts is measured with its offloads and with
 * `--no-offload csum,guest-csum` (which takes every GSO feature with it), the like-for-like
 * figure. Under TCG the guests' CPUs bound both, so the figure to read is the
 * ratio of the two in the same conditions, not the absolute rate.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/net-guest-iperf.js [seconds=8] [rounds=1]
 *
 * Needs the guest kit (kernel, busybox) with its tools part and iperf3 on the host.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { GuestKitPart, ensureGuestKit, makeTempDir, repoRoot, runDeviceGuest, startProcess, waitForPath } from '../test/support/guest.js';

const seconds = Number(process.argv[2] ?? 8);
const rounds = Number(process.argv[3] ?? 1);
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

function script(me: number): string {
  const peer = 3 - me;
  const common = `
wait_path /sys/class/net/eth0 || fail "no eth0"
ip link set eth0 up || fail "link up"
ip addr add 10.0.0.${me}/24 dev eth0 || fail "addr"
ok=0
for i in $(seq 1 120); do if ping -c 1 -W 1 10.0.0.${peer} >/dev/null 2>&1; then ok=1; break; fi; done
result ping $ok
`;
  // Guest 1 serves one test; guest 2 runs it once the server answers (retries bounded).
  return me === 1
    ? `${common}
timeout ${seconds + 120} iperf3 -s -1 >/tmp/s.out 2>&1
result served $?
`
    : `${common}
rate=0
for i in $(seq 1 30); do
  if iperf3 -c 10.0.0.1 -t ${seconds} -f k >/tmp/c.out 2>&1; then rate=$(awk '/receiver/ {print $(NF-2)}' /tmp/c.out); break; fi
  read -t 1 x </dev/zero 2>/dev/null
done
result kbps $rate
`;
}

/** virtio-ts with every offload, virtio-ts without any (as the socket link, which has no vnet header), QEMU's socket link. */
type Kind = 'virtio-ts' | 'virtio-ts-no-offload' | 'socket';

async function pair(kind: Kind, tmp: string): Promise<number> {
  const socks = [join(tmp, 'n1.sock'), join(tmp, 'n2.sock')];
  const noOffload = kind === 'virtio-ts-no-offload' ? ['--no-offload', 'csum,guest-csum'] : [];
  const be = kind === 'socket' ? null : startProcess(process.execPath, [CLI, 'net', '--socket-path', socks[0]!, '--socket-path', socks[1]!, ...noOffload]);
  try {
    if (be !== null) for (const s of socks) await waitForPath(s, { process: be, timeoutMs: 15_000 });
    const base = 20000 + (process.pid % 20000);
    const netdev = (i: number): string[] =>
      kind !== 'socket'
        ? ['-chardev', `socket,id=c0,path=${socks[i - 1]}`, '-netdev', 'vhost-user,id=n0,chardev=c0']
        : ['-netdev', `socket,id=n0,udp=127.0.0.1:${base + 3 - i},localaddr=127.0.0.1:${base + i}`];
    const guest = (i: number) =>
      runDeviceGuest({
        devices: ['net'],
        memfd: true,
        append: 'no_timer_check',
        userspace: ['/usr/bin/iperf3'],
        qemuArgs: netdev(i),
        qemuDevices: [`virtio-net-pci,netdev=n0,vectors=0,mac=52:54:00:00:00:0${i}`],
        script: script(i),
        checks: { results: { ping: '1' } },
        timeoutMs: (seconds + 240) * 1000,
      });
    const [, g2] = await Promise.all([guest(1), guest(2)]);
    return Number(g2.results.get('kbps') ?? 0);
  } finally {
    await be?.stop();
  }
}

async function main(): Promise<void> {
  ensureGuestKit([GuestKitPart.TOOLS]);
  const tmp = await makeTempDir('vts-iperf-');
  try {
    for (let r = 0; r < rounds; r++) {
      const load0 = loadavg()[0]!;
      const vts = await pair('virtio-ts', tmp.path);
      const plain = await pair('virtio-ts-no-offload', tmp.path);
      const sock = await pair('socket', tmp.path);
      const load1 = loadavg()[0]!;
      const mbit = (k: number): string => `${(k / 1000).toFixed(1)} Mbit/s`;
      console.log(
        `round ${r + 1}: virtio-ts net ${mbit(vts)} (offloads), ${mbit(plain)} (--no-offload csum,guest-csum); -netdev socket ${mbit(sock)}; ratios ${(vts / sock).toFixed(2)} and ${(plain / sock).toFixed(2)}; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}`,
      );
    }
  } finally {
    await tmp.remove();
  }
}

await main();
