/**
 * `virtio-ts net`: option parsing, and serving: two vhost-user front-ends (virtio-ts's own, each
 * with the NetDriver) on two sockets of one `runNet` exchange frames through its switch; the
 * built CLI process serves several sockets and ends cleanly on SIGTERM, removing them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { isSocket, runCli, until, withDir } from '../../cli/cli-test-helpers.js';
import { CliError, EXIT } from '../../cli/options.js';
import { loadPlatform } from '../../cli/serve.js';
import { DeviceId } from '../../spec/device-id.js';
import { NetF } from '../../spec/net.js';
import { startVhostUserDriver, VhostUserDriverTransport } from '../../vhost-user/frontend-transport.js';
import { DEFAULT_NET_POLL_US, MAX_NET_POLL_US, NET_CLI, type NetOptions } from './cli.js';
import { MAX_POLL_US } from '../../vhost-user/backend.js';
import { runNet } from './net-command.js';
import { NetDriver } from './net-driver.js';
import type { NetSwitch } from './switch.js';

function parseNet(argv: string[]): NetOptions {
  const p = parseCommandLine(['net', ...argv]);
  assert.equal(p.kind, 'device');
  return (p as unknown as { options: NetOptions }).options;
}

function frame(dst: Uint8Array, src: Uint8Array, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  for (let i = 14; i < len; i++) f[i] = (i + seed) & 0xff;
  return f;
}

describe('virtio-ts net', { timeout: 60_000 }, () => {
  it('parses repeated --socket-path, --mac, --mtu, --queue-size and refuses bad values', () => {
    const o = parseNet(['--socket-path', '/tmp/a.sock', '--socket-path', '/tmp/b.sock', '--mac', '52:54:00:00:00:10', '--mtu', '9000', '--queue-size', '512']);
    assert.deepEqual(o.socketPaths, ['/tmp/a.sock', '/tmp/b.sock']);
    assert.equal(o.socketPath, '/tmp/a.sock');
    assert.deepEqual(o.mac, Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x10));
    assert.equal(o.mtu, 9000);
    assert.equal(o.queueSize, 512);
    const d = parseNet(['--socket-path', '/tmp/a.sock']);
    assert.equal(d.mtu, 1500);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--mac', '01:00:00:00:00:01']), /unicast/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--mtu', '67']), /out of range/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--socket-path', '/tmp/a.sock']), /twice/);
    assert.throws(() => parseNet(['--mtu', '1500']), /--socket-path/);
  });

  it('parses --queue-pairs, repeated --tap and --pcap, and refuses bad values', () => {
    const o = parseNet(['--socket-path', '/tmp/a.sock', '--queue-pairs', '2', '--tap', 'vts0', '--tap', 'vts1', '--pcap', '/tmp/x.pcap']);
    assert.equal(o.queuePairs, 2);
    assert.deepEqual(o.taps, ['vts0', 'vts1']);
    assert.equal(o.pcap, '/tmp/x.pcap');
    const d = parseNet(['--socket-path', '/tmp/a.sock']);
    assert.deepEqual([d.queuePairs, d.taps, d.pcap], [1, [], undefined]);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--queue-pairs', '0']), /out of range/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--queue-pairs', '65']), /out of range/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--tap', 'a/b']), /interface name/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--tap', 'sixteen-chars-xx']), /interface name/);
    assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--tap', 'x', '--tap', 'x']), /twice/);
  });

  it('parses --poll-us: 0..1000 microseconds, absent (the command default) when not given; the usage names it', () => {
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock', '--poll-us', '0']).pollUs, 0);
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock', '--poll-us=1000']).pollUs, MAX_NET_POLL_US);
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock', '--poll-us', '20', '--threads', '1']).pollUs, 20);
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock']).pollUs, undefined);
    for (const bad of ['-1', '1001', 'x', '1.5', '']) {
      assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', '--poll-us', bad]), CliError, bad);
    }
    assert.ok(DEFAULT_NET_POLL_US >= 0 && DEFAULT_NET_POLL_US <= MAX_NET_POLL_US);
    assert.equal(MAX_NET_POLL_US, MAX_POLL_US, 'the CLI bound is the back-end\'s');
    assert.match(NET_CLI.usage, /--poll-us N/);
  });

  it('parses --no-offload (names, commas, repeats) and --vlan (socket index or TAP name, tagged-only), and refuses bad values', () => {
    const o = parseNet(['--socket-path', '/tmp/a.sock', '--socket-path', '/tmp/b.sock', '--tap', 'vts0', '--no-offload', 'tso4,ufo', '--no-offload', 'stats', '--vlan', '0=5', '--vlan', '1=5,6,tagged-only', '--vlan', 'vts0=4095']);
    assert.equal(o.withoutFeatures, NetF.HOST_TSO4 | NetF.GUEST_TSO4 | NetF.HOST_UFO | NetF.GUEST_UFO | NetF.DEVICE_STATS);
    assert.deepEqual(o.vlans, [
      { port: 0, vlans: [5], untagged: true },
      { port: 1, vlans: [5, 6], untagged: false },
      { port: 'vts0', vlans: [4095], untagged: true },
    ]);
    const d = parseNet(['--socket-path', '/tmp/a.sock']);
    assert.deepEqual([d.withoutFeatures, d.vlans], [0n, []]);
    assert.equal(d.inOrder, undefined);
    assert.equal(parseNet(['--socket-path', '/tmp/a.sock', '--in-order']).inOrder, true, '--in-order');
    const bad: [string[], RegExp][] = [
      [['--no-offload', 'tso5'], /not one of/],
      [['--no-offload', ''], /not one of/],
      [['--vlan', '1=5'], /socket index 0\.\.0/],
      [['--vlan', 'nope=5'], /--tap name/],
      [['--vlan', '5'], /PORT/],
      [['--vlan', '0=4096'], /VLAN ids/],
      [['--vlan', '0=-1'], /VLAN ids/],
      [['--vlan', '0=tagged-only'], /VLAN ids/],
      [['--vlan', '0=1', '--vlan', '0=2'], /twice/],
    ];
    for (const [args, re] of bad) assert.throws(() => parseNet(['--socket-path', '/tmp/a.sock', ...args]), re, args.join(' '));
  });

  it('--no-offload removes the features and their dependents from the offer; --vlan puts the sockets\' ports in VLANs', async () => {
    await withDir(async (dir) => {
      const platform = loadPlatform();
      const socks = [join(dir, 'a.sock'), join(dir, 'b.sock')];
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((r) => (stop = r));
      let sw: NetSwitch | null = null;
      const io = { stdout: () => undefined, stderr: () => undefined };
      const options = parseNet([...socks.flatMap((s) => ['--socket-path', s]), '--no-offload', 'csum,tso6', '--vlan', '0=5', '--vlan', '1=5,6,tagged-only']);
      const running = runNet(options, io, { platform, stop: stopped, onSwitch: (s) => (sw = s) });
      for (const end = Date.now() + 10_000; !socks.every(isSocket); ) {
        assert.ok(Date.now() < end, 'the sockets appear');
        await new Promise((r) => setTimeout(r, 10));
      }
      const ts: VhostUserDriverTransport[] = [];
      try {
        const drivers: NetDriver[] = [];
        for (const s of socks) {
          const t = await VhostUserDriverTransport.connect(s, { deviceId: DeviceId.NET, platform });
          ts.push(t);
          // Without CTRL_VLAN the device filters no VLAN itself: the switch's membership decides.
          const vd = await startVhostUserDriver(t, { wantedFeatures: NetDriver.type.wantedFeatures & ~NetF.CTRL_VLAN, driverType: NetDriver.type });
          // csum gone, and with it every host segmentation offload (5.1.3.1); tso6 both ways.
          assert.equal(vd.features & (NetF.CSUM | NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_UFO | NetF.HOST_USO | NetF.HOST_ECN | NetF.GUEST_TSO6), 0n);
          assert.equal(vd.features & (NetF.GUEST_CSUM | NetF.GUEST_TSO4), NetF.GUEST_CSUM | NetF.GUEST_TSO4);
          drivers.push(new NetDriver(vd.context));
        }
        const [a, b] = drivers as [NetDriver, NetDriver];
        const tagged = (vid: number, seed: number): Uint8Array => {
          const f = frame(b.mac, a.mac, 100, seed);
          f.copyWithin(16, 12, 96);
          f.set([0x81, 0x00, vid >> 8, vid & 0xff], 12);
          return f;
        };
        const ports = (sw as NetSwitch | null)!.attached;
        await a.send(frame(b.mac, a.mac, 100, 1)); // untagged: b is tagged-only
        await a.send(tagged(6, 2)); // a is not in VLAN 6: dropped at a
        const inFive = tagged(5, 3);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no frame for b in 10 s')), 10_000)));
        const [, got] = await Promise.race([Promise.all([a.send(inFive), b.receive()]), late]).finally(() => clearTimeout(timer));
        assert.deepEqual(got.data, inFive, 'the first frame b gets is the one in VLAN 5');
        assert.equal(b.pendingFrames, 0);
        assert.deepEqual(ports.map((p) => p.counters.dropped), [1, 0]);
        for (const d of drivers) d.detach();
      } finally {
        for (const t of ts) t.close();
        stop();
      }
      assert.equal(await running, EXIT.OK);
    });
  });

  it('two front-ends on two sockets exchange frames through the switch, both ways; --metrics counts each port\'s queues (device net0, net1)', async () => {
    await withDir(async (dir) => {
      const platform = loadPlatform();
      const socks = [join(dir, 'a.sock'), join(dir, 'b.sock')];
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((r) => (stop = r));
      let sw: NetSwitch | null = null;
      const errors: string[] = [];
      const io = { stdout: () => undefined, stderr: (l: string) => void errors.push(l) };
      const options: NetOptions = {
        socketPath: socks[0]!,
        fd: null,
        verbosity: 2,
        socketPaths: socks,
        mac: Uint8Array.of(2, 0, 0, 0, 0, 1),
        mtu: 1500,
        queueSize: 256,
        metrics: { host: '127.0.0.1', port: 0 },
      };
      const running = runNet(options, io, { platform, stop: stopped, onSwitch: (s) => (sw = s) });
      // The servers listen before runNet waits for the stop: poll for the socket files, bounded.
      for (const end = Date.now() + 10_000; !socks.every(isSocket); ) {
        assert.ok(Date.now() < end, 'the sockets appear');
        await new Promise((r) => setTimeout(r, 10));
      }
      const ts: VhostUserDriverTransport[] = [];
      try {
        const drivers: NetDriver[] = [];
        for (const s of socks) {
          const t = await VhostUserDriverTransport.connect(s, { deviceId: DeviceId.NET, platform });
          ts.push(t);
          const vd = await startVhostUserDriver(t, { wantedFeatures: NetDriver.type.wantedFeatures, driverType: NetDriver.type });
          drivers.push(new NetDriver(vd.context));
        }
        const [a, b] = drivers as [NetDriver, NetDriver];
        assert.notDeepEqual(a.mac, b.mac, 'each port has its own MAC');
        const ab = frame(b.mac, a.mac, 1514, 1);
        const [, gotB] = await Promise.all([a.send(ab), b.receive()]);
        assert.deepEqual(gotB.data, ab);
        const ba = frame(a.mac, b.mac, 60, 2);
        const [, gotA] = await Promise.all([b.send(ba), a.receive()]);
        assert.deepEqual(gotA.data, ba);
        const ports = (sw as NetSwitch | null)!.attached;
        assert.equal(ports.length, 2);
        assert.deepEqual(ports.map((p) => p.counters.rxFrames), [1, 1]);
        const url = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(errors.join(''))?.[1];
        assert.ok(url, 'the metrics endpoint is logged');
        // Without --poll-us each port's rings are busy-polled with the command's default window.
        assert.equal((errors.join('').match(new RegExp(`poll ${DEFAULT_NET_POLL_US} us\\)`, 'g')) ?? []).length, 2, 'both ports poll with the default window');
        assert.ok(DEFAULT_NET_POLL_US > 0, 'polling is on by default');
        const text = await (await fetch(url)).text();
        const sample = (device: string, queue: number, name: string): number => {
          const m = new RegExp(`^${name}\\{device="${device}",queue="${queue}"\\} (\\S+)$`, 'm').exec(text);
          assert.ok(m, `${name} of ${device} queue ${queue}`);
          return Number(m[1]);
        };
        // Port 0 sent the 1514-byte frame on its transmit queue (1), port 1 took it on its receive queue (0).
        assert.equal(sample('net0', 1, 'virtio_queue_requests_total'), 1);
        assert.ok(sample('net0', 1, 'virtio_queue_read_bytes_total') >= 1514);
        assert.ok(sample('net1', 0, 'virtio_queue_written_bytes_total') >= 1514);
        assert.equal(sample('net1', 1, 'virtio_queue_requests_total'), 1);
        for (const d of drivers) d.detach();
      } finally {
        for (const t of ts) t.close();
        stop();
      }
      assert.equal(await running, EXIT.OK);
      assert.ok(socks.every((s) => !existsSync(s)), 'sockets removed');
    });
  });

  it('the built CLI serves every --socket-path and ends cleanly on SIGTERM, removing them', async () => {
    await withDir(async (dir) => {
      const socks = [join(dir, 'x.sock'), join(dir, 'y.sock'), join(dir, 'z.sock')];
      const r = await runCli(['net', ...socks.flatMap((s) => ['--socket-path', s])], async (child, err) => {
        await until(() => socks.every(isSocket) && (err().match(/serving virtio-net port/g) ?? []).length === 3, 10_000, 'the sockets', child);
        child.kill('SIGTERM');
      });
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: EXIT.OK, signal: null }, r.err);
      assert.ok(socks.every((s) => !existsSync(s)), 'sockets removed');
    });
  });

  const tapMissing = process.getuid?.() !== 0 ? 'not root' : !existsSync('/dev/net/tun') ? '/dev/net/tun missing' : null;
  it('the built CLI attaches --tap (the interface exists while it runs, gone after) and writes --pcap; ends cleanly', { skip: tapMissing !== null && process.env['CI'] !== 'true' ? tapMissing : false }, async () => {
    assert.equal(tapMissing, null);
    await withDir(async (dir) => {
      const sock = join(dir, 'x.sock');
      const pcap = join(dir, 'c.pcap');
      const ifname = `vtsc${process.pid.toString(36)}`.slice(0, 15);
      const ipLink = (): string => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8', timeout: 10_000 });
      const r = await runCli(['net', '--socket-path', sock, '--tap', ifname, '--pcap', pcap, '-v'], async (child, err) => {
        await until(() => isSocket(sock) && /TAP port .* attached/.test(err()), 10_000, 'the socket and the TAP', child);
        assert.match(ipLink(), new RegExp(`: ${ifname}[:@]`));
        child.kill('SIGTERM');
      });
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: EXIT.OK, signal: null }, r.err);
      assert.doesNotMatch(ipLink(), new RegExp(`: ${ifname}[:@]`), 'the TAP went away with the process');
      const f = readFileSync(pcap);
      assert.equal(f.length >= 24 && f.readUInt32LE(0) === 0xa1b2c3d4 && f.readUInt32LE(20) === 1, true, 'a pcap file, Ethernet');
    });
  });
});
