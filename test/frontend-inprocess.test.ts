/**
 * The vhost-user front-end library against virtio-ts's back-end served in this same process
 * (serveVhostUser on a Unix socket, native platform), for what a separate process cannot show:
 * a configuration change sent by the back-end on the BACKEND_REQ channel reaches the driver with
 * the new configuration; a back-end that goes away abruptly is replaced and the driver resumes on
 * the new one from ring bases derived from its own queues.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import { nativePlatformAvailable, loadNativePlatform } from '../src/platform/native-platform.js';
import type { FdWatcher } from '../src/platform/types.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { isVirtioError } from '../src/errors.js';
import { REPLY_FLAGS, encodeU64 } from '../src/vhost-user/codec.js';
import { MessageFramer } from '../src/vhost-user/framer.js';
import { F_PROTOCOL_FEATURES, FrontendReq, HeaderFlag, PF } from '../src/vhost-user/messages.js';
import { serveVhostUser, type VhostUserServer } from '../src/vhost-user/server.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { makeTempDir, type TempDir } from './support/guest.js';
import { InputDevice } from '../src/devices/input/input-device.js';
import { keyboardProfile } from '../src/devices/input/input-presets.js';
import { InputConfig, InputConfigSelect } from '../src/spec/input.js';

const skip = nativePlatformAvailable() ? false : 'native addon not built';
const ALL = (1n << 64n) - 1n;

/** A RAM disk whose reported size can change (as a file that grew). */
class GrowableDisk extends MemoryBackend {
  reported: number;
  constructor(max: number, initial: number) {
    super(max);
    this.reported = initial;
  }
  override get size(): number {
    return this.reported;
  }
}

describe('vhost-user front-end against an in-process virtio-ts back-end', { skip, timeout: 60_000 }, () => {
  let dir: TempDir;
  const servers: VhostUserServer[] = [];
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-fei-');
  });
  after(async () => {
    for (const t of transports) t.close();
    for (const s of servers) await s.close();
    await dir.remove();
  });

  async function serve(path: string, device: BlkDevice): Promise<VhostUserServer> {
    const s = await serveVhostUser({ device, platform: loadNativePlatform(), socketPath: path });
    servers.push(s);
    return s;
  }

  it('a CONFIG_CHANGE_MSG on the back-end channel re-reads the config and notifies the driver', { timeout: 20_000 }, async () => {
    const disk = new GrowableDisk(8 << 20, 4 << 20);
    const dev = new BlkDevice(disk);
    const path = dir.file('cfg.sock');
    await serve(path, dev);
    const t = await VhostUserDriverTransport.connect(path, { deviceId: DeviceId.BLOCK });
    transports.push(t);
    assert.notEqual(t.protocolFeatures & PF.BACKEND_REQ, 0n);
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL });
    const b = new BlkDriver(d.context);
    assert.equal(b.capacity, (4 << 20) / 512);
    // virtio-ts's back-end activates the device on the first kick; only then can it notify.
    await b.write(0, Buffer.alloc(512, 1));
    const generation = t.configGeneration();
    const changed = new Promise<void>((resolve) => d.onConfigChange(() => resolve()));
    disk.reported = 8 << 20;
    assert.ok(dev.refreshCapacity());
    await changed;
    assert.ok(t.configGeneration() > generation, 'the generation moved');
    assert.equal(b.readConfig().capacity, (8 << 20) / 512);
    // The new sectors are usable.
    await b.write((6 << 20) / 512, Buffer.alloc(512, 9));
    assert.equal((await b.read((6 << 20) / 512, 512))[3], 9);
    t.close();
  });

  for (const packed of [false, true]) {
    it(`the back-end vanishes; a new one on the same path takes over from bases the driver derives (${packed ? 'packed' : 'split'})`, { timeout: 20_000 }, async () => {
      const disk = new MemoryBackend(4 << 20);
      const path = dir.file(`re${packed ? 'p' : 's'}.sock`);
      const first = await serve(path, new BlkDevice(disk));
      const t = await VhostUserDriverTransport.connect(path, { deviceId: DeviceId.BLOCK });
      transports.push(t);
      const d = await startVhostUserDriver(t, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED, queueSizes: [8] });
      const b = new BlkDriver(d.context);
      for (let i = 0; i < 13; i++) await b.write(i, Buffer.alloc(512, 0x40 + i));
      // Abrupt: the back-end closes, nothing is saved with GET_VRING_BASE.
      await first.close();
      await serve(path, new BlkDevice(disk));
      // Idle ring: the device's next avail position is where the driver published up to, and its
      // used position is the same. Split: last avail idx; packed: QEMU's avail | used << 16.
      const nd = d.queue(0).notificationData() >>> 16;
      const base = packed ? (nd | (nd << 16)) >>> 0 : nd;
      await t.reconnect([base]);
      for (let i = 0; i < 13; i++) assert.equal((await b.read(i, 512))[0], 0x40 + i);
      t.close();
    });
  }
  it('config: the registry record\'s configSize is asked; after SET_CONFIGs, GET_CONFIG refreshes the copy (configSettled), the generation moves', { timeout: 20_000 }, async () => {
    const path = dir.file('input.sock');
    const server = await serveVhostUser({ device: new InputDevice({ profile: keyboardProfile('fe kbd') }), platform: loadNativePlatform(), socketPath: path });
    servers.push(server);
    const t = await VhostUserDriverTransport.connect(path, { deviceId: DeviceId.INPUT, platform: loadNativePlatform() });
    transports.push(t);
    await startVhostUserDriver(t, { wantedFeatures: ALL, queueSizes: [64] });
    const read = (off: number, n: number): Uint8Array => {
      const b = new Uint8Array(n);
      t.readConfig(off, b);
      return b;
    };
    const gen = t.configGeneration();
    t.writeConfig(InputConfig.SELECT, Uint8Array.of(InputConfigSelect.ID_NAME));
    t.writeConfig(InputConfig.SUBSEL, Uint8Array.of(0));
    assert.deepEqual([...read(0, 2)], [InputConfigSelect.ID_NAME, 0], 'writes go through to the copy at once');
    await t.configSettled();
    assert.equal(read(InputConfig.SIZE, 1)[0], 6, 'size: the back-end answered the selector');
    assert.equal(new TextDecoder().decode(read(InputConfig.U, 6)), 'fe kbd', 'the union is the name: 136 bytes were asked (the registry record)');
    assert.ok(t.configGeneration() > gen, 'the generation moved with the new bytes');
    const g2 = t.configGeneration();
    t.writeConfig(InputConfig.SELECT, Uint8Array.of(InputConfigSelect.ID_NAME));
    await t.configSettled();
    assert.equal(t.configGeneration(), g2, 'a refresh that brings nothing new leaves the generation');
  });

  it('a request the back-end refuses through REPLY_ACK fails startVhostUserDriver with a typed error', { timeout: 20_000 }, async () => {
    // A scripted back-end: offers VERSION_1 and REPLY_ACK, answers every need-reply request with
    // success except SET_VRING_NUM, which it refuses (u64 1).
    const platform = loadNativePlatform();
    const path = dir.file('refuse.sock');
    const listenFd = platform.listenUnix(path);
    // Set from callbacks: kept in one object so that control-flow narrowing does not pin them.
    const st: { conn: number; framer: MessageFramer | null; cw: FdWatcher | null } = { conn: -1, framer: null, cw: null };
    const seen: number[] = [];
    const onMessage = (): void => {
      const framer = st.framer;
      for (let i = 0; i < 64 && framer; i++) {
        const m = framer.read();
        if (m === null || m === 'eof') return;
        for (const fd of m.fds) if (fd >= 0) platform.close(fd);
        seen.push(m.request);
        if (m.request === FrontendReq.GET_FEATURES) framer.send(m.request, REPLY_FLAGS, encodeU64(F.VERSION_1 | F_PROTOCOL_FEATURES));
        else if (m.request === FrontendReq.GET_PROTOCOL_FEATURES) framer.send(m.request, REPLY_FLAGS, encodeU64(PF.REPLY_ACK));
        else if (m.flags & HeaderFlag.NEED_REPLY) framer.send(m.request, REPLY_FLAGS, encodeU64(m.request === FrontendReq.SET_VRING_NUM ? 1 : 0));
      }
    };
    const lw = platform.watchReadable(listenFd, () => {
      const fd = platform.accept(listenFd);
      if (fd < 0) return;
      if (st.conn >= 0) {
        platform.close(fd);
        return;
      }
      st.conn = fd;
      st.framer = new MessageFramer(platform, fd);
      st.cw = platform.watchReadable(fd, onMessage);
    });
    try {
      const t = await VhostUserDriverTransport.connect(path, { deviceId: DeviceId.ENTROPY, configSize: 0 });
      transports.push(t);
      await assert.rejects(startVhostUserDriver(t, { wantedFeatures: ALL }), (e: unknown) => isVirtioError(e) && /SET_VRING_NUM refused/.test(e.message));
      assert.ok(seen.includes(FrontendReq.SET_VRING_NUM));
      assert.ok(!seen.includes(FrontendReq.SET_VRING_KICK), 'nothing sent after the refusal');
      t.close();
    } finally {
      lw.stop();
      st.cw?.stop();
      st.framer?.close();
      if (st.conn >= 0) platform.close(st.conn);
      platform.close(listenFd);
    }
  });
});
