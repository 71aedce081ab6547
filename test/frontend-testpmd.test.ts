/**
 * The vhost-user front-end library with a minimal virtio-net driver (NetClient) against DPDK's
 * testpmd running the net_vhost back-end (no hugepages, no PCI): frames this driver transmits
 * are counted by testpmd in rxonly mode (packets and bytes, from its periodic port statistics),
 * and frames testpmd generates in txonly mode arrive on this driver's receive queue. Split and
 * packed rings. Every testpmd started is stopped by its test.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { NET_TX_QUEUE } from '../src/spec/net.js';
import { spawnBackend, type BackendProcess } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { NetClient, ethernetFrame } from '../src/vhost-user/peers/net-client.js';
import { makeTempDir, type TempDir } from './support/guest.js';

function hasTestpmd(): boolean {
  try {
    // testpmd has no --version that exits 0: look it up on the PATH.
    execFileSync('sh', ['-c', 'command -v dpdk-testpmd'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

const skip = !nativePlatformAvailable() ? 'native addon not built' : hasTestpmd() ? false : 'dpdk-testpmd is not installed (package dpdk-dev)';
/**
 * Transport bits only: no offloads and no mergeable buffers (NetClient handles none), and no MAC:
 * over vhost-user the VMM, not the back-end, owns the configuration space (DPDK answers no
 * GET_CONFIG), so the driver uses a locally administered address (driver/net/4).
 */
const WANT = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX;
const SRC = Uint8Array.from([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]); // locally administered
const DST = Uint8Array.from([0x02, 0x00, 0x5e, 0x00, 0x00, 0x02]);
const ETHERTYPE_LOCAL = 0x88b5; // IEEE 802 local experimental

interface Stats {
  rxPackets: number;
  rxBytes: number;
}

/** The last "RX-packets: N ... RX-bytes: M" of testpmd's port statistics so far. */
function lastStats(out: string): Stats | null {
  const re = /RX-packets:\s+(\d+)\s+RX-missed:\s+\d+\s+RX-bytes:\s+(\d+)/g;
  let m: RegExpExecArray | null;
  let last: Stats | null = null;
  while ((m = re.exec(out)) !== null) last = { rxPackets: Number(m[1]), rxBytes: Number(m[2]) };
  return last;
}

/** Resolves once `cond` holds on the process output (checked as output arrives), or rejects after `timeoutMs`. */
function waitOutput(p: BackendProcess, cond: (out: string) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (cond(p.output())) {
        cleanup();
        resolve();
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`testpmd output did not show the expected state within ${timeoutMs} ms:\n${p.output().slice(-2000)}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      p.child.stdout?.off('data', check);
      p.child.stderr?.off('data', check);
    };
    p.child.stdout?.on('data', check);
    p.child.stderr?.on('data', check);
    check();
  });
}

describe('vhost-user front-end against DPDK testpmd net_vhost', { skip, timeout: 240_000 }, () => {
  let dir: TempDir;
  let n = 0;
  const live: { p: BackendProcess; t: VhostUserDriverTransport | null; prefix: string }[] = [];

  before(async () => {
    dir = await makeTempDir('vts-dp-');
  });
  after(async () => {
    for (const l of live) {
      l.t?.close();
      await l.p.stop(3000);
      rmSync(`/var/run/dpdk/${l.prefix}`, { recursive: true, force: true });
    }
    await dir.remove();
  });

  async function start(mode: 'rxonly' | 'txonly', packed: boolean): Promise<{ p: BackendProcess; net: NetClient; features: bigint; stop(): Promise<void> }> {
    const sock = dir.file(`v${n}.sock`);
    const prefix = `vts-${process.pid}-${n++}`;
    const args = [
      '--no-huge',
      '-m',
      '512',
      '--no-pci',
      `--file-prefix=${prefix}`,
      '--vdev',
      `net_vhost0,iface=${sock},queues=1`,
      '--',
      `--forward-mode=${mode}`,
      '--total-num-mbufs=8192',
      '--stats-period=1',
    ];
    const p = await spawnBackend('dpdk-testpmd', args, sock, 60_000);
    const entry: { p: BackendProcess; t: VhostUserDriverTransport | null; prefix: string } = { p, t: null, prefix };
    live.push(entry);
    const t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.NET, timeoutMs: 20_000, memorySize: 16 << 20 });
    entry.t = t;
    const d = await startVhostUserDriver(t, { wantedFeatures: packed ? WANT | F.RING_PACKED : WANT, queueSizes: [256] });
    const stop = async (): Promise<void> => {
      t.close();
      entry.t = null;
      await p.stop(3000);
      rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
    };
    return { p, net: new NetClient(d.context, { address: SRC }), features: d.features, stop };
  }

  for (const packed of [false, true]) {
    it(`testpmd (rxonly) counts every frame transmitted, packets and bytes (${packed ? 'packed' : 'split'})`, { timeout: 120_000 }, async () => {
      const { p, net, features, stop } = await start('rxonly', packed);
      assert.equal((features & F.RING_PACKED) !== 0n, packed);
      const N = 1000;
      const payload = new Uint8Array(100).map((_, i) => i);
      const frame = ethernetFrame(DST, net.address, ETHERTYPE_LOCAL, payload);
      assert.deepEqual(net.address, SRC);
      const before = lastStats(p.output())?.rxPackets ?? 0;
      assert.equal(before, 0);
      // In batches of 64 so the ring (256) never overflows into the waiting list for long.
      for (let i = 0; i < N; i += 64) {
        await Promise.all(Array.from({ length: Math.min(64, N - i) }, () => net.send(frame)));
      }
      await waitOutput(p, (out) => (lastStats(out)?.rxPackets ?? 0) >= N, 30_000);
      const s = lastStats(p.output());
      assert.deepEqual(s, { rxPackets: N, rxBytes: N * frame.length }, `queue ${NET_TX_QUEUE} frames counted once each`);
      await stop();
    });
  }

  for (const packed of [false, true]) {
    it(`frames testpmd generates (txonly) arrive on the receive queue (${packed ? 'packed' : 'split'})`, { timeout: 120_000 }, async () => {
      const { net, stop } = await start('txonly', packed);
      const frames = await net.receive(500, 128, 60_000);
      assert.equal(frames.length, 500);
      for (const f of frames) {
        // testpmd's txonly generates IPv4/UDP frames (64 bytes by default).
        assert.ok(f.length >= 60 && f.length <= 1518, `frame length ${f.length}`);
        assert.equal((f[12]! << 8) | f[13]!, 0x0800, 'IPv4');
        assert.equal(f[14]! >> 4, 4);
      }
      await stop();
    });
  }
});
