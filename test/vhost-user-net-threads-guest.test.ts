/**
 * `virtio-ts net --threads 2 --queue-pairs 2` (runNet in this process, so the test reads the
 * counters the threads write) serving two real Linux guests (QEMU 7.2 q35, 2 vCPUs each,
 * `-netdev vhost-user,queues=2` with virtio-net-pci mq=on): guest 1's port is served on ring
 * thread 0, guest 2's on ring thread 1, each thread with its own switch; frames between the
 * guests cross the SharedArrayBuffer rings. Each guest pings the other (two address pairs) until
 * answered and pinged, then pings from each vCPU (taskset) so both queue pairs transmit, then
 * guest 2 sends guest 1 4 MiB over TCP (busybox nc) and the sha256 sums match. Checked on the
 * counters: both pairs of both ports carried frames (kicks on both transmit queues, used
 * receive buffers on both receive queues), each written by its port's thread, and both rings
 * between the threads carried frames, none dropped. `vectors=0` under TCG (QEMU-NOTES.md).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NetOptions } from '../src/devices/net/cli.js';
import { runNet } from '../src/devices/net/net-command.js';
import { meshRingCounters } from '../src/devices/net/net-threads-command.js';
import type { SwitchMeshSpec } from '../src/devices/net/switch-mesh.js';
import type { QueueStats } from '../src/device/queue-stats.js';
import { EXIT } from '../src/cli/options.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { ensureGuestDeps, isSocket, makeTempDir, runDeviceGuest, type TempDir } from './support/guest.js';

const deps = ensureGuestDeps();
function missing(): string | null {
  if (!deps.ok) return deps.reason;
  if (!nativePlatformAvailable()) return 'native addon not built';
  return null;
}
const why = missing();
if (why !== null && process.env['CI'] === 'true') throw new Error(`CI=true: ${why}`);
const skip = why ?? false;

const TRANSFER_BYTES = 4 << 20;

/** Guest `me`: eth0 up with 10.0.0.me and 10.0.1.me; pings the peer on both until answered and pinged; pings from each vCPU; then the TCP end. */
function script(me: number, peer: number): string {
  return `
wait_path /sys/class/net/eth0 || fail "no eth0"
ip link set eth0 up || fail "link up"
ip addr add 10.0.0.${me}/24 dev eth0 || fail "addr"
ip addr add 10.0.1.${me}/24 dev eth0 || fail "addr 2"
result queues "$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l)"
pinged=0
answered=0
for i in $(seq 1 150); do
  if [ $answered = 0 ] && ping -c 1 -W 1 10.0.0.${peer} >/dev/null 2>&1 && ping -c 1 -W 1 10.0.1.${peer} >/dev/null 2>&1; then answered=1; fi
  echos=$(awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp)
  [ "\${echos:-0}" -gt 1 ] && pinged=1
  [ $answered = 1 ] && [ $pinged = 1 ] && break
  [ $answered = 1 ] && read -t 1 x </dev/zero 2>/dev/null
done
result answered $answered
result pinged $pinged
for c in 0 1; do for p in 10.0.0.${peer} 10.0.1.${peer}; do taskset -c $c ping -c 15 -i 0.2 -W 1 $p >/dev/null 2>&1 & done; done
wait
${me === 1 ? RECEIVER : SENDER}`;
}

const RECEIVER = `
timeout 240 nc -l -p 5000 > /tmp/rx || fail "nc listen"
result rx_bytes "$(wc -c < /tmp/rx)"
result rx_sha "$(sha256sum /tmp/rx | cut -d' ' -f1)"
`;
const SENDER = `
dd if=/dev/urandom of=/tmp/tx bs=65536 count=${TRANSFER_BYTES / 65536} 2>/dev/null || fail "dd"
result tx_sha "$(sha256sum /tmp/tx | cut -d' ' -f1)"
sent=0
for i in $(seq 1 90); do
  if nc -w 5 10.0.0.1 5000 < /tmp/tx; then sent=1; break; fi
  read -t 1 x </dev/zero 2>/dev/null
done
result sent $sent
`;

describe('virtio-ts net --threads 2: two real Linux guests on ports served by two ring threads (QEMU 7.2 vhost-user-net, 2 queue pairs)', { skip, timeout: 900_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-nthreads-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('q35, 2 vCPUs, mq: the guests ping each other and move 4 MiB over TCP (sha256 equal); both pairs of both ports, on both threads, carry frames', async (t) => {
    const socks = [tmp.file('n1.sock'), tmp.file('n2.sock')];
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    const log: string[] = [];
    let mesh: SwitchMeshSpec | null = null;
    let stats: readonly QueueStats[] = [];
    const options: NetOptions = {
      socketPath: socks[0]!,
      fd: null,
      verbosity: 2,
      socketPaths: socks,
      mac: Uint8Array.of(2, 0x76, 0x74, 0, 0, 1),
      mtu: 1500,
      queueSize: 256,
      queuePairs: 2,
      threads: 2,
    };
    const running = runNet(
      options,
      { stdout: () => undefined, stderr: (l) => void log.push(l) },
      {
        stop: stopped,
        onPool: (_p, m, s) => {
          mesh = m;
          stats = s;
        },
      },
    );
    try {
      for (const end = Date.now() + 20_000; !socks.every(isSocket); ) {
        if (Date.now() > end) throw new Error(`the back-end did not listen: ${log.join('')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const guest = (i: number) =>
        runDeviceGuest({
          devices: ['net'],
          memfd: true,
          smp: 2,
          append: 'no_timer_check',
          qemuArgs: ['-chardev', `socket,id=c0,path=${socks[i - 1]}`, '-netdev', 'vhost-user,id=n0,chardev=c0,queues=2'],
          qemuDevices: [`virtio-net-pci,netdev=n0,vectors=0,mq=on,mac=52:54:00:00:00:0${i}`],
          script: script(i, 3 - i),
          checks: { results: { answered: '1', pinged: '1', queues: '2' } },
          timeoutMs: 600_000,
        }).catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\n----- virtio-ts net -----\n${log.join('').slice(-4000)}`, { cause: e });
        });
      const [g1, g2] = await Promise.all([guest(1), guest(2)]);
      t.diagnostic(`guest 1 /init at ${g1.bootMs.toFixed(0)} ms, guest 2 at ${g2.bootMs.toFixed(0)} ms`);
      assert.equal(g2.results.get('sent'), '1');
      assert.equal(g1.results.get('rx_bytes'), String(TRANSFER_BYTES));
      assert.match(g2.results.get('tx_sha') ?? '', /^[0-9a-f]{64}$/);
      assert.equal(g1.results.get('rx_sha'), g2.results.get('tx_sha'), 'sha256 equal on both ends');
      // Queues: receiveq1 0, transmitq1 1, receiveq2 2, transmitq2 3, controlq 4 (QEMU's).
      for (const port of [0, 1]) {
        const s = stats[port]!;
        const kicks = [0, 1, 2, 3, 4].map((q) => s.value(q, 'kicks'));
        const used = [0, 1, 2, 3, 4].map((q) => s.value(q, 'completed'));
        t.diagnostic(`port ${port} (thread ${port}): kicks ${JSON.stringify(kicks)} completed ${JSON.stringify(used)}`);
        assert.ok(kicks[1]! > 0 && kicks[3]! > 0, `port ${port}: both transmit queues used: ${JSON.stringify(kicks)}`);
        assert.ok(used[0]! > 0 && used[2]! > 0, `port ${port}: both receive queues got frames: ${JSON.stringify(used)}`);
        assert.equal(kicks[4], 0, 'QEMU keeps the control queue');
      }
      const rings = meshRingCounters(mesh!);
      t.diagnostic(`thread rings ${JSON.stringify(rings)}`);
      // Guest 2 (port 1, thread 1) sends to guest 1 (port 0, thread 0): every byte of the transfer
      // crosses ring 1->0 in frames of at most 1514 bytes (GSO is cut before the ring); the
      // other way go the ACKs (their count depends on the guests' delayed ACKs and GRO), pings, ARP.
      const data = rings.find((r) => r.from === 1 && r.to === 0);
      const acks = rings.find((r) => r.from === 0 && r.to === 1);
      assert.ok(data && acks, JSON.stringify(rings));
      assert.ok(data.sent >= TRANSFER_BYTES / 1514, `ring 1->0 carried the transfer: ${data.sent} frames`);
      assert.ok(acks.sent > 0, `ring 0->1 carried the acknowledgements: ${acks.sent} frames`);
      stop();
      assert.equal(await running, EXIT.OK);
      assert.ok(socks.every((s) => !isSocket(s)), 'sockets removed');
    } finally {
      stop();
      await running.catch(() => undefined);
    }
  });
});
