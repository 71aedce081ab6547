/**
 * Every error the library throws is a VirtioError with a stable code (src/errors.ts): callers
 * branch on `code`, never on a message or a built-in class. This scans the built library
 * (dist/src, tests excluded) for a plain Error, RangeError, TypeError... being thrown or used
 * to reject, so none comes back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const distSrc = fileURLToPath(new URL('../src', import.meta.url));

/** Sites allowed to stay (none: every library error has a code). */
const LEFT_FOR_OTHERS: Record<string, number> = {};

// `throw new Error(`, `throw Error(`, `reject(new TypeError(`, `Promise.reject(new Error(`...
const PLAIN = /\b(?:throw|reject)\s*\(?\s*(?:new\s+)?(?:Error|RangeError|TypeError|SyntaxError|ReferenceError|EvalError|URIError|AggregateError)\s*\(/g;

function libraryFiles(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) libraryFiles(p, out);
    else if (name.endsWith('.js') && !name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

describe('errors thrown by the library', () => {
  it('no library source throws or rejects with a plain Error, RangeError or TypeError (VirtioError codes only)', () => {
    const files = libraryFiles(distSrc, []);
    assert.ok(files.length > 50, `the built library is in ${distSrc} (found ${files.length} files)`);
    const problems: string[] = [];
    for (const file of files) {
      const rel = relative(distSrc, file).split(sep).join('/');
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n');
      const sites = lines.flatMap((line, i) => (line.match(PLAIN) ? [`${rel}:${i + 1}: ${line.trim()}`] : []));
      if (sites.length > (LEFT_FOR_OTHERS[rel] ?? 0)) problems.push(...sites);
    }
    assert.deepEqual(problems, [], 'throw or reject with a VirtioError subclass and an ErrorCode (src/errors.ts) instead');
  });

  it('the scan finds the forms it forbids', () => {
    const bad = ["throw new Error('x')", 'throw new RangeError(`y`)', 'reject(new TypeError("z"))', 'return Promise.reject(new Error(a))', 'throw Error(b)'];
    for (const line of bad) assert.ok(line.match(PLAIN), line);
    const good = ["throw new VirtioError(ErrorCode.TIMEOUT, 'x')", "throw new QueueError(f, 'm')", 'reject(err)', 'class MemoryError extends VirtioError {'];
    for (const line of good) assert.equal(line.match(PLAIN), null, line);
  });
});
