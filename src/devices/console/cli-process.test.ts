/**
 * `virtio-ts console` as a process: a socket port, a pty console port and a log-file port served
 * over vhost-user; virtio-ts's vhost-user front-end and ConsoleDriver are the guest. Data both
 * ways, the host side's open/close reaching the driver (PORT_OPEN) and the guest's reaching the
 * back-end's log, a pty resize reaching the driver (RESIZE). Bounded in time; the process is
 * always ended.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ReadStream } from 'node:tty';
import { RUN_MS, startCli, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { ConsoleDriver } from './console-driver.js';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('virtio-ts console as a process', { timeout: 90_000 }, () => {
  it('socket, pty and file ports: data both ways, host and guest open/close reported, pty size as RESIZE; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'con.sock');
      const agent = join(dir, 'agent.sock');
      const log = join(dir, 'guest.log');
      const args = ['console', '--socket-path', sock, '--port', `name=org.test.agent,socket=${agent}`, '--port', 'console,pty', '--port', `name=log,file=${log}`];
      const cli = startCli(args, { ms: RUN_MS * 3 });
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      let client: Socket | null = null;
      let slave: ReadStream | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(cli.err()) && /port 1 pty \/dev\/pts\/\d+\n/.test(cli.out()), 10_000, 'the back-end to serve', child);
        const ptyPath = /port 1 pty (\/dev\/pts\/\d+)\n/.exec(cli.out())![1]!;
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.CONSOLE, platform });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
        const con = new ConsoleDriver(driver.context);
        assert.ok(con.multiport);
        assert.equal(con.maxNrPorts, 3);
        const [p0, p1, p2] = await Promise.all([con.waitForPort(0), con.waitForPort(1), con.waitForPort(2)]);
        // The log file is open from the start; PORT_NAME came before its PORT_OPEN.
        await p2.whenHostOpen();
        assert.equal(p0.name, 'org.test.agent');
        assert.equal(p2.name, 'log');
        assert.ok(p1.isConsole && !p0.isConsole);
        assert.equal(p0.hostOpen, false, 'no client on the socket yet');
        assert.equal(p1.hostOpen, false, 'nobody has the pty open yet');

        // Socket port: a client connecting is PORT_OPEN 1 for the guest.
        client = connect(agent);
        let fromGuest = '';
        client.setEncoding('utf8').on('data', (s: string) => (fromGuest += s));
        await p0.whenHostOpen();
        await p0.setOpen(true);
        await until(() => /port 0 \(org\.test\.agent\): the guest opened it/.test(cli.err()), 10_000, 'the guest open in the log', child);
        client.write('to the guest on 0');
        assert.equal(text(await p0.readBytes(17)), 'to the guest on 0');
        await p0.write('to the host on 0');
        await until(() => fromGuest === 'to the host on 0', 10_000, 'the socket client to read', child);
        client.destroy();
        client = null;
        await until(() => !p0.hostOpen, 10_000, 'PORT_OPEN 0 after the client left', child);
        await p0.setOpen(false);
        await until(() => /port 0 \(org\.test\.agent\): the guest closed it/.test(cli.err()), 10_000, 'the guest close in the log', child);

        // File port: what the guest writes is appended.
        await p2.write('a logged line\n');
        await until(() => readFileSync(log, 'utf8') === 'a logged line\n', 10_000, 'the log file', child);

        // Pty console port: opening the terminal is PORT_OPEN 1; data both ways (raw mode).
        const fd = openSync(ptyPath, constants.O_RDWR | constants.O_NOCTTY);
        slave = new ReadStream(fd);
        slave.setRawMode(true);
        let fromPty = '';
        slave.setEncoding('utf8').on('data', (s: string) => (fromPty += s));
        await p1.whenHostOpen();
        await p1.write('guest to pty');
        await until(() => fromPty === 'guest to pty', 10_000, 'the pty to read', child);
        // A raw tty: written through the slave fd, read by the driver as sent.
        execFileSync('sh', ['-c', `printf 'pty to guest' > ${ptyPath}`]);
        assert.equal(text(await p1.readBytes(12)), 'pty to guest');
        execFileSync('stty', ['-F', ptyPath, 'cols', '132', 'rows', '43']);
        await until(() => p1.size?.cols === 132 && p1.size.rows === 43, 10_000, 'RESIZE for the pty console', child);
        // libuv reopened the terminal for the stream: both descriptors must go.
        slave.destroy();
        slave = null;
        closeSync(fd);
        await until(() => !p1.hostOpen, 10_000, 'PORT_OPEN 0 after the terminal closed', child);
        assert.deepEqual(con.stats, { badControl: 0, unknownPort: 0 });

        con.detach();
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
        assert.equal(isSocket(sock), false, 'the vhost-user socket is removed');
        assert.equal(isSocket(agent), false, 'the port socket is removed');
      } finally {
        client?.destroy();
        slave?.destroy();
        t?.close();
        await cli.end();
      }
    });
  });

  it('a console on stdio (the default port): stdin reaches the guest, the guest\'s output comes cli.out() on stdout', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'con.sock');
      const cli = startCli(['console', '--socket-path', sock, '--size', '100x30'], { stdin: 'pipe' });
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.CONSOLE, platform });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
        const con = new ConsoleDriver(driver.context);
        const p0 = await con.waitForPort(0);
        await p0.whenHostOpen();
        assert.ok(p0.isConsole);
        assert.deepEqual(con.configSize(), { cols: 100, rows: 30 }, '--size is port 0\'s size in the configuration');
        child.stdin.write('typed on stdin\n');
        assert.equal(text(await p0.readBytes(15)), 'typed on stdin\n');
        await p0.write('printed by the guest\n');
        await until(() => cli.out() === 'printed by the guest\n', 10_000, 'stdout', child);
        con.detach();
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
      } finally {
        t?.close();
        await cli.end();
      }
    });
  });
});
