/** The registry record of the socket device (5.10): `virtio-ts vsock`, vhost-user type "vsock". */
import assert from 'node:assert/strict';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { VSOCK_CONFIG_LAYOUT } from '../../spec/vsock.js';
import type { DeviceType } from '../device-type.js';
import { MemoryVsockBackend, type MemoryVsockConnection } from './backends/memory-backend.js';
import { VSOCK_CLI } from './cli.js';
import { VsockDevice } from './vsock-device.js';
import { VsockDriver } from './vsock-driver.js';
import type { VsockSocket } from './vsock-socket.js';

/** `createDevice` arguments (structured-cloneable). The host side is an in-process MemoryVsockBackend. */
export interface VsockDeviceArgs {
  /** The guest's context id (guest_cid, 5.10.4; 3 or more). Default 3. */
  readonly guestCid?: number;
  /** Maximum size of each queue. Default 256. */
  readonly queueSize?: number;
}

const MATRIX_CID = 42;

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/**
 * The registry record of virtio-vsock: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const VSOCK_TYPE: DeviceType = {
  name: 'vsock',
  deviceId: DeviceId.VSOCK,
  summary: 'serve a virtio-vsock device over vhost-user (host side: Unix sockets)',
  vhostUser: { type: 'vsock', features: [] },
  // 5.10.4: guest_cid (le64).
  configSize: 8,
  cli: VSOCK_CLI,
  createDevice(args?: unknown): VsockDevice {
    const a = (args ?? {}) as VsockDeviceArgs;
    return new VsockDevice({ guestCid: a.guestCid ?? 3, backend: new MemoryVsockBackend(), ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}) });
  },
  matrixCase() {
    const backend = new MemoryVsockBackend();
    let hostSide: MemoryVsockConnection | null = null;
    backend.listen(1234, (c) => (hostSide = c));
    // Small buffers, so credit runs out and comes back within the case.
    const device = new VsockDevice({ guestCid: MATRIX_CID, backend, queueSize: 64, bufAlloc: 8192, maxHostBytes: 4096 });
    return {
      device,
      async exercise(driver) {
        const cid = readConfigField(VSOCK_CONFIG_LAYOUT, 'guest_cid', (o, l) => driver.context.readConfig(o, l), driver.context.littleEndian);
        assert.equal(cid, MATRIX_CID, 'guest_cid from the config on every transport');
        const vs = new VsockDriver(driver.context, { bufAlloc: 8192 });
        try {
          // Nothing listens on 9: RST.
          await assert.rejects(vs.connect(9), /refused/);
          // Guest -> host: 20000 bytes up (more than the credit), 15000 down, clean close.
          const s = await vs.connect(1234);
          const host = hostSide as MemoryVsockConnection | null;
          assert.ok(host, 'the host listener got the connection');
          const up = pattern(20000, 1);
          await s.send(up);
          await s.shutdownSend();
          await host.until((c) => c.guestEnded);
          assert.deepEqual(host.data, Buffer.from(up), 'the host got the guest bytes in order');
          const down = pattern(15000, 7);
          host.hostSend(down.subarray(0, 9000));
          host.hostSend(down.subarray(9000));
          host.hostEnd();
          assert.deepEqual(await s.readAll(), Buffer.from(down), 'the guest got the host bytes in order');
          await s.close();
          assert.equal(s.closeReason, 'closed', 'the device answered SHUTDOWN with RST');
          await host.until((c) => c.closed);
          // Host -> guest: CONNECT to a listening guest port, a few bytes each way, host closes.
          let accepted: VsockSocket | null = null;
          vs.listen(5000, (g) => (accepted = g));
          const hc = await backend.connect(5000);
          const g = accepted as VsockSocket | null;
          assert.ok(g, 'the guest listener got the connection');
          await g.send(new TextEncoder().encode('hello host'));
          await hc.until((c) => c.data.length >= 10);
          assert.equal(new TextDecoder().decode(hc.data), 'hello host');
          hc.hostSend(new TextEncoder().encode('hello guest'));
          hc.closeHost();
          assert.equal(new TextDecoder().decode(await g.readAll()), 'hello guest');
          await g.until(() => g.state === 'closed');
          await vs.flush(); // the guest's RST answering the host's SHUTDOWN reached the device
          assert.equal(device.connections, 0, 'every connection is gone');
        } finally {
          vs.detach();
        }
      },
    };
  },
};
