/**
 * The API reference builds with TypeDoc's validation on (typedoc.json: notExported, invalidLink,
 * notDocumented, treatWarningsAsErrors): every type a public signature names is itself exported,
 * every `{@link}` resolves, and every exported symbol has a doc comment, apart from the members
 * of documented `as const` tables and the shrinking backlog in docs/api-undocumented.txt
 * (scripts/typedoc-const-tables.mjs). `--emit none` checks without writing docs/api/. TypeDoc
 * reads src/ only (tsconfig.typedoc.json) and skips type checking (skipErrorChecking: tsc does
 * it): about 14 s of CPU, minutes of wall time only on a machine loaded many times over.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

describe('API reference (TypeDoc, validation on)', () => {
  it('typedoc.json takes every package.json export subpath as an entry point and fails on warnings', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string> };
    const config = JSON.parse(readFileSync(join(ROOT, 'typedoc.json'), 'utf8')) as {
      entryPoints: string[];
      validation: Record<string, boolean>;
      treatWarningsAsErrors: boolean;
    };
    const fromExports = Object.values(pkg.exports).map((d) => d.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));
    assert.deepEqual([...config.entryPoints].sort(), fromExports.sort());
    assert.deepEqual(config.validation, { notExported: true, invalidLink: true, notDocumented: true });
    assert.equal(config.treatWarningsAsErrors, true);
  });

  it('typedoc --emit none reports no warning and no error', async () => {
    const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        process.execPath,
        [TYPEDOC, '--emit', 'none', '--logLevel', 'Warn'],
        { cwd: ROOT, timeout: 540_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
        (error, stdout, stderr) => {
          const c = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
          resolve({ code: c, out: `${stdout}${stderr}` });
        },
      );
    });
    const problems = out.split('\n').filter((l) => /\[(warning|error)\]/.test(l));
    assert.deepEqual(problems.slice(0, 40), [], `typedoc exited ${code}; ${problems.length} problems`);
    assert.equal(code, 0, out.slice(-4000));
  });
});
