/**
 * `virtio-ts net` serving two real Linux guests (QEMU 7.2 q35, `-netdev vhost-user` with
 * virtio-net-pci) on one switch: each guest brings up eth0 and pings the other, and waits until
 * it has also been pinged (the kernel's ICMP InEchos counter), so both directions are proven
 * while both guests run; then guest 2 sends guest 1 4 MiB over TCP (busybox nc) and the sha256
 * sums of both ends match. `vectors=0` is required under TCG (../shared/QEMU-NOTES.md).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureGuestDeps, isSocket, makeTempDir, repoRoot, runDeviceGuest, startProcess, waitForPath, type TempDir } from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** Brings eth0 up as 10.0.0.<me>/24, pings 10.0.0.<peer> until answered and pinged back (bounded). */
function pingScript(me: number, peer: number): string {
  return `
wait_path /sys/class/net/eth0 || fail "no eth0"
ip link set eth0 up || fail "link up"
ip addr add 10.0.0.${me}/24 dev eth0 || fail "addr"
result mac "$(cat /sys/class/net/eth0/address)"
pinged=0
answered=0
for i in $(seq 1 120); do
  if [ $answered = 0 ] && ping -c 1 -W 1 10.0.0.${peer} >/tmp/ping.out 2>&1; then answered=1; fi
  echos=$(awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp)
  [ "\${echos:-0}" -gt 0 ] && pinged=1
  [ $answered = 1 ] && [ $pinged = 1 ] && break
  [ $answered = 1 ] && read -t 1 x </dev/zero 2>/dev/null
done
result answered $answered
result pinged $pinged
result rx_packets "$(cat /sys/class/net/eth0/statistics/rx_packets)"
${me === 1 ? RECEIVER : SENDER}`;
}

const TRANSFER_BYTES = 4 << 20;
/** Guest 1 receives a TCP stream with busybox nc and reports its sha256 and length. */
const RECEIVER = `
timeout 180 nc -l -p 5000 > /tmp/rx || fail "nc listen"
result rx_bytes "$(wc -c < /tmp/rx)"
result rx_sha "$(sha256sum /tmp/rx | cut -d' ' -f1)"
`;
/** Guest 2 sends 4 MiB of random bytes once guest 1 listens (connect refused: retry, bounded). */
const SENDER = `
dd if=/dev/urandom of=/tmp/tx bs=65536 count=${TRANSFER_BYTES / 65536} 2>/dev/null || fail "dd"
result tx_sha "$(sha256sum /tmp/tx | cut -d' ' -f1)"
sent=0
for i in $(seq 1 60); do
  if nc -w 5 10.0.0.1 5000 < /tmp/tx; then sent=1; break; fi
  read -t 1 x </dev/zero 2>/dev/null
done
result sent $sent
`;

describe('virtio-ts net: two real Linux guests on one switch (QEMU 7.2 vhost-user-net)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vunet-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('q35: guest 1 and guest 2 ping each other and move 4 MiB over TCP (busybox nc, sha256 on both ends) through virtio-ts net', async (t) => {
    const socks = [tmp.file('n1.sock'), tmp.file('n2.sock')];
    const be = startProcess(process.execPath, [CLI, 'net', '--socket-path', socks[0]!, '--socket-path', socks[1]!]);
    try {
      for (const s of socks) await waitForPath(s, { process: be, timeoutMs: 15_000 });
      const guest = (i: number) =>
        runDeviceGuest({
          devices: ['net'],
          memfd: true,
          // Two TCG guests on a loaded 2-core host: the IO-APIC timer check can miss its ticks and
          // panic ("IO-APIC + timer doesn't work"); KVM guests skip it the same way.
          append: 'no_timer_check',
          qemuArgs: ['-chardev', `socket,id=c0,path=${socks[i - 1]}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
          qemuDevices: [`virtio-net-pci,netdev=n0,vectors=0,mac=52:54:00:00:00:0${i}`],
          script: pingScript(i, 3 - i),
          checks: { results: { answered: '1', pinged: '1', mac: `52:54:00:00:00:0${i}` } },
          timeoutMs: 240_000,
        }).catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\n----- virtio-ts net -----\n${be.output()}`, { cause: e });
        });
      const [g1, g2] = await Promise.all([guest(1), guest(2)]);
      t.diagnostic(`guest 1 /init at ${g1.bootMs.toFixed(0)} ms, guest 2 at ${g2.bootMs.toFixed(0)} ms`);
      for (const g of [g1, g2]) assert.ok(Number(g.results.get('rx_packets')) >= 2, 'frames were received');
      // A TCP transfer through the switch arrives whole.
      assert.equal(g2.results.get('sent'), '1');
      assert.equal(g1.results.get('rx_bytes'), String(TRANSFER_BYTES));
      assert.match(g2.results.get('tx_sha') ?? '', /^[0-9a-f]{64}$/);
      assert.equal(g1.results.get('rx_sha'), g2.results.get('tx_sha'), 'sha256 equal on both ends');
      const ended = await be.stop(5000);
      assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
      assert.ok(socks.every((s) => !isSocket(s)), 'back-end removed its sockets');
    } finally {
      await be.stop();
    }
  });
});
