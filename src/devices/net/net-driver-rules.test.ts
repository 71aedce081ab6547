/**
 * Driver-side rules (driver/net/*) proven by watching the NetDriver through a recording device
 * (recording-net-device.ts): what it negotiates, writes, reads and puts in its chains, negotiated
 * through its own contract (startDeviceDriver) as an application would.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceDriverType } from '../../driver/device-driver.js';
import { startDeviceDriver } from '../../driver/start-device-driver.js';
import { F } from '../../spec/features.js';
import { NetConfig, NetCtrlClass, NetCtrlMac, NetCtrlMq, NetDuplex, NetF, NetGsoType, NetHdr, NetHdrFlag } from '../../spec/net.js';
import { connectInProcess } from '../../transport/in-process/in-process-transport.js';
import { buildIpFrame } from './ip-frames.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { NetDriver, type NetDriverOptions } from './net-driver.js';
import { NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { RecordingNetDevice } from './recording-net-device.js';
import { ReflectorPort } from './reflector-port.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 15_000 };
const REFLECTOR = Uint8Array.of(2, 0, 0, 0, 0, 0xee);
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 0xdd);
const RSC_INFO = 4; // VIRTIO_NET_HDR_F_RSC_INFO

/** Injects frames into the switch (flows the driver never sent on). */
class Injector implements NetPort {
  readonly name = 'injector';
  link!: NetLink;
  private readonly out = new NetPacket(2000);
  deliver(): void {}
  inject(f: Uint8Array): void {
    this.out.set(f);
    this.link.send(this.out);
  }
}

interface RigOptions {
  device?: NetDeviceOptions;
  driver?: NetDriverOptions;
  type?: DeviceDriverType<NetDriver, NetDriverOptions>;
  legacy?: boolean;
  bigEndian?: boolean;
  offerRemove?: bigint;
  prepare?: (rec: RecordingNetDevice) => void;
}

async function rig(o: RigOptions = {}) {
  const inner = new NetDevice({ queueSize: 64, speedMbps: 1000, duplex: NetDuplex.FULL, ...o.device });
  const sw = new NetSwitch();
  inner.attachTo(sw);
  const reflector = new ReflectorPort('r', REFLECTOR, () => new NetPacket(70000));
  reflector.link = sw.attach(reflector);
  const injector = new Injector();
  injector.link = sw.attach(injector);
  const rec = new RecordingNetDevice(inner);
  rec.offerRemove = o.offerRemove ?? 0n;
  o.prepare?.(rec);
  const conn = connectInProcess(rec, { legacy: o.legacy ?? false, littleEndian: !(o.bigEndian ?? false), interrupts: 'microtask' });
  const started = await startDeviceDriver(conn.transport, o.type ?? NetDriver.type, {
    dma: conn.dma,
    queueSizes: [64],
    transportFeatures: o.legacy ? F.INDIRECT_DESC : undefined,
    driverOptions: o.driver,
  });
  const net = started.driver;
  /** The control commands the driver sent, as [class, command, ...payload]. */
  const commands = () => rec.chains(rec.queueMaxSizes.length - 1).map((c) => [...c.readable]);
  const close = async () => {
    started.close();
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  return { inner, rec, net, sw, injector, commands, close };
}

function frame(src: Uint8Array, len: number, dst = REFLECTOR): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 14; i < len; i++) f[i] = (i * 7) & 0xff;
  return f;
}

/** Waits (bounded) until `cond` holds, yielding to the event loop between checks. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

describe('NetDriver: driver-side rules, observed', () => {
  it('driver/net/1 driver/net/2 driver/net/3: a whole session writes no configuration field; MAC negotiated when offered; the driver\'s address is mac', T, async () => {
    const r = await rig({ device: { queuePairs: 2 } });
    const { net, rec, inner } = r;
    assert.ok((rec.negotiated & NetF.MAC) !== 0n, 'driver/net/2');
    assert.deepEqual(net.mac, inner.macAddress, 'driver/net/3');
    await Promise.all([net.send(frame(net.mac, 100)), net.receive()]);
    await net.setRxMode(0, false);
    await net.setMacTable([PEER], []);
    await net.setVlan(5, true);
    await net.setQueuePairs(2);
    await net.setGuestOffloads(NetF.GUEST_CSUM);
    await net.setMac(PEER);
    rec.notifyConfigChange();
    assert.equal(net.linkUp, true);
    await net.getStats([{ vq: 0, types: [0] }]);
    assert.deepEqual(rec.configWrites, [], 'driver/net/1: no configuration write');
    assert.ok(rec.events.some((e) => e.kind === 'config-read'));
    await r.close();
  });

  it('driver/net/10 driver/net/11: speed above 0x7fffffff and duplex other than 0/1 are unknown; both re-read at a configuration change', T, async () => {
    let speed: number | null = null;
    let duplex: number | null = null;
    const r = await rig({
      prepare: (rec) => {
        rec.configPatch = (offset, dst) => {
          for (let i = 0; i < dst.length; i++) {
            const at = offset + i;
            if (speed !== null && at >= NetConfig.SPEED && at < NetConfig.SPEED + 4) dst[i] = (speed >>> (8 * (at - NetConfig.SPEED))) & 0xff;
            if (duplex !== null && at === NetConfig.DUPLEX) dst[i] = duplex;
          }
        };
      },
    });
    assert.deepEqual(r.net.linkSettings, { speedMbps: 1000, duplex: 'full' });
    for (const [s, d, want] of [
      [0x8000_0000, 7, { speedMbps: null, duplex: null }],
      [0xffff_ffff, 0xff, { speedMbps: null, duplex: null }],
      [0x7fff_ffff, NetDuplex.HALF, { speedMbps: 0x7fff_ffff, duplex: 'half' }],
      [10, 2, { speedMbps: 10, duplex: null }],
    ] as const) {
      speed = s;
      duplex = d;
      const mark = r.rec.events.length;
      r.rec.notifyConfigChange();
      await until(() => r.rec.events.slice(mark).some((e) => e.kind === 'config-read' && e.offset <= NetConfig.SPEED && e.offset + e.length > NetConfig.SPEED), 'the speed re-read');
      assert.ok(r.rec.events.slice(mark).some((e) => e.kind === 'config-read' && e.offset <= NetConfig.DUPLEX && e.offset + e.length > NetConfig.DUPLEX), 'duplex re-read');
      assert.deepEqual(r.net.linkSettings, want);
    }
    await r.close();
  });

  it('driver/net/12 driver/net/13: without CTRL_VQ offered, NetDriver.typeFor negotiates neither HASH_REPORT nor CTRL_RX_EXTRA (nor the other control features)', T, async () => {
    const offered = new NetDevice().offeredFeatures & ~NetF.CTRL_VQ;
    const r = await rig({ offerRemove: NetF.CTRL_VQ, type: NetDriver.typeFor(offered, NetDriver.hashReportingType) });
    assert.equal(r.rec.negotiated & (NetF.HASH_REPORT | NetF.CTRL_RX_EXTRA | NetF.CTRL_RX | NetF.CTRL_VQ), 0n);
    assert.equal(r.net.hdrLen, 12);
    const [, got] = await Promise.all([r.net.send(frame(r.net.mac, 80)), r.net.receive()]);
    assert.equal(got.data.length, 80, 'the data path works without them');
    await r.close();
    // With CTRL_VQ offered the same call keeps them.
    const full = await rig({ type: NetDriver.typeFor(new NetDevice().offeredFeatures, NetDriver.hashReportingType) });
    assert.equal(full.rec.negotiated & (NetF.HASH_REPORT | NetF.CTRL_RX_EXTRA), NetF.HASH_REPORT | NetF.CTRL_RX_EXTRA);
    await full.close();
  });

  it('driver/net/15 driver/net/40 driver/net/46: transmit headers have num_buffers 0, never DATA_VALID or RSC_INFO; 12 bytes, 20 with HASH_REPORT, 10 legacy without MRG_RXBUF', T, async () => {
    for (const [o, hl] of [
      [{}, 12],
      [{ type: NetDriver.hashReportingType }, 20],
      [{ legacy: true, offerRemove: NetF.MRG_RXBUF }, 10],
      [{ legacy: true }, 12],
    ] as const) {
      const r = await rig(o);
      const { net, rec } = r;
      assert.equal(net.hdrLen, hl);
      const tcp = buildIpFrame({ dst: REFLECTOR, src: net.mac, payload: 4000 });
      const small = buildIpFrame({ dst: REFLECTOR, src: net.mac, payload: 100, udp: true });
      const sends: [Uint8Array, Parameters<NetDriver['send']>[1]][] = [
        [frame(net.mac, 60), {}],
        [small, { csum: 'auto' }],
      ];
      if ((rec.negotiated & NetF.HOST_TSO4) !== 0n) sends.push([tcp, { gso: { size: 1000 } }]);
      for (const [f, opts] of sends) await net.send(f, opts);
      const tx = rec.chains(1);
      assert.equal(tx.length, sends.length);
      tx.forEach((c, i) => {
        assert.equal(c.readable.length - sends[i]![0].length, hl, 'driver/net/46: header size');
        assert.equal(c.readable[NetHdr.FLAGS]! & (NetHdrFlag.DATA_VALID | RSC_INFO), 0, 'driver/net/40');
        if (hl >= 12) assert.deepEqual([c.readable[NetHdr.NUM_BUFFERS], c.readable[NetHdr.NUM_BUFFERS + 1]], [0, 0], 'driver/net/15');
      });
      await r.close();
    }
  });

  it('driver/net/44: without MRG_RXBUF and receive GSO, receive buffers of at least 1526 bytes (1534 with HASH_REPORT)', T, async () => {
    const noGso = NetF.MRG_RXBUF | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6;
    for (const [type, least] of [
      [NetDriver.type, 1526],
      [NetDriver.hashReportingType, 1534],
    ] as const) {
      const r = await rig({ type, offerRemove: noGso });
      await Promise.all([r.net.send(frame(r.net.mac, 60)), r.net.receive()]);
      const rx = r.rec.chains(0);
      assert.equal(rx.length, 1);
      assert.ok(rx[0]!.writableBytes >= least, `${rx[0]!.writableBytes} >= ${least}`);
      await r.close();
    }
  });

  it('driver/net/47 driver/net/74 driver/net/75 driver/net/76 driver/net/77: receive queues filled before VQ_PAIRS_SET, pairs in range, transmit only on the pairs in use', T, async () => {
    const r = await rig({ device: { queuePairs: 3 } });
    const { net, rec } = r;
    await assert.rejects(net.send(frame(net.mac, 60), { pair: 1 }), /not in use/, 'driver/net/76');
    await assert.rejects(net.setQueuePairs(0), /not in 1\.\.3/);
    await assert.rejects(net.setQueuePairs(4), /not in 1\.\.3/);
    assert.equal(r.commands().length, 0, 'driver/net/75: nothing sent for 0 or 4');
    await net.send(frame(net.mac, 60));
    assert.deepEqual([rec.chains(3).length, rec.chains(5).length, rec.chains(1).length], [0, 0, 1], 'driver/net/76: transmitq1 only');
    await net.setQueuePairs(3);
    const cmdAt = rec.events.findIndex((e) => e.kind === 'pop' && e.chain.queue === 6 && e.chain.readable[0] === NetCtrlClass.MQ);
    for (const q of [2, 4]) {
      const kick = rec.events.findIndex((e) => e.kind === 'notify' && e.queue === q);
      assert.ok(kick >= 0 && kick < cmdAt, `driver/net/47, /74: receiveq ${q / 2 + 1} got buffers before the command`);
    }
    await net.send(frame(net.mac, 60), { pair: 2 });
    assert.equal(rec.chains(5).length, 1);
    // Back to one pair: transmitq2 and 3 are not used once the command is placed.
    const down = net.setQueuePairs(1);
    await assert.rejects(net.send(frame(net.mac, 60), { pair: 2 }), /not in use/, 'driver/net/77');
    await down;
    await assert.rejects(net.send(frame(net.mac, 60), { pair: 1 }), /not in use/, 'driver/net/77');
    assert.deepEqual(r.commands().map((c) => c.slice(0, 4)), [[NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, 3, 0], [NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, 1, 0]]);
    await r.close();
  });

  it('driver/net/48 driver/net/51 driver/net/52 driver/net/53 driver/net/54: unknown flags ignored, csum fields unused without NEEDS_CSUM, hdr_len only a hint, no checksum trusted without a flag', T, async () => {
    let patch: ((h: Uint8Array) => void) | null = null;
    const r = await rig({ prepare: (rec) => (rec.rxHeaderPatch = (h) => patch?.(h)) });
    const { net } = r;
    const f = frame(net.mac, 200);
    // Unknown flag bits (and RSC_INFO) with stale csum fields and no NEEDS_CSUM.
    patch = (h) => {
      h[NetHdr.FLAGS] = 0xf8 | RSC_INFO;
      h[NetHdr.CSUM_START] = 0x34;
      h[NetHdr.CSUM_OFFSET] = 0x56;
    };
    let [, got] = await Promise.all([net.send(f), net.receive()]);
    assert.equal(got.flags, 0, 'driver/net/48: unknown bits dropped');
    assert.deepEqual([got.csumStart, got.csumOffset], [0, 0], 'driver/net/51');
    assert.deepEqual(got.data.subarray(12), f.subarray(12));
    // A GSO type with a wrong hdr_len: the frame is what num_buffers and the length say.
    patch = (h) => {
      h[NetHdr.GSO_TYPE] = NetGsoType.TCPV4;
      h[NetHdr.HDR_LEN] = 0xff;
      h[NetHdr.HDR_LEN + 1] = 0x7f;
    };
    [, got] = await Promise.all([net.send(f), net.receive()]);
    assert.equal(got.data.length, 200, 'driver/net/52, /53: hdr_len not used to cut the frame');
    assert.equal(got.hdrLen, 0x7fff, 'reported as the device wrote it, a hint');
    // A TCP frame with a wrong checksum and neither flag: delivered without a validity claim.
    patch = (h) => (h[NetHdr.FLAGS] = 0);
    const bad = buildIpFrame({ dst: REFLECTOR, src: net.mac, payload: 64 });
    bad[bad.length - 1]! ^= 0xff;
    [, got] = await Promise.all([net.send(bad), net.receive()]);
    assert.equal(got.flags & (NetHdrFlag.DATA_VALID | NetHdrFlag.NEEDS_CSUM), 0, 'driver/net/54');
    await r.close();
  });

  it('driver/net/67 driver/net/68 driver/net/69: MAC_ADDR_SET only for a different address; MAC_TABLE_SET as le32 count, unicast, le32 count, multicast; either may be 0', T, async () => {
    const r = await rig();
    const { net } = r;
    await net.setMac(net.mac.slice());
    assert.equal(r.commands().length, 0, 'driver/net/67: the same address: no command');
    await net.setMac(PEER);
    const mc = Uint8Array.of(0x01, 0, 0x5e, 0, 0, 1);
    await net.setMacTable([REFLECTOR, PEER], [mc]);
    await net.setMacTable([], []);
    assert.deepEqual(r.commands(), [
      [NetCtrlClass.MAC, NetCtrlMac.ADDR_SET, ...PEER],
      [NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, 2, 0, 0, 0, ...REFLECTOR, ...PEER, 1, 0, 0, 0, ...mc],
      [NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, 0, 0, 0, 0, 0, 0, 0, 0],
    ]);
    await r.close();
  });

  it('driver/net/70 driver/net/87 device/net/83 device/net/95: a legacy big-endian guest writes MAC table counts, VLAN id, virtqueue_pairs and offloads in its own byte order; the device reads them so', T, async () => {
    const r = await rig({ legacy: true, bigEndian: true, device: { queuePairs: 2 } });
    const { net, inner } = r;
    assert.equal(r.rec.negotiated & F.VERSION_1, 0n);
    await net.setMacTable([PEER], []);
    await net.setVlan(0x123, true);
    await net.setQueuePairs(2);
    await net.setGuestOffloads(NetF.GUEST_CSUM | NetF.GUEST_TSO4);
    const mask = NetF.GUEST_CSUM | NetF.GUEST_TSO4;
    const be64 = [...new Uint8Array(new BigUint64Array([mask]).buffer)].reverse();
    assert.deepEqual(r.commands(), [
      [NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, 0, 0, 0, 1, ...PEER, 0, 0, 0, 0],
      [NetCtrlClass.VLAN, 0, 0x01, 0x23],
      [NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, 0, 2],
      [NetCtrlClass.GUEST_OFFLOADS, 0, ...be64],
    ]);
    assert.equal(inner.filter.hasVlan(0x123), true, 'device/net/83');
    assert.equal(inner.queuePairsInUse, 2, 'device/net/95');
    assert.equal(inner.guestOffloadsInEffect, mask, 'driver/net/87');
    assert.equal(inner.filter.ucCount, 1, 'driver/net/70');
    await r.close();
  });

  it('driver/net/72 driver/net/73: on VIRTIO_NET_S_ANNOUNCE the driver broadcasts a RARP from its address, then ANNOUNCE_ACK', T, async () => {
    const r = await rig();
    const { net, inner, rec } = r;
    assert.equal(inner.requestAnnounce(), true);
    await until(() => net.announcements === 1, 'the announcement');
    const rarp = rec.chains(1).at(-1)!.readable.subarray(net.hdrLen);
    assert.deepEqual([...rarp.subarray(0, 14)], [...new Uint8Array(6).fill(0xff), ...net.mac, 0x80, 0x35]);
    assert.deepEqual(r.commands(), [[NetCtrlClass.ANNOUNCE, 0]]);
    assert.equal(net.announceRequested, false);
    assert.equal(r.sw.lookup(net.mac) !== undefined, true, 'the switch learned the driver from it');
    await r.close();
  });

  it('driver/net/88: coalescing commands name an enabled receive or transmit queue, or are refused unsent', T, async () => {
    const r = await rig();
    for (const vq of [2, 7, -1, 0.5]) {
      await assert.rejects(r.net.setQueueCoalescing(vq, 4, 100), /driver\/net\/88/);
      await assert.rejects(r.net.getQueueCoalescing(vq), /driver\/net\/88/);
    }
    assert.equal(r.commands().length, 0);
    await r.net.setQueueCoalescing(1, 4, 100);
    assert.deepEqual(await r.net.getQueueCoalescing(1), { maxPackets: 4, maxUsecs: 100 });
    await r.close();
  });

  it('driver/net/91: a VQ_GET answered VIRTIO_NET_ERR gives no values (the device sees transmitq1 as not enabled)', T, async () => {
    const r = await rig({ prepare: (rec) => rec.hiddenQueues.add(1) });
    await assert.rejects(r.net.getQueueCoalescing(1), /VIRTIO_NET_ERR/);
    assert.equal(r.commands().length, 1, 'the command went to the device');
    await r.close();
  });
});

describe('NetDevice: rules observed from the driver side', () => {
  it('device/net/19 device/net/20: hdr_len is at most a hint: a TSO frame whose hdr_len is wrong is segmented by the headers the device parses', T, async () => {
    let hdrLenPatch = 0;
    const r = await rig({ prepare: (rec) => (rec.txHeaderPatch = (h) => { h[NetHdr.HDR_LEN] = hdrLenPatch & 0xff; h[NetHdr.HDR_LEN + 1] = hdrLenPatch >> 8; }) });
    const { net } = r;
    // The receiving side has no GUEST_TSO4 in effect, so the reflector's echo comes segmented.
    await net.setGuestOffloads(NetF.GUEST_CSUM);
    for (hdrLenPatch of [0, 20, 0x7fff]) {
      const tcp = buildIpFrame({ dst: REFLECTOR, src: net.mac, payload: 3000, seed: hdrLenPatch });
      const want = Math.ceil(3000 / 1000);
      const got: Uint8Array[] = [];
      const recv = (async () => {
        for (let i = 0; i < want; i++) got.push((await net.receive()).data);
      })();
      await net.send(tcp, { gso: { size: 1000 } });
      await recv;
      const payload = got.map((s) => s.subarray(54)).reduce((a, b) => Uint8Array.from([...a, ...b]));
      assert.deepEqual(payload, tcp.subarray(54), `hdr_len ${hdrLenPatch}`);
    }
    await r.close();
  });

  it('device/net/25: a frame sent without NEEDS_CSUM and a wrong checksum is not claimed valid (no DATA_VALID) to a GUEST_CSUM receiver', T, async () => {
    const r = await rig();
    const bad = buildIpFrame({ dst: REFLECTOR, src: r.net.mac, payload: 64, udp: true });
    bad[bad.length - 1]! ^= 0x5a;
    assert.ok((r.rec.negotiated & NetF.GUEST_CSUM) !== 0n);
    const [, got] = await Promise.all([r.net.send(bad), r.net.receive()]);
    assert.equal(got.flags & NetHdrFlag.DATA_VALID, 0);
    assert.deepEqual(got.data.subarray(12), bad.subarray(12));
    await r.close();
  });

  it('device/net/90: frames of flows never transmitted are spread over the receive queues in use', T, async () => {
    const r = await rig({ device: { queuePairs: 2 } });
    const { net, injector } = r;
    await net.setQueuePairs(2);
    const queues = new Set<number>();
    for (let port = 0; port < 32; port++) {
      const f = buildIpFrame({ dst: net.mac, src: PEER, payload: 20, udp: true, seed: port });
      f[34] = port; // UDP source port: a new flow each
      const got = net.receive();
      injector.inject(f);
      queues.add((await got).queue);
    }
    assert.deepEqual([...queues].sort(), [0, 2]);
    await r.close();
  });

  it('device/net/102: TX_SET and RX_SET are answered OK when the parameters changed (the device can always change them)', T, async () => {
    const r = await rig();
    await r.net.setCoalescing('tx', 8, 50);
    await r.net.setCoalescing('rx', 16, 70);
    assert.deepEqual(await r.net.getQueueCoalescing(1), { maxPackets: 8, maxUsecs: 50 });
    assert.deepEqual(await r.net.getQueueCoalescing(0), { maxPackets: 16, maxUsecs: 70 });
    assert.deepEqual([r.inner.coalescing.tx, r.inner.coalescing.rx], [{ maxPackets: 8, maxUsecs: 50 }, { maxPackets: 16, maxUsecs: 70 }]);
    await r.close();
  });
});
