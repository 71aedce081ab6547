/**
 * The switch's ports beyond virtio devices: VLAN membership, monitors, the pcap capture and the
 * Linux TAP port (against the kernel's own stack, in a network namespace this test makes and
 * deletes: nothing leaves the machine). The TAP test needs root and /dev/net/tun; under CI=true
 * their absence is a failure, not a skip.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadNativePlatform, nativePlatformAvailable } from '../../platform/native-platform.js';
import { NetPacket } from './packet.js';
import { PCAP_FILE_HEADER, PCAP_MAGIC, PcapPort } from './pcap-port.js';
import type { NetPort } from './port.js';
import { NetSwitch, UNTAGGED, frameVlan } from './switch.js';
import { TapPort } from './tap-port.js';
import { arpReplyFor, arpRequest, icmpEcho, ipv4, isIcmpEchoReply, isIcmpPortUnreachable, udpPartialChecksum } from './test-frames.js';

class Recorder implements NetPort {
  frames: Uint8Array[] = [];
  constructor(readonly name: string) {}
  deliver(p: NetPacket): void {
    this.frames.push(p.bytes());
  }
}

const mac = (last: number): Uint8Array => Uint8Array.of(0x02, 0, 0, 0, 0, last);
function frame(dst: Uint8Array, src: Uint8Array, vlan: number | null, len = 64): NetPacket {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  if (vlan === null) {
    f[12] = 0x08;
  } else {
    f.set([0x81, 0x00, vlan >> 8, vlan & 0xff, 0x08, 0x00], 12);
  }
  const p = new NetPacket(2048);
  p.set(f);
  return p;
}
const BCAST = new Uint8Array(6).fill(0xff);

describe('NetSwitch VLANs and monitors', () => {
  it('a port is a member of its VLANs only: tagged frames reach members, a non-member sender is dropped and counted', () => {
    const sw = new NetSwitch();
    const trunk = new Recorder('trunk');
    const v10 = new Recorder('v10');
    const v20 = new Recorder('v20');
    const plain = new Recorder('plain');
    const lt = sw.attach(trunk); // every VLAN, untagged too
    const l10 = sw.attach(v10, { vlans: [10], untagged: false });
    const l20 = sw.attach(v20, { vlans: [20] });
    sw.attach(plain, { vlans: [] });
    assert.equal(frameVlan(frame(BCAST, mac(1), 10)), 10);
    assert.equal(frameVlan(frame(BCAST, mac(1), null)), UNTAGGED);
    lt.send(frame(BCAST, mac(1), 10));
    assert.deepEqual([v10, v20, plain].map((r) => r.frames.length), [1, 0, 0]);
    lt.send(frame(BCAST, mac(1), null)); // untagged: v20 and plain take untagged frames, v10 does not
    assert.deepEqual([v10, v20, plain].map((r) => r.frames.length), [1, 1, 1]);
    l10.send(frame(BCAST, mac(2), 20)); // v10 is no member of 20
    assert.equal(l10.counters.dropped, 1);
    assert.equal(v20.frames.length, 1);
    l20.send(frame(mac(1), mac(3), 20)); // learned unicast to the trunk, a member of all
    assert.equal(trunk.frames.length, 1);
    l10.send(frame(mac(3), mac(2), 10)); // mac 3 learned on v20's port, which is no member of 10
    assert.equal(v20.frames.length, 1);
    assert.throws(() => sw.attach(new Recorder('bad'), { vlans: [4096] }), /VLAN id 4096/);
  });

  it('a monitor sees every accepted frame, flooded or unicast, and can be detached while ports run', () => {
    const sw = new NetSwitch();
    const [a, b] = [new Recorder('a'), new Recorder('b')];
    const [la, lb] = [sw.attach(a), sw.attach(b)];
    const mon = new Recorder('mon');
    const handle = sw.monitor(mon);
    la.send(frame(BCAST, mac(1), null));
    lb.send(frame(mac(1), mac(2), null));
    const runt = frame(mac(1), mac(2), null);
    runt.length = 8;
    lb.send(runt);
    assert.equal(mon.frames.length, 2, 'runts are not accepted, so not monitored');
    handle.detach();
    la.send(frame(mac(2), mac(1), null));
    assert.equal(mon.frames.length, 2);
    assert.equal(b.frames.length, 2);
  });
});

describe('PcapPort: a capture file of the switch', () => {
  it('writes the pcap header (Ethernet) and one record per forwarded frame with its timestamp; partial checksums completed in the record only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-pcap-'));
    try {
      const path = join(dir, 'c.pcap');
      const sw = new NetSwitch();
      const la = sw.attach(new Recorder('a'));
      sw.attach(new Recorder('b'));
      let t = 1_700_000_000_123;
      const cap = new PcapPort({ path, now: () => t });
      cap.captureFrom(sw);
      la.send(frame(BCAST, mac(1), null, 60));
      t += 1500;
      const p = frame(BCAST, mac(1), null, 100);
      p.needsCsum = true;
      p.csumStart = 34;
      p.csumOffset = 6;
      const b = new Recorder('after');
      sw.attach(b);
      la.send(p);
      assert.equal(p.needsCsum, true, 'the frame itself keeps its offload for the other ports');
      assert.equal(b.frames.length, 1);
      cap.close();
      la.send(frame(BCAST, mac(1), null, 60)); // after close: not recorded
      const f = readFileSync(path);
      const v = new DataView(f.buffer, f.byteOffset, f.length);
      assert.equal(v.getUint32(0, true), PCAP_MAGIC);
      assert.deepEqual([v.getUint16(4, true), v.getUint16(6, true), v.getUint32(20, true)], [2, 4, 1]);
      let at = PCAP_FILE_HEADER;
      assert.deepEqual([v.getUint32(at, true), v.getUint32(at + 4, true), v.getUint32(at + 8, true), v.getUint32(at + 12, true)], [1_700_000_000, 123_000, 60, 60]);
      at += 16 + 60;
      assert.deepEqual([v.getUint32(at, true), v.getUint32(at + 4, true), v.getUint32(at + 8, true)], [1_700_000_001, 623_000, 100]);
      assert.equal(f.length, at + 16 + 100);
      assert.notDeepEqual(f.subarray(at + 16 + 40, at + 16 + 42), Buffer.from([0, 0]), 'the checksum was filled in');
      let sum = 0;
      for (let i = at + 16 + 34; i < at + 16 + 100; i += 2) sum += (f[i]! << 8) | f[i + 1]!;
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      assert.equal(sum, 0xffff, 'the recorded range sums to 0xffff with its checksum');
      assert.equal(cap.frames, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('untrusted traffic cannot grow the file beyond maxBytes: further frames are counted as dropped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-pcap-'));
    try {
      const path = join(dir, 'c.pcap');
      const sw = new NetSwitch();
      const la = sw.attach(new Recorder('a'));
      const cap = new PcapPort({ path, maxBytes: 24 + 3 * (16 + 1000) });
      cap.captureFrom(sw);
      for (let i = 0; i < 1000; i++) la.send(frame(BCAST, mac(1), null, 1000));
      cap.close();
      assert.equal(cap.frames, 3);
      assert.equal(cap.dropped, 997);
      assert.equal(readFileSync(path).length, 24 + 3 * 1016);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function tapUsable(): string | null {
  if (!nativePlatformAvailable()) return 'native addon not built';
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun missing';
  return null;
}
const tapMissing = tapUsable();
const tapSkip = tapMissing !== null && process.env['CI'] !== 'true' ? tapMissing : false;

/** Runs until `cond` holds (the event loop runs meanwhile) or rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TapPort: a Linux TAP interface on the switch', { skip: tapSkip }, () => {
  it('the kernel behind the TAP (in a namespace this test makes) answers ARP, ping and a UDP datagram with a partial checksum (NEEDS_CSUM through IFF_VNET_HDR) sent from a switch port; counters move', async () => {
    assert.equal(tapMissing, null, tapMissing ?? '');
    const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const ns = `vts-tap-${tag}`;
    const ip = (...a: string[]): string => execFileSync('ip', a, { encoding: 'utf8', timeout: 10_000 });
    ip('netns', 'add', ns);
    let tap: TapPort | null = null;
    try {
      tap = new TapPort({ ifname: `vts${tag}`.slice(0, 15), platform: loadNativePlatform() });
      const sw = new NetSwitch();
      const host = new Recorder('host');
      const lh = sw.attach(host);
      const lt = tap.attachTo(sw);
      // The fd stays bound to the interface when it moves into the namespace.
      ip('link', 'set', tap.ifname, 'netns', ns);
      ip('-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', tap.ifname);
      ip('-n', ns, 'link', 'set', tap.ifname, 'up');
      const me = Uint8Array.of(0x02, 0x76, 0x74, 0, 0x77, 2);
      const myIp = ipv4('10.77.0.2');
      const theirIp = ipv4('10.77.0.1');
      const arp = new NetPacket(2048);
      let theirMac: Uint8Array | null = null;
      await until(() => {
        for (const f of host.frames) theirMac ??= arpReplyFor(f, theirIp);
        if (theirMac === null) {
          arp.set(arpRequest(me, myIp, theirIp));
          lh.send(arp);
        }
        return theirMac !== null;
      }, 10_000, 'the ARP reply from the namespace');
      const ping = new NetPacket(2048);
      ping.set(icmpEcho(theirMac!, me, myIp, theirIp, 0x1234, 1, 56));
      lh.send(ping);
      await until(() => host.frames.some((f) => isIcmpEchoReply(f, 0x1234, 1)), 10_000, 'the echo reply');
      // A partial checksum (NEEDS_CSUM) crosses the TAP in its virtio_net_hdr: the kernel takes
      // the datagram (a closed port: it answers port unreachable); with the field left as the
      // bare pseudo-header sum it would have dropped it as corrupt.
      const udp = udpPartialChecksum(theirMac!, me, myIp, theirIp, 40000, 9, 100);
      const partial = new NetPacket(2048);
      partial.set(udp.frame);
      partial.needsCsum = true;
      partial.csumStart = udp.csumStart;
      partial.csumOffset = udp.csumOffset;
      lh.send(partial);
      await until(() => host.frames.some((f) => isIcmpPortUnreachable(f, 9)), 10_000, 'port unreachable for the UDP datagram with a partial checksum');
      assert.ok(tap.stats.txFrames >= 2 && tap.stats.rxFrames >= 2, JSON.stringify(tap.stats));
      assert.equal(tap.stats.rxErrors, 0);
      assert.ok(lt.counters.rxFrames >= 2 && lt.counters.txFrames >= 2, JSON.stringify(lt.counters));
      const rx = Number(ip('-n', ns, '-s', '-j', 'link', 'show', tap.ifname).match(/"rx":\{"bytes":\d+,"packets":(\d+)/)?.[1]);
      assert.ok(rx >= 2, `the namespace's interface counted ${rx} received frames`);
      // Removed while the switch runs: the other port keeps working, nothing goes to the TAP.
      tap.close();
      const before = tap.stats.txFrames;
      lh.send(ping);
      assert.equal(tap.stats.txFrames, before);
      assert.equal(sw.attached.length, 1);
    } finally {
      tap?.close();
      ip('netns', 'del', ns);
    }
  });
});
