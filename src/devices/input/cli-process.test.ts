/**
 * `virtio-ts input` as a process: the back-end serves our keyboard over vhost-user, takes
 * events from stdin and prints the guest's status events; virtio-ts's vhost-user front-end and
 * InputDriver are the other end. Bounded in time; the process is always ended.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCli, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { EvCode, EvType } from '../../spec/input.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { InputDriver, transportConfigSettled } from './input-driver.js';

describe('virtio-ts input as a process', { timeout: 60_000 }, () => {
  it('stdin events reach the driver as one update; LED status comes cli.out() on stdout; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'in.sock');
      const cli = startCli(['input', '--socket-path', sock, '--preset', 'keyboard'], { stdin: 'pipe' });
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
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
        await until(() => cli.out().includes('status 17 1 1\n'), 10_000, 'the status line', child);
        assert.match(cli.err(), /ignored input line: bogus line/);
        input.detach();
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
        assert.equal(isSocket(sock), false, 'the socket is removed');
      } finally {
        t?.close();
        await cli.end();
      }
    });
  });

  it('--profile and --events-socket: JSON lines from a socket client reach the driver, the config is the profile over vhost-user, LED status comes back as JSON', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'in.sock');
      const events = join(dir, 'ev.sock');
      const profile = join(dir, 'pad.json');
      writeFileSync(profile, JSON.stringify({ name: 'json pad', events: { EV_KEY: ['BTN_TOUCH'], EV_ABS: ['ABS_X'], EV_LED: ['LED_CAPSL'] }, abs: { ABS_X: { min: 0, max: 99 } } }));
      const cli = startCli(['input', '--socket-path', sock, '--profile', profile, '--events-socket', events], { stdin: 'pipe' });
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      const client = { socket: null as ReturnType<typeof connect> | null, got: '' };
      try {
        await until(() => isSocket(sock) && isSocket(events) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.INPUT, platform });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
        const input = new InputDriver(driver.context, { eventBuffers: 8, configSettled: transportConfigSettled(t) });
        assert.equal(await input.name(), 'json pad', 'ID_NAME through SET_CONFIG + GET_CONFIG');
        assert.deepEqual(await input.absInfo(0), { min: 0, max: 99, fuzz: 0, flat: 0, res: 0 });
        const c = connect(events);
        client.socket = c;
        c.setEncoding('utf8').on('data', (d: string) => (client.got += d));
        c.write('{"type":"EV_ABS","code":"ABS_X","value":42}\n{"type":"EV_KEY","code":"BTN_TOUCH","value":1}\n{"syn":true}\n');
        assert.deepEqual(await input.nextEvents(3), [
          { type: EvType.ABS, code: 0, value: 42 },
          { type: EvType.KEY, code: 0x14a, value: 1 },
          { type: EvType.SYN, code: EvCode.SYN_REPORT, value: 0 },
        ]);
        await input.sendStatus(EvType.LED, EvCode.LED_CAPSL, 1);
        await until(() => client.got.includes('\n'), 10_000, 'the status line on the events socket', child);
        assert.deepEqual(JSON.parse(client.got.split('\n')[0]!), { status: { type: EvType.LED, code: EvCode.LED_CAPSL, value: 1 } });
        input.detach();
        driver.reset();
        t.close();
        t = null;
        c.destroy();
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
        assert.equal(isSocket(events), false, 'the events socket is removed');
      } finally {
        client.socket?.destroy();
        t?.close();
        await cli.end();
      }
    });
  });
});
