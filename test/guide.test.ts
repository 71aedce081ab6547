/**
 * The user guide (docs/guide/) stays true: its code examples (docs/guide/examples/*.ts, compiled
 * with the rest of the tree by tsconfig.json) run and succeed, its error code tables are what
 * the sources define (scripts/error-codes.mjs --check), and its relative links resolve.
 * The vhost-user example needs the native addon (built by npm install); the v86 one is only
 * type-checked (it needs an emulator image: test/v86-*.test.ts boot one).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GUIDE = join(ROOT, 'docs', 'guide');
const BUILT_EXAMPLES = join(ROOT, 'dist', 'docs', 'guide', 'examples');
/** Examples that need more than this process and the addon. */
const TYPE_CHECKED_ONLY = new Set(['v86-attach.ts']);

function run(args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

const examples = readdirSync(join(GUIDE, 'examples')).filter((n) => n.endsWith('.ts')).sort();

describe('user guide (docs/guide)', () => {
  it('has examples, each compiled into dist/ and named by a guide page', () => {
    assert.ok(examples.length >= 5, `examples: ${examples.join(', ')}`);
    const pages = readdirSync(GUIDE).filter((n) => n.endsWith('.md')).map((n) => readFileSync(join(GUIDE, n), 'utf8')).join('\n');
    for (const e of examples) {
      assert.ok(existsSync(join(BUILT_EXAMPLES, e.replace(/\.ts$/, '.js'))), `${e} is compiled (tsconfig.json includes docs/guide/examples)`);
      assert.ok(pages.includes(`examples/${e}`), `a guide page shows examples/${e}`);
    }
  });

  for (const e of examples.filter((n) => !TYPE_CHECKED_ONLY.has(n))) {
    it(`examples/${e} runs and succeeds`, async () => {
      const r = await run([join(BUILT_EXAMPLES, e.replace(/\.ts$/, '.js'))], 120_000);
      assert.equal(r.code, 0, r.out.slice(-4000));
    });
  }

  it('errors.md lists every error code and fault with its meaning, as the sources define them', async () => {
    const r = await run([join(ROOT, 'scripts', 'error-codes.mjs'), '--check'], 60_000);
    assert.equal(r.code, 0, r.out);
    const page = readFileSync(join(GUIDE, 'errors.md'), 'utf8');
    const { ErrorCode } = (await import('../src/errors.js')) as { ErrorCode: Record<string, string> };
    for (const code of Object.values(ErrorCode)) assert.ok(page.includes(`| \`${code}\` |`), `errors.md lists ${code}`);
  });

  it('every relative link of the guide and the device pages resolves to a file', () => {
    const dirs = [GUIDE, join(ROOT, 'docs', 'devices')];
    for (const dir of dirs) {
      for (const page of readdirSync(dir).filter((n) => n.endsWith('.md'))) {
        const text = readFileSync(join(dir, page), 'utf8');
        for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
          const target = m[1]!;
          if (/^[a-z]+:/.test(target)) continue;
          assert.ok(existsSync(join(dir, target)), `${page}: link ${target} resolves`);
        }
      }
    }
  });
});
