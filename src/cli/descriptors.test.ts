/**
 * The one-device programs (virtio-ts-<type>) and `virtio-ts descriptors`: what QEMU's management
 * software reads (vhost-user.json @VhostUserBackend) names a program that really answers
 * `--print-capabilities` with the same type (vhost-user.rst, "Backend program conventions").
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deviceTypes } from '../devices/registry.js';
import { VHOST_USER_BACKEND_TYPES } from '../vhost-user/capabilities.js';
import { CLI, runCli, withDir } from './cli-test-helpers.js';
import { descriptorFileName, packagedProgramPath } from './descriptors.js';
import { EXIT } from './options.js';

interface Exec {
  code: number;
  out: string;
  err: string;
}

/** Runs a file as a program (its shebang, its mode), bounded in time. */
function execProgram(path: string, args: string[]): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(path, args, { timeout: 20_000, killSignal: 'SIGKILL' }, (error, out, err) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, out, err });
    });
  });
}

const PACKAGE_JSON = join(CLI, '..', '..', '..', '..', 'package.json');

describe('one program per device type, and vhost-user.json descriptors', () => {
  it('every device type with a CLI has a program file and a package.json bin virtio-ts-<type>', () => {
    const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { bin: Record<string, string> };
    const withCli = deviceTypes().filter((t) => t.cli !== null);
    assert.ok(withCli.length >= 10);
    for (const t of withCli) {
      assert.equal(pkg.bin[`virtio-ts-${t.name}`], `dist/src/cli/programs/${t.name}.js`, t.name);
      assert.ok(readdirSync(join(packagedProgramPath(t.name), '..')).includes(`${t.name}.js`), t.name);
    }
    assert.equal(Object.keys(pkg.bin).length, withCli.length + 1, 'no bin without a device type');
  });

  it('a program is its sub-command: same capabilities, same usage error (exit 2), same --version', async () => {
    const prog = packagedProgramPath('rng');
    chmodSync(prog, 0o755);
    const caps = await execProgram(prog, ['--print-capabilities']);
    assert.equal(caps.code, 0, caps.err);
    assert.deepEqual(JSON.parse(caps.out), { type: 'rng' });
    const bad = await execProgram(prog, []);
    assert.equal(bad.code, EXIT.USAGE);
    assert.equal(bad.err, "virtio-ts rng: give --socket-path PATH or --fd N\nTry 'virtio-ts rng --help' for its options.\n");
    const v = await execProgram(prog, ['--version']);
    assert.match(v.out, /^virtio-ts \d+\.\d+\.\d+\n$/);
  });

  it('descriptors: one per vhost-user type, valid against the schema, each binary answers --print-capabilities with its type', async () => {
    await withDir(async (dir) => {
      const out = join(dir, 'vhost-user');
      const r = await runCli(['descriptors', '--dir', out]);
      assert.equal(r.code, EXIT.OK, r.err);
      const expected = deviceTypes().filter((t) => t.vhostUser !== null && t.cli !== null);
      assert.deepEqual(readdirSync(out).sort(), expected.map((t) => descriptorFileName(t.name)).sort());
      assert.deepEqual(r.out.trim().split('\n').sort(), expected.map((t) => join(out, descriptorFileName(t.name))).sort());
      for (const t of expected) {
        const d = JSON.parse(readFileSync(join(out, descriptorFileName(t.name)), 'utf8')) as Record<string, unknown>;
        // @VhostUserBackend: description, type and binary are mandatory; tags optional (none here).
        assert.deepEqual(Object.keys(d).sort(), ['binary', 'description', 'type'], t.name);
        assert.equal(d['type'], t.vhostUser!.type);
        assert.ok((VHOST_USER_BACKEND_TYPES as readonly string[]).includes(d['type'] as string));
        assert.match(d['binary'] as string, /^\//);
        const caps = await execProgram(d['binary'] as string, ['--print-capabilities']);
        assert.equal(caps.code, 0, `${t.name}: ${caps.err}`);
        assert.equal((JSON.parse(caps.out) as { type: string }).type, d['type'], t.name);
      }
    });
  });

  it('descriptors --binary-dir names the programs there, and refuses one that is missing or not executable', async () => {
    await withDir(async (dir) => {
      const out = join(dir, 'd');
      const missing = await runCli(['descriptors', '--dir', out, '--binary-dir', dir]);
      assert.equal(missing.code, EXIT.RUNTIME);
      assert.match(missing.err, /virtio-ts-blk is not an executable file/);
      for (const t of deviceTypes().filter((x) => x.vhostUser !== null && x.cli !== null)) {
        const p = join(dir, `virtio-ts-${t.name}`);
        copyFileSync(packagedProgramPath(t.name), p);
        chmodSync(p, t.name === 'net' ? 0o644 : 0o755);
      }
      const notExec = await runCli(['descriptors', '--dir', out, '--binary-dir', dir]);
      assert.equal(notExec.code, EXIT.RUNTIME);
      assert.match(notExec.err, /virtio-ts-net is not an executable file/);
      chmodSync(join(dir, 'virtio-ts-net'), 0o755);
      const ok = await runCli(['descriptors', '--dir', out, '--binary-dir', dir]);
      assert.equal(ok.code, EXIT.OK, ok.err);
      const blk = JSON.parse(readFileSync(join(out, descriptorFileName('blk')), 'utf8')) as { binary: string };
      assert.equal(blk.binary, join(dir, 'virtio-ts-blk'));
    });
  });

  it('descriptors: usage errors are one line, exit 2', async () => {
    const r = await runCli(['descriptors', '--dir', '']);
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.err, /^virtio-ts descriptors: --dir: give a folder\n/);
    const u = await runCli(['descriptors', '--nope']);
    assert.equal(u.code, EXIT.USAGE);
  });
});
