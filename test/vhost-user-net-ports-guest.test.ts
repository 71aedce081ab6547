/**
 * `virtio-ts net` (runNet, the CLI's serving code, in this process so the test can read the
 * devices' counters) with real Linux guests (QEMU 7.2, `-netdev vhost-user`) and TAP ports into
 * network namespaces this test makes and deletes (nothing leaves the machine):
 *  - q35, jumbo MTU: QEMU gives the guest host_mtu=9000 and tells the back-end with NET_SET_MTU;
 *    the guest pings the host side of the TAP and sends it 4 MiB over TCP (busybox nc to socat, sha256
 *    on both ends); the pcap capture shows frames above 1518 bytes;
 *  - q35 with 2 vCPUs and 2 queue pairs (mq=on, queues=2): pings pinned to each CPU towards two
 *    TAPs; both transmit queues and both receive queues carry frames (per-queue counters);
 *  - microvm (virtio-net-device on virtio-mmio) and a transitional virtio-net-pci driven by the
 *    legacy driver (disable-modern=on): each pings the TAP.
 * `vectors=0` on virtio-net-pci under TCG (../shared/QEMU-NOTES.md). Needs root and /dev/net/tun:
 * under CI=true their absence fails the file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../src/cli/options.js';
import type { NetOptions } from '../src/devices/net/cli.js';
import { runNet } from '../src/devices/net/net-command.js';
import type { NetSwitch } from '../src/devices/net/switch.js';
import type { VhostUserNetDevice } from '../src/devices/net/vhost-user-net-device.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { GuestKitPart, ensureGuestKit, isSocket, makeTempDir, runDeviceGuest, startProcess, type DeviceGuestOptions, type GuestResult, type TempDir } from './support/guest.js';

// socat (the TCP receiver in the namespace) comes with the guest kit's tools.
const deps = ensureGuestKit([GuestKitPart.TOOLS]);
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

const ip = (...a: string[]): string => execFileSync('ip', a, { encoding: 'utf8', timeout: 10_000 });
const tag = (process.pid % 100000).toString(36);

/** A network namespace for the host side of TAP ports; deleted by `remove`. */
class Netns {
  readonly name = `vts-net-${tag}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  constructor() {
    ip('netns', 'add', this.name);
  }
  /** Moves the TAP `ifname` (made by the back-end) in, with an address, MAC and MTU. */
  adopt(ifname: string, cidr: string, mac: string, mtu = 1500): void {
    ip('link', 'set', ifname, 'netns', this.name);
    ip('-n', this.name, 'link', 'set', ifname, 'address', mac, 'mtu', String(mtu));
    ip('-n', this.name, 'addr', 'add', cidr, 'dev', ifname);
    ip('-n', this.name, 'link', 'set', ifname, 'up');
  }
  remove(): void {
    try {
      ip('netns', 'del', this.name);
    } catch {
      /* already gone */
    }
  }
}

/** runNet in this process until `stop()`; the devices as front-ends connect. */
interface RunningNet {
  readonly sock: string;
  readonly sw: NetSwitch;
  readonly devices: VhostUserNetDevice[];
  /** The back-end's log lines. */
  readonly errors: string[];
  stop(): Promise<number>;
}

async function startNet(tmp: TempDir, opts: Partial<NetOptions>): Promise<RunningNet> {
  const sock = tmp.file(`n${Math.floor(Math.random() * 1e9)}.sock`);
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (stop = r));
  let sw: NetSwitch | null = null;
  const devices: VhostUserNetDevice[] = [];
  const errors: string[] = [];
  const options: NetOptions = { socketPath: sock, fd: null, verbosity: 2, socketPaths: [sock], mac: Uint8Array.of(2, 0x76, 0x74, 0, 0, 1), mtu: 1500, queueSize: 256, ...opts };
  const running = runNet(options, { stdout: () => undefined, stderr: (l) => void errors.push(l) }, { stop: stopped, onSwitch: (s) => (sw = s), onDevice: (d) => devices.push(d) });
  for (const end = Date.now() + 10_000; !isSocket(sock); ) {
    if (Date.now() > end) {
      stop();
      throw new Error(`the back-end did not listen: ${errors.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    sock,
    sw: sw!,
    devices,
    errors,
    stop: async () => {
      stop();
      return running;
    },
  };
}

/** Brings eth0 up with `addrs`, pings each `peers` entry until answered (bounded). */
function upAndPing(addrs: string[], peers: string[], mtu?: number): string {
  return `
wait_path /sys/class/net/eth0 || fail "no eth0"
${mtu !== undefined ? `ip link set eth0 mtu ${mtu} || fail "mtu"` : ''}
ip link set eth0 up || fail "link up"
${addrs.map((a) => `ip addr add ${a} dev eth0 || fail "addr ${a}"`).join('\n')}
result mtu "$(cat /sys/class/net/eth0/mtu)"
${peers
  .map(
    (p, i) => `ok=0
for i in $(seq 1 90); do if ping -c 1 -W 1 ${p} >/dev/null 2>&1; then ok=1; break; fi; done
result ping${i} $ok`,
  )
  .join('\n')}
`;
}

function guest(net: RunningNet, device: string, o: Partial<DeviceGuestOptions> & { script: string }): Promise<GuestResult> {
  const sock = net.sock;
  return runDeviceGuest({
    devices: ['net'],
    memfd: true,
    append: 'no_timer_check',
    qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-netdev', `vhost-user,id=n0,chardev=c0${o.smp !== undefined && o.smp > 1 ? `,queues=${o.smp}` : ''}`],
    qemuDevices: [device],
    timeoutMs: 150_000,
    ...o,
  }).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\n----- virtio-ts net -----\n${net.errors.join('').slice(-4000)}`, { cause: e });
  });
}

/** pcap records' original lengths. */
function pcapLengths(path: string): number[] {
  const f = readFileSync(path);
  const out: number[] = [];
  for (let at = 24; at + 16 <= f.length; ) {
    const incl = f.readUInt32LE(at + 8);
    out.push(f.readUInt32LE(at + 12));
    at += 16 + incl;
  }
  return out;
}

describe('virtio-ts net ports with real guests (QEMU 7.2 vhost-user-net, TAP into a namespace)', { skip, timeout: 900_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-netports-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('device/net/6: q35, MTU 9000: QEMU sends NET_SET_MTU, the guest pings the TAP host and moves 4 MiB of TCP to it in jumbo frames (sha256 equal, pcap shows them)', async (t) => {
    const ns = new Netns();
    const ifname = `vtsj${tag}`;
    const pcap = tmp.file('jumbo.pcap');
    const net = await startNet(tmp, { mtu: 9000, taps: [ifname], pcap });
    const rxFile = tmp.file('rx.bin');
    let rx: ReturnType<typeof startProcess> | null = null;
    try {
      ns.adopt(ifname, '10.91.0.1/24', '02:00:00:91:00:01', 9000);
      rx = startProcess('timeout', ['140', 'ip', 'netns', 'exec', ns.name, 'socat', '-u', 'TCP-LISTEN:5000,reuseaddr', `CREATE:${rxFile}`]);
      const bytes = 4 << 20;
      const res = await guest(net, 'virtio-net-pci,netdev=n0,vectors=0,host_mtu=9000,mac=52:54:00:91:00:02', {
        script: `${upAndPing(['10.91.0.2/24'], ['10.91.0.1'])}
dd if=/dev/urandom of=/tmp/tx bs=65536 count=${bytes / 65536} 2>/dev/null || fail "dd"
result tx_sha "$(sha256sum /tmp/tx | cut -d' ' -f1)"
sent=0
for i in $(seq 1 30); do if nc -w 5 10.91.0.1 5000 < /tmp/tx; then sent=1; break; fi; read -t 1 x </dev/zero 2>/dev/null; done
result sent $sent`,
        checks: { results: { mtu: '9000', ping0: '1', sent: '1' } },
      });
      const ended = await rx.exited;
      assert.equal(ended.code, 0, rx.output());
      const got = readFileSync(rxFile);
      assert.equal(got.length, bytes);
      assert.equal(createHash('sha256').update(got).digest('hex'), res.results.get('tx_sha'), 'sha256 equal on both ends');
      assert.equal(net.devices.at(-1)?.frontendMtu, 9000, 'QEMU told the back-end the MTU (NET_SET_MTU)');
      t.diagnostic(`boot ${res.bootMs.toFixed(0)} ms, total ${res.totalMs.toFixed(0)} ms`);
    } finally {
      await rx?.stop();
      assert.equal(await net.stop(), EXIT.OK);
      ns.remove();
    }
    const lens = pcapLengths(pcap);
    // Most of the 4 MiB went out in frames above 1518 bytes: MTU-sized jumbo frames, or GSO
    // frames when the guest's TCP stack batched them (TSO is negotiated), so count bytes, not
    // frames (a few segments, the tail of a burst, go out smaller).
    const bigBytes = lens.filter((l) => l > 1518).reduce((a, b) => a + b, 0);
    assert.ok(bigBytes >= 3 << 20, `${bigBytes} bytes in frames above 1518 bytes, of ${lens.length} frames`);
    // The capture sees frames as the switch accepts them: the guest negotiates TSO, so some are
    // GSO frames (up to 64 KiB) that the switch segments to the MTU for the TAP port; none is
    // larger than a GSO frame can be.
    assert.ok(Math.max(...lens) <= 65535 + 18, `largest captured frame ${Math.max(...lens)}`);
  });

  it('q35 with 2 vCPUs and 2 queue pairs: pings from each CPU to two TAPs; both pairs carry frames both ways (per-queue counters)', async (t) => {
    const ns = new Netns();
    const taps = [`vtsa${tag}`, `vtsb${tag}`];
    const net = await startNet(tmp, { queuePairs: 2, taps });
    try {
      // Two peers with their own MACs: received frames are steered by flow, so two flows.
      ns.adopt(taps[0]!, '10.92.1.1/24', '02:00:00:92:01:01');
      ns.adopt(taps[1]!, '10.92.2.1/24', '02:00:00:92:02:07');
      const res = await guest(net, 'virtio-net-pci,netdev=n0,vectors=0,mq=on,mac=52:54:00:92:00:02', {
        smp: 2,
        script: `${upAndPing(['10.92.1.2/24', '10.92.2.2/24'], ['10.92.1.1', '10.92.2.1'])}
result queues "$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l)"
for c in 0 1; do for p in 10.92.1.1 10.92.2.1; do taskset -c $c ping -c 20 -i 0.2 -W 1 $p >/dev/null 2>&1 & done; done
wait
result done 1`,
        checks: { results: { ping0: '1', ping1: '1', queues: '2', done: '1' } },
      });
      const dev = net.devices.at(-1)!;
      const { kicks, used } = dev.queueStats;
      t.diagnostic(`kicks ${JSON.stringify(kicks)} used ${JSON.stringify(used)}; boot ${res.bootMs.toFixed(0)} ms`);
      assert.equal(kicks.length, 5, '2 pairs and a control queue');
      assert.ok(used[0]! > 0 && used[2]! > 0, `both receive queues got frames: ${JSON.stringify(used)}`);
      assert.ok(kicks[1]! > 0 && kicks[3]! > 0, `both transmit queues were used: ${JSON.stringify(kicks)}`);
      assert.equal(kicks[4], 0, 'QEMU keeps the control queue');
    } finally {
      assert.equal(await net.stop(), EXIT.OK);
      ns.remove();
    }
  });

  it('microvm (virtio-net-device on virtio-mmio) and a transitional virtio-net-pci under the legacy driver each ping the TAP host', async (t) => {
    const ns = new Netns();
    const ifname = `vtsm${tag}`;
    const net = await startNet(tmp, { taps: [ifname] });
    try {
      ns.adopt(ifname, '10.93.0.1/24', '02:00:00:93:00:01');
      const mmio = await guest(net, 'virtio-net-device,netdev=n0,mac=52:54:00:93:00:02', {
        machine: 'microvm',
        script: `${upAndPing(['10.93.0.2/24'], ['10.93.0.1'])}
result version "$(cat /sys/bus/virtio/devices/virtio0/features | cut -c33)"`,
        checks: { results: { ping0: '1', version: '1' } },
      });
      const legacy = await guest(net, 'virtio-net-pci,netdev=n0,vectors=0,disable-legacy=off,disable-modern=on,mac=52:54:00:93:00:03', {
        script: `${upAndPing(['10.93.0.3/24'], ['10.93.0.1'])}
result version "$(cat /sys/bus/virtio/devices/virtio0/features | cut -c33)"`,
        checks: { results: { ping0: '1', version: '0' } },
      });
      t.diagnostic(`microvm boot ${mmio.bootMs.toFixed(0)} ms, legacy boot ${legacy.bootMs.toFixed(0)} ms`);
      assert.equal(net.devices.length, 2, 'one device per front-end connection');
      assert.ok(net.devices.every((d) => d.stats.rxFrames > 0 && d.stats.txFrames > 0));
    } finally {
      assert.equal(await net.stop(), EXIT.OK);
      ns.remove();
    }
  });
});
