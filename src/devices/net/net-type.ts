/** The registry record of the network device (5.1): `virtio-ts net`, vhost-user type "net". */
import assert from 'node:assert/strict';
import type { DeviceType } from '../device-type.js';
import { DeviceId } from '../../spec/device-id.js';
import { NetF, NetHdrFlag } from '../../spec/net.js';
import { NET_CLI } from './cli.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { buildIpFrame, checksumsValid } from './ip-frames.js';
import { NetDriver } from './net-driver.js';
import { NetPacket, completeChecksum } from './packet.js';
import { ReflectorPort } from './reflector-port.js';
import { NetSwitch } from './switch.js';

/** `createDevice` arguments (structured-cloneable). */
export interface NetDeviceArgs {
  /** config mac (5.1.4), 6 bytes. Default 02:76:74:00:00:01. */
  readonly mac?: Uint8Array;
  /** config mtu (5.1.4, VIRTIO_NET_F_MTU), bytes, 68..65535. Default 1500. */
  readonly mtu?: number;
  /** max_virtqueue_pairs (5.1.4; more than 1 offers VIRTIO_NET_F_MQ). Default 1. */
  readonly queuePairs?: number;
  /** Maximum size of each queue. Default 256. */
  readonly queueSize?: number;
}

const REFLECTOR_MAC = Uint8Array.of(0x02, 0x76, 0x74, 0xee, 0xee, 0x01);

/** A test frame: dst, src, an IPv4-looking ethertype, `len` bytes in all with a counting payload. */
function frame(dst: Uint8Array, src: Uint8Array, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < len; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

/** The echo of `f` by the reflector: addresses swapped. */
function echoed(f: Uint8Array): Uint8Array {
  const e = f.slice();
  e.set(f.subarray(6, 12), 0);
  e.set(REFLECTOR_MAC, 6);
  return e;
}

/**
 * The registry record of virtio-net: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const NET_TYPE: DeviceType = {
  name: 'net',
  deviceId: DeviceId.NET,
  summary: 'serve virtio-net devices on a virtual L2 switch over vhost-user',
  vhostUser: { type: 'net', features: [] },
  // 5.1.4: mac, status, max_virtqueue_pairs, mtu (QEMU 7.2's vhost-user-net asks no more).
  configSize: 12,
  cli: NET_CLI,
  createDevice(args?: unknown): NetDevice {
    const a = (args ?? {}) as NetDeviceArgs;
    const opts: NetDeviceOptions = {};
    if (a.mac !== undefined) opts.mac = a.mac;
    if (a.mtu !== undefined) opts.mtu = a.mtu;
    if (a.queuePairs !== undefined) opts.queuePairs = a.queuePairs;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    return new NetDevice(opts);
  },
  matrixCase() {
    // The device on a switch with a reflector: every frame the driver sends to the reflector (or
    // broadcasts) comes back to it through the device's receive path.
    const device = new NetDevice({ queueSize: 64, queuePairs: 2 });
    const sw = new NetSwitch();
    device.attachTo(sw);
    const reflector = new ReflectorPort('reflector', REFLECTOR_MAC, () => new NetPacket(device.mtu + 18));
    reflector.link = sw.attach(reflector);
    return {
      device,
      async exercise(driver) {
        const f = driver.features;
        // Small receive buffers with MRG_RXBUF, so a full-size frame spans several of them.
        const net = new NetDriver(driver.context, { rxBuffers: 16, rxBufferSize: (f & NetF.MRG_RXBUF) !== 0n ? 512 : undefined });
        assert.deepEqual(net.mac, device.macAddress, 'driver/net/3: the device MAC from config');
        assert.equal(net.linkUp, true);
        // A full-size frame, echoed.
        const big = frame(REFLECTOR_MAC, net.mac, 1514, 1);
        const [, got] = await Promise.all([net.send(big), net.receive()]);
        assert.deepEqual(got.data, echoed(big));
        if ((f & NetF.MRG_RXBUF) !== 0n) assert.ok(got.buffers >= 3, `a 1526-byte packet over 512-byte buffers (${got.buffers})`);
        else assert.equal(got.buffers, 1);
        // A broadcast the reflector answers, and a minimum-size frame.
        const bcast = frame(new Uint8Array(6).fill(0xff), net.mac, 60, 2);
        const [, b] = await Promise.all([net.send(bcast), net.receive()]);
        assert.deepEqual(b.data, echoed(bcast));
        assert.ok(sw.lookup(net.mac) !== undefined, 'the switch learned the driver');
        if ((f & NetF.CSUM) !== 0n) {
          // A partial checksum passes to a GUEST_CSUM receiver as NEEDS_CSUM with its offsets.
          const c = frame(REFLECTOR_MAC, net.mac, 100, 3);
          const [, r] = await Promise.all([net.send(c, { csum: { start: 34, offset: 6 } }), net.receive()]);
          if ((f & NetF.GUEST_CSUM) !== 0n) {
            assert.equal(r.flags & NetHdrFlag.NEEDS_CSUM, NetHdrFlag.NEEDS_CSUM);
            assert.equal(r.csumStart, 34);
            assert.equal(r.csumOffset, 6);
          }
        }
        if ((f & (NetF.CSUM | NetF.HOST_TSO4)) === (NetF.CSUM | NetF.HOST_TSO4)) {
          // TCP segmentation offload: the header in the guest's byte order (legacy CCW rev 0 is
          // big-endian), the switch segments for the reflector, whose echoes come back as
          // ordinary frames with valid checksums.
          const tso = buildIpFrame({ dst: REFLECTOR_MAC, src: net.mac, payload: 4000, seq: 7 });
          if ((f & (NetF.RSC_EXT | NetF.GUEST_TSO4)) === (NetF.RSC_EXT | NetF.GUEST_TSO4)) {
            // With RSC_EXT the receiving device coalesces the three echoed segments again: one
            // TCPV4 frame with RSC_INFO (3 segments) whose partial checksum completes.
            const [, g] = await Promise.all([net.send(tso, { gso: { size: 1448 } }), net.receive()]);
            assert.deepEqual([g.gsoType, g.gsoSize, g.flags, g.rscSegments, g.rscDupAcks], [1, 1448, NetHdrFlag.NEEDS_CSUM | NetHdrFlag.RSC_INFO, 3, 0]);
            const whole = new NetPacket(g.data.length);
            whole.set(g.data);
            Object.assign(whole, { needsCsum: true, csumStart: 34, csumOffset: 16 });
            assert.ok(completeChecksum(whole) && checksumsValid(whole.bytes()), 'coalesced frame checksums');
            assert.equal(g.data.length - 54, 4000);
          } else {
            const [, ...segs] = await Promise.all([net.send(tso, { gso: { size: 1448 } }), net.receive(), net.receive(), net.receive()]);
            let payload = 0;
            for (const s of segs) {
              assert.equal(s.gsoType, 0);
              assert.ok(checksumsValid(s.data), 'segment checksums');
              payload += s.data.length - 54;
            }
            assert.equal(payload, 4000);
          }
        }
        if ((f & NetF.CTRL_RX) !== 0n && net.hasControlQueue) {
          await net.setRxMode(0, false); // PROMISC off: frames to our own address still arrive
          const u = frame(REFLECTOR_MAC, net.mac, 200, 4);
          const [, r] = await Promise.all([net.send(u), net.receive()]);
          assert.deepEqual(r.data, echoed(u));
          assert.equal(await net.command(0, 0, new Uint8Array(2)), 1, 'a short/long payload is VIRTIO_NET_ERR');
        }
        if ((f & NetF.MQ) !== 0n && net.hasControlQueue && net.usablePairs > 1) {
          await net.setQueuePairs(2);
          assert.equal(device.queuePairsInUse, 2);
          const m = frame(REFLECTOR_MAC, net.mac, 300, 5);
          const [, r] = await Promise.all([net.send(m, { pair: 1 }), net.receive()]);
          assert.deepEqual(r.data, echoed(m));
        }
        if ((f & NetF.STATUS) !== 0n) {
          // A configuration change notification tells the driver; it reads LINK_UP cleared.
          const down = new Promise<boolean>((resolve) => net.onLinkChange(resolve));
          device.setLinkUp(false);
          assert.equal(await down, false, 'the driver reads LINK_UP cleared');
          const up = new Promise<boolean>((resolve) => net.onLinkChange(resolve));
          device.setLinkUp(true);
          assert.equal(await up, true);
          net.onLinkChange(null);
        }
        assert.equal(device.stats.txErrors, 0);
        assert.equal(device.stats.rxNoBuffer, 0);
        net.detach();
      },
    };
  },
};
