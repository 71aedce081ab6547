/**
 * The NetDriver (through virtio-ts's vhost-user front-end) against DPDK testpmd's net_vhost
 * back-end with its own port looped to itself (`--port-topology=loop`): in `macswap` mode every
 * frame comes back with source and destination swapped, in `io` mode unchanged; payloads intact,
 * both ring layouts, mergeable receive buffers. Over vhost-user the VMM owns the configuration
 * and the control queue (DPDK answers no GET_CONFIG), so the driver asks only for data-path
 * features. Under CI=true a missing testpmd fails the file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { NetDriver } from '../src/devices/net/net-driver.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { NetF } from '../src/spec/net.js';
import { spawnBackend } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { makeTempDir, type TempDir } from './support/guest.js';

function missing(): string | null {
  if (!nativePlatformAvailable()) return 'native addon not built';
  try {
    execFileSync('sh', ['-c', 'command -v dpdk-testpmd'], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    return 'dpdk-testpmd is not installed (Debian package dpdk)';
  }
  return null;
}
const why = missing();
if (why !== null && process.env['CI'] === 'true') throw new Error(`CI=true: ${why}`);

/** Data-path features only: the VMM (here nobody) owns config and control queue over vhost-user. */
const WANT = NetF.MRG_RXBUF | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX;
const PEER = Uint8Array.of(0x02, 0x00, 0x5e, 0x00, 0x00, 0x09);

function frame(dst: Uint8Array, src: Uint8Array, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // IEEE 802 local experimental
  for (let i = 14; i < len; i++) f[i] = (i * 13 + seed) & 0xff;
  return f;
}

describe('NetDriver against DPDK testpmd net_vhost (io and macswap forwarding)', { skip: why ?? false, timeout: 300_000 }, () => {
  let dir: TempDir;
  let n = 0;
  before(async () => {
    dir = await makeTempDir('vts-ndp-');
  });
  after(async () => {
    await dir?.remove();
  });

  for (const mode of ['macswap', 'io'] as const) {
    for (const packed of [false, true]) {
      it(`${mode}: 256 frames of 60..1514 bytes come back ${mode === 'macswap' ? 'with the addresses swapped' : 'unchanged'} (${packed ? 'packed' : 'split'})`, { timeout: 120_000 }, async () => {
        const sock = dir.file(`d${n}.sock`);
        const prefix = `vtsnd-${process.pid}-${n++}`;
        const p = await spawnBackend(
          'dpdk-testpmd',
          ['--no-huge', '-m', '512', '--no-pci', `--file-prefix=${prefix}`, '--vdev', `net_vhost0,iface=${sock},queues=1`, '--', `--forward-mode=${mode}`, '--port-topology=loop', '--total-num-mbufs=8192', '--stats-period=1'],
          sock,
          60_000,
        );
        let t: VhostUserDriverTransport | null = null;
        try {
          t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.NET, timeoutMs: 20_000, memorySize: 16 << 20 });
          const vd = await startVhostUserDriver(t, { wantedFeatures: WANT | (packed ? F.RING_PACKED : 0n), driverType: NetDriver.type, queueSizes: [256, 256] });
          assert.equal((vd.features & F.RING_PACKED) !== 0n, packed);
          assert.equal((vd.features & NetF.MRG_RXBUF) !== 0n, true, 'mergeable receive buffers negotiated');
          const net = new NetDriver(vd.context);
          const me = net.mac;
          for (let i = 0; i < 256; i++) {
            const len = 60 + ((i * 97) % (1514 - 60 + 1));
            const f = frame(PEER, me, len, i);
            const [, got] = await Promise.all([net.send(f), net.receive()]);
            const want = f.slice();
            if (mode === 'macswap') {
              want.set(me, 0);
              want.set(PEER, 6);
            }
            assert.deepEqual(got.data, want, `frame ${i} (${len} bytes)`);
          }
          net.detach();
        } catch (e) {
          throw new Error(`${(e as Error).message}\n----- testpmd -----\n${p.output().slice(-3000)}`, { cause: e });
        } finally {
          t?.close();
          await p.stop(3000);
          rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
        }
      });
    }
  }
});
