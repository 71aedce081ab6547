/**
 * `virtio-ts input` as a process: the back-end serves our keyboard over vhost-user, takes
 * events from stdin and prints the guest's status events; virtio-ts's vhost-user front-end and
 * InputDriver are the other end. Bounded in time; the process is always ended.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI, RUN_MS, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { EvCode, EvType } from '../../spec/input.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { InputDriver } from './input-driver.js';

describe('virtio-ts input as a process', { timeout: 60_000 }, () => {
  it('stdin events reach the driver as one update; LED status comes out on stdout; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'in.sock');
      const child = spawn(process.execPath, [CLI, 'input', '--socket-path', sock, '--preset', 'keyboard'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
      let t: VhostUserDriverTransport | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(err), 10_000, 'the back-end to serve', child);
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.INPUT, platform });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
        const input = new InputDriver(driver.context, { eventBuffers: 8 });
        child.stdin.write('1 30 1\nbogus line\nSYN\n1 30 0\n0 0 0\n');
        assert.deepEqual(await input.nextEvents(4), [
          { type: EvType.KEY, code: EvCode.KEY_A, value: 1 },
          { type: EvType.SYN, code: EvCode.SYN_REPORT, value: 0 },
          { type: EvType.KEY, code: EvCode.KEY_A, value: 0 },
          { type: EvType.SYN, code: EvCode.SYN_REPORT, value: 0 },
        ]);
        await input.sendStatus(EvType.LED, EvCode.LED_CAPSL, 1);
        await until(() => out.includes('status 17 1 1\n'), 10_000, 'the status line', child);
        assert.match(err, /ignored input line: bogus line/);
        input.detach();
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, err);
        assert.equal(isSocket(sock), false, 'the socket is removed');
      } finally {
        clearTimeout(killer);
        t?.close();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await closed;
        }
      }
    });
  });
});
