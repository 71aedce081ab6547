/**
 * virtio-net configuration and feature statements that need no traffic, and receive-filter
 * rules checked on RxFilter directly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import { readConfigField } from '../../spec/config-layout.js';
import { NET_CONFIG_LAYOUT, type NetConfigField, NetCtrlAck, NetCtrlClass, NetCtrlMq, NetF } from '../../spec/net.js';
import { createLoopback } from '../../testing/loopback.js';
import { NetDevice } from './net-device.js';
import { NET_RSS_MAX_KEY_SIZE, NET_RSS_MAX_TABLE, NET_SUPPORTED_HASH_TYPES } from './net-rss.js';
import { NetPacket } from './packet.js';
import { RxFilter } from './rx-filter.js';

describe('virtio-net configuration', () => {
  it('device/net/3 device/net/7 device/net/8 device/net/13 device/net/14: mtu 1500 by default; rss_max_key_size >= 40 and rss_max_indirection_table_length >= 128; HASH_REPORT and CTRL_RX_EXTRA offered only with CTRL_VQ', async () => {
    const d = new NetDevice({ queuePairs: 4 });
    const lb = await createLoopback(d, { queueSize: 16 });
    const read = (name: NetConfigField): number => readConfigField(NET_CONFIG_LAYOUT, name, (o, l) => lb.context.readConfig(o, l), true);
    assert.ok(read('mtu') >= 1280);
    assert.ok(read('rssMaxKeySize') >= 40);
    assert.equal(read('rssMaxKeySize'), NET_RSS_MAX_KEY_SIZE);
    assert.ok(read('rssMaxIndirectionTableLength') >= 128);
    assert.equal(read('rssMaxIndirectionTableLength'), NET_RSS_MAX_TABLE);
    assert.equal(read('supportedHashTypes'), NET_SUPPORTED_HASH_TYPES);
    assert.equal(read('maxVirtqueuePairs'), 4);
    const off = d.offeredFeatures;
    for (const f of [NetF.HASH_REPORT, NetF.CTRL_RX_EXTRA, NetF.RSS]) if ((off & f) !== 0n) assert.equal(off & NetF.CTRL_VQ, NetF.CTRL_VQ);
    await lb.close();
  });

  it('device/net/4: mtu never changes (across traffic, commands and reset); device/net/10 device/net/11 device/net/12: speed and duplex are valid values that never change', async () => {
    assert.throws(() => new NetDevice({ speedMbps: 0x8000_0000 }));
    assert.throws(() => new NetDevice({ duplex: 2 }));
    const d = new NetDevice({ mtu: 9000, speedMbps: 10000, duplex: 0 });
    const lb = await createLoopback(d, { queueSize: 16 });
    const read = (name: 'mtu' | 'speed' | 'duplex'): number => readConfigField(NET_CONFIG_LAYOUT, name, (o, l) => lb.context.readConfig(o, l), true);
    assert.deepEqual([read('mtu'), read('speed'), read('duplex')], [9000, 10000, 0]);
    d.setLinkUp(false);
    d.setLinkUp(true);
    await lb.close();
    const lb2 = await createLoopback(d, { queueSize: 16 });
    assert.equal(readConfigField(NET_CONFIG_LAYOUT, 'mtu', (o, l) => lb2.context.readConfig(o, l), true), 9000);
    await lb2.close();
  });

  it('device/net/100: RSS configuration is cleared on reset', async () => {
    const d = new NetDevice({ queuePairs: 2 });
    const lb = await createLoopback(d, { queueSize: 16 });
    const b = Buffer.alloc(8 + 2 + 3 + 4);
    b.writeUInt32LE(1, 0);
    b.writeUInt16LE(0, 4); // one entry
    b.writeUInt16LE(1, 8); // -> receiveq2
    b.writeUInt16LE(2, 10); // max_tx_vq
    b[12] = 4;
    const ctrl = new RequestQueue(lb.context, 4);
    const cmd = Uint8Array.from([NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, ...b]);
    const addr = lb.context.dma.alloc(cmd.length + 1);
    lb.context.memory.write(addr, cmd);
    await ctrl.submit([{ addr, len: cmd.length }], [{ addr: addr + cmd.length, len: 1 }]);
    const ack = new Uint8Array(1);
    lb.context.memory.read(addr + cmd.length, ack);
    assert.equal(ack[0], NetCtrlAck.OK);
    assert.equal(d.rss.steering, true);
    await lb.close();
    assert.equal(d.rss.steering, false);
    assert.equal(d.rss.hashTypes, 0);
  });
});

describe('RxFilter rules', () => {
  const pkt = (dst: number[]): NetPacket => {
    const p = new NetPacket(64);
    const f = new Uint8Array(60);
    f.set(dst, 0);
    f.set([2, 0, 0, 0, 0, 9], 6);
    p.set(f);
    return p;
  };
  const me = [2, 0, 0, 0, 0, 1];
  const other = [2, 0, 0, 0, 0, 2];
  const mcast = [1, 0, 0x5e, 0, 0, 1];
  const bcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  const filter = (): RxFilter => {
    const f = new RxFilter();
    f.reset(Uint8Array.from(me), true, false);
    f.promisc = false;
    return f;
  };

  it('device/net/69: ALLUNI accepts every unicast; device/net/74: NOUNI wins over ALLUNI', () => {
    const f = filter();
    assert.equal(f.accepts(pkt(other)), false);
    f.allUni = true;
    assert.equal(f.accepts(pkt(other)), true);
    f.noUni = true;
    assert.equal(f.accepts(pkt(other)), false);
    assert.equal(f.accepts(pkt(me)), false);
  });

  it('device/net/71: NOMULTI wins over ALLMULTI; device/net/72: NOMULTI does not drop broadcast; device/net/76: NOBCAST wins over ALLMULTI', () => {
    const f = filter();
    f.allMulti = true;
    assert.equal(f.accepts(pkt(mcast)), true);
    f.noMulti = true;
    assert.equal(f.accepts(pkt(mcast)), false);
    assert.equal(f.accepts(pkt(bcast)), true);
    f.noBcast = true;
    assert.equal(f.accepts(pkt(bcast)), false);
  });
});
