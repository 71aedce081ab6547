import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetF } from '../../spec/net.js';
import { createLoopback } from '../../testing/loopback.js';
import { NetDevice } from './net-device.js';
import { NetDriver } from './net-driver.js';
import { NetPacket } from './packet.js';
import { ReflectorPort } from './reflector-port.js';
import { RxFilter } from './rx-filter.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 10_000 };
const REFLECTOR = Uint8Array.of(2, 0, 0, 0, 0, 0xee);

async function setup(refuse: bigint, opts: ConstructorParameters<typeof NetDriver>[1] = {}) {
  const device = new NetDevice({ queueSize: 64, mtu: 9000 });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const r = new ReflectorPort('r', REFLECTOR, () => new NetPacket(9018));
  r.link = sw.attach(r);
  const lb = await createLoopback(device, { queueSize: 64, refuseFeatures: refuse });
  return { device, lb, net: new NetDriver(lb.context, opts) };
}

function frame(src: Uint8Array, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(REFLECTOR, 0);
  f.set(src, 6);
  f[12] = 0x08;
  for (let i = 14; i < len; i++) f[i] = (i * 3) & 0xff;
  return f;
}

describe('NetDriver', () => {
  it('driver/net/4 driver/net/5: without MAC a locally administered address; without STATUS the link is up', T, async () => {
    const { lb, net } = await setup(NetF.MAC | NetF.STATUS);
    assert.equal(net.mac[0]! & 0x03, 0x02, 'locally administered, unicast');
    assert.equal(net.linkUp, true);
    await lb.close();
  });

  it('driver/net/16: checksum offload is refused without VIRTIO_NET_F_CSUM', T, async () => {
    const { lb, net } = await setup(NetF.CSUM);
    await assert.rejects(net.send(frame(net.mac, 100), { csum: { start: 34, offset: 6 } }), /CSUM/);
    await lb.close();
  });

  it('driver/net/6 driver/net/7: with MTU and without MRG_RXBUF, buffers hold a full MTU frame (a 9014-byte frame arrives whole)', T, async () => {
    const { lb, net, device } = await setup(NetF.MRG_RXBUF, { rxBuffers: 4 });
    assert.equal(net.mtu, 9000);
    const f = frame(net.mac, 9014);
    const [, got] = await Promise.all([net.send(f), net.receive()]);
    assert.equal(got.buffers, 1);
    assert.equal(got.data.length, 9014);
    assert.equal(device.stats.rxShortBuffers, 0);
    await lb.close();
  });

  it('mergeable receive buffers are reassembled by num_buffers, frame after frame', T, async () => {
    const { lb, net } = await setup(0n, { rxBuffers: 40, rxBufferSize: 256 });
    for (const len of [60, 1514, 9014, 300]) {
      const f = frame(net.mac, len);
      const [, got] = await Promise.all([net.send(f), net.receive()]);
      assert.equal(got.buffers, Math.ceil((len + 12) / 256));
      assert.equal(got.data.length, len);
      assert.deepEqual(got.data.subarray(12), f.subarray(12));
    }
    assert.equal(net.receiveErrors, 0);
    await lb.close();
  });
});

describe('RxFilter', () => {
  it('device/net/77: the MAC table is empty after reset (and the modes back to their defaults)', () => {
    const fl = new RxFilter();
    fl.ucCount = 3;
    fl.mcCount = 2;
    fl.mcOverflow = true;
    fl.promisc = false;
    fl.noBcast = true;
    fl.setVlan(7, true);
    fl.reset(Uint8Array.of(2, 0, 0, 0, 0, 1), false, true);
    assert.deepEqual([fl.ucCount, fl.mcCount, fl.ucOverflow, fl.mcOverflow, fl.promisc, fl.noBcast, fl.hasVlan(7)], [0, 0, false, false, true, false, false]);
  });
});
