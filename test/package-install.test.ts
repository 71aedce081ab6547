/**
 * The package as a user gets it: `npm pack` (which prebuilds the addon for linux-x64 and
 * linux-arm64, scripts/prebuild.mjs), then the tarball installed into fresh projects, an ES module
 * one on a PATH without any compiler, make or Python (the prebuilt addon must do), and a CommonJS
 * one, as `npm install <tarball>` does for a user (prom-client fetched from the npm registry). Each project imports every
 * subpath of the "exports" map, runs the in-process demo and the CLI programs from
 * node_modules/.bin, and type-checks TypeScript against the shipped declarations under
 * `moduleResolution` node16 and bundler. The tarball holds no tests, test helpers or sources.
 *
 * Needs npm and network access to the npm registry (prom-client); fails, not skips, without.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; exports: Record<string, string>; bin: Record<string, string> };
const SUBPATHS = Object.keys(PKG.exports).map((k) => (k === '.' ? 'virtio-ts' : `virtio-ts/${k.slice(2)}`));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const TYPE_ROOTS = join(ROOT, 'node_modules', '@types');

interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Runs a command with a time bound (killed after it); resolves with its exit code and output. */
function run(cmd: string, args: string[], cwd: string, timeoutMs = 300_000, env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: { ...env, npm_config_update_notifier: 'false' } }, (error, out, err) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, out, err });
    });
  });
}

async function mustRun(cmd: string, args: string[], cwd: string, timeoutMs?: number, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, cwd, timeoutMs, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed (${r.code}):\n${r.err.slice(-4000)}\n${r.out.slice(-2000)}`);
  return r.out;
}

/** ELF e_machine of a shared object: 0x3e x86-64, 0xb7 AArch64. */
function elfMachine(path: string): number {
  const b = readFileSync(path);
  assert.equal(b.subarray(0, 4).toString('latin1'), '\x7fELF', `${path} is ELF`);
  return b.readUInt16LE(18);
}

/**
 * A PATH holding only node, npm and sh (symlinks in `dir`): no cc, gcc, make or python3, so an
 * install that tried to compile the addon would fail.
 */
function toolchainFreePath(dir: string): string {
  mkdirSync(dir);
  symlinkSync(process.execPath, join(dir, 'node'));
  symlinkSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim(), join(dir, 'npm'));
  // npm runs package scripts with sh.
  symlinkSync('/bin/sh', join(dir, 'sh'));
  return dir;
}

/** Starts `virtio-ts-blk` from a project, waits until it serves, ends it with SIGTERM (bounded). */
async function serveBlkOnce(program: string, dir: string): Promise<{ code: number | null; err: string }> {
  const sock = join(dir, 'blk.sock');
  const child = spawn(program, ['--socket-path', sock, '--memory', '1M'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    const end = Date.now() + 25_000;
    while (!(existsSync(sock) && statSync(sock).isSocket() && /serving /.test(err))) {
      if (child.exitCode !== null || Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(err, /serving /, `virtio-ts-blk serves: ${err}`);
    child.kill('SIGTERM');
    return { code: await closed, err };
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await closed;
    }
  }
}

/** A program that imports every subpath and counts the exports of each (ESM text; CJS through import()). */
function importEverySubpath(): string {
  return `const names = ${JSON.stringify(SUBPATHS)};
const counts = {};
for (const n of names) counts[n] = Object.keys(await import(n)).length;
console.log(JSON.stringify(counts));`;
}

/** TypeScript that uses the shipped types: a device, a driver over the loopback, typed errors. */
const TS_USE = `import { VirtioError, ErrorCode } from 'virtio-ts';
import { EntropyDevice } from 'virtio-ts/devices';
import { EntropyDriver } from 'virtio-ts/driver';
import { createLoopback } from 'virtio-ts/testing';
import type { VirtioDevice } from 'virtio-ts/device';

const device: VirtioDevice = new EntropyDevice();
const lb = await createLoopback(device);
const bytes: Uint8Array = await new EntropyDriver(lb.context).read(16);
const code: ErrorCode = new VirtioError(ErrorCode.TIMEOUT, 'x').code;
console.log(bytes.length, code);
await lb.close();
`;

describe('the packed package installed into fresh projects', { timeout: 900_000 }, () => {
  let work = '';
  let tarball = '';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'vts-pack-'));
    // prepack cross-builds the addon twice: minutes on a loaded 2-core machine.
    const out = await mustRun('npm', ['pack', '--json', '--pack-destination', work], ROOT, 600_000);
    const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, info!.filename);
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('the tarball: dist/src, native sources, LICENSE and README; no tests, test helpers, TypeScript sources or maps pointing at them', async () => {
    const list = (await mustRun('tar', ['-tzf', tarball], work)).split('\n').filter((l) => l !== '');
    const files = list.map((l) => l.replace(/^package\//, ''));
    for (const need of ['package.json', 'LICENSE', 'README.md', 'binding.gyp', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'native/platform.c', 'ui/inspector/index.html', 'ui/inspector/inspector.js', 'ui/inspector/inspector.css']) {
      assert.ok(files.includes(need), `${need} in the tarball`);
    }
    for (const bin of Object.values(PKG.bin)) assert.ok(files.includes(bin), `bin ${bin} in the tarball`);
    // The prebuilt addon for both architectures, each really built for it.
    for (const [arch, machine] of [
      ['x64', 0x3e],
      ['arm64', 0xb7],
    ] as const) {
      const so = `prebuilds/linux-${arch}/virtio-ts.node`;
      assert.ok(files.includes(so), `${so} in the tarball`);
      await mustRun('tar', ['-xzf', tarball, '-C', work, `package/${so}`], work);
      assert.equal(elfMachine(join(work, 'package', so)), machine, `${so} machine`);
    }
    assert.deepEqual(files.filter((f) => /\.test\.(js|d\.ts)(\.map)?$/.test(f)), [], 'no test files');
    assert.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.startsWith('src/')), [], 'no test helpers or sources');
    // Test support kept beside the code it tests (src/**/x-test-support.ts and the like) is not
    // library code: it imports node:assert and drives the code under test.
    assert.deepEqual(files.filter((f) => /(test-support|test-helpers|-rig|test-workload)\.(js|d\.ts)(\.map)?$/.test(f)), [], 'no test support files');
    // Source maps carry their sources (tsconfig inlineSources): src/*.ts is not shipped, so a map
    // naming a source without its text would leave a debugger or stack-trace mapper with nothing.
    const maps = files.filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 0 && maps.includes('dist/src/index.js.map'), 'the maps are shipped');
    await mustRun('tar', ['-xzf', tarball, '-C', work, ...maps.map((m) => `package/${m}`)], work);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(work, 'package', m), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      assert.ok(map.sources.length > 0, `${m} names its sources`);
      assert.equal(map.sourcesContent?.length, map.sources.length, `${m} carries its sources`);
      assert.ok((map.sourcesContent ?? []).every((c) => typeof c === 'string' && c.length > 0), `${m}: every source has its text`);
    }
  });

  it('an ES module project, installed without a C toolchain: every subpath imports, the demo and virtio-ts blk run on the prebuilt addon, TypeScript checks under node16 and bundler', async () => {
    const dir = join(work, 'esm');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'esm-user', version: '1.0.0', type: 'module', private: true }));
    const bare = toolchainFreePath(join(work, 'bare-bin'));
    for (const tool of ['cc', 'gcc', 'make', 'python3']) {
      assert.notEqual((await run('sh', ['-c', `command -v ${tool}`], dir, 10_000, { PATH: bare })).code, 0, `${tool} not on the bare PATH`);
    }
    await mustRun('npm', ['install', '--no-audit', '--no-fund', tarball], dir, 600_000, { ...process.env, PATH: bare });
    assert.equal(existsSync(join(dir, 'node_modules', 'virtio-ts', 'build')), false, 'nothing was compiled');
    const served = await serveBlkOnce(join(dir, 'node_modules', '.bin', 'virtio-ts-blk'), dir);
    assert.equal(served.code, 0, served.err);
    writeFileSync(join(dir, 'imports.js'), importEverySubpath());
    const counts = JSON.parse(await mustRun(process.execPath, ['imports.js'], dir)) as Record<string, number>;
    for (const n of SUBPATHS) assert.ok((counts[n] ?? 0) > 0, `${n} has exports`);
    const version = await mustRun(join(dir, 'node_modules', '.bin', 'virtio-ts'), ['--version'], dir);
    assert.equal(version, `virtio-ts ${PKG.version}\n`);
    const caps = JSON.parse(await mustRun(join(dir, 'node_modules', '.bin', 'virtio-ts-blk'), ['--print-capabilities'], dir)) as { type: string };
    assert.equal(caps.type, 'block');
    const usage = await run(join(dir, 'node_modules', '.bin', 'virtio-ts-rng'), [], dir);
    assert.equal(usage.code, 2, 'a usage error exits 2');
    const demo = await mustRun(join(dir, 'node_modules', '.bin', 'virtio-ts'), ['demo'], dir);
    assert.match(demo, /entropy/i);
    // The prebuilt addon loads (vhost-user needs it).
    const addon = await mustRun(process.execPath, ['--input-type=module', '-e', "const p = (await import('virtio-ts/platform')).loadNativePlatform(); console.log(typeof p.eventfd)"], dir);
    assert.equal(addon.trim(), 'function');
    writeFileSync(join(dir, 'use.ts'), TS_USE);
    for (const [moduleKind, resolution] of [
      ['node16', 'node16'],
      ['esnext', 'bundler'],
    ] as const) {
      const tsconfig = {
        compilerOptions: { target: 'es2022', module: moduleKind, moduleResolution: resolution, strict: true, noEmit: true, typeRoots: [TYPE_ROOTS], types: ['node'] },
        files: ['use.ts'],
      };
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
      await mustRun(process.execPath, [TSC, '-p', 'tsconfig.json'], dir, 120_000);
    }
    // And the same program runs (compiled by tsc, node16).
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'es2022', module: 'node16', moduleResolution: 'node16', strict: true, outDir: 'out', typeRoots: [TYPE_ROOTS], types: ['node'] }, files: ['use.ts'] }));
    await mustRun(process.execPath, [TSC, '-p', 'tsconfig.json'], dir, 120_000);
    assert.equal((await mustRun(process.execPath, ['out/use.js'], dir)).trim(), '16 TIMEOUT');
  });

  it('a CommonJS project: every subpath through import() and require() (Node >= 20.19), TypeScript under node16', async () => {
    const dir = join(work, 'cjs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'cjs-user', version: '1.0.0', type: 'commonjs', private: true }));
    await mustRun('npm', ['install', '--no-audit', '--no-fund', tarball], dir, 600_000);
    writeFileSync(join(dir, 'imports.js'), `(async () => {\n${importEverySubpath()}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
    const counts = JSON.parse(await mustRun(process.execPath, ['imports.js'], dir)) as Record<string, number>;
    for (const n of SUBPATHS) assert.ok((counts[n] ?? 0) > 0, `${n} has exports`);
    // require() of these ES modules works too from Node 20.19 (require(esm), no top-level await
    // in the package); older Node needs import().
    writeFileSync(join(dir, 'requires.js'), `const counts = {};\nfor (const n of ${JSON.stringify(SUBPATHS)}) counts[n] = Object.keys(require(n)).length;\nconsole.log(JSON.stringify(counts));\n`);
    const required = JSON.parse(await mustRun(process.execPath, ['--no-warnings', 'requires.js'], dir)) as Record<string, number>;
    assert.deepEqual(required, counts, 'require() sees the same exports as import()');
    // TypeScript in a CommonJS project: a dynamic import type-checks and runs under node16.
    writeFileSync(
      join(dir, 'use.ts'),
      `async function main(): Promise<void> {\n  const { EntropyDevice } = await import('virtio-ts/devices');\n  const { createLoopback } = await import('virtio-ts/testing');\n  const { EntropyDriver } = await import('virtio-ts/driver');\n  const lb = await createLoopback(new EntropyDevice());\n  console.log((await new EntropyDriver(lb.context).read(8)).length);\n  await lb.close();\n}\nvoid main();\n`,
    );
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'es2022', module: 'node16', moduleResolution: 'node16', strict: true, outDir: 'out', typeRoots: [TYPE_ROOTS], types: ['node'] }, files: ['use.ts'] }));
    await mustRun(process.execPath, [TSC, '-p', 'tsconfig.json'], dir, 120_000);
    assert.equal((await mustRun(process.execPath, ['out/use.js'], dir)).trim(), '8');
  });
});
