// A node:test reporter that writes one JSON line per finished test or suite, for
// `npm run spec-coverage` to count evidence from results (not from source text):
//
//   {"kind":"run","started":"<ISO time>"}                       first line
//   {"kind":"result","file":"dist/test/x.test.js","path":["describe title","test title"],
//    "type":"test"|"suite","status":"pass"|"fail"|"skip"|"todo"}
//   {"kind":"end","finished":"<ISO time>"}                      last line, only when the run ended
//
// `path` is the chain of titles from the outermost describe down to the test itself, so a title
// built at run time (template literal, loop) is recorded as it ran. `npm test` (scripts/test.mjs)
// passes it with --test-reporter-destination=.work/test-results.jsonl next to the usual reporter.
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The file relative to the project when it is inside it (dist/test/x.test.js), else as given. */
function projectPath(file) {
  const rel = relative(root, file);
  return rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

function statusOf(data, failed) {
  if (data.todo !== undefined && data.todo !== false) return 'todo';
  if (data.skip !== undefined && data.skip !== false) return 'skip';
  return failed ? 'fail' : 'pass';
}

export async function* resultsReporter(source) {
  yield `${JSON.stringify({ kind: 'run', started: new Date().toISOString() })}\n`;
  // test:start events come in definition order with their nesting level, before the test's
  // own pass/fail: the titles on the stack at levels below a test are its enclosing suites.
  const stacks = new Map(); // file -> titles by nesting level
  for await (const event of source) {
    if (event.type !== 'test:start' && event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data;
    const file = data.file === undefined ? '' : projectPath(data.file);
    const stack = stacks.get(file) ?? [];
    stacks.set(file, stack);
    if (event.type === 'test:start') {
      stack.length = data.nesting;
      stack.push(data.name);
      continue;
    }
    // A test file that fails to load is reported as a failed test named after the file at
    // level 0, without a start event: its path is just that name.
    const path = stack[data.nesting] === data.name ? stack.slice(0, data.nesting + 1) : [...stack.slice(0, data.nesting), data.name];
    const type = data.details?.type === 'suite' ? 'suite' : 'test';
    const status = statusOf(data, event.type === 'test:fail');
    yield `${JSON.stringify({ kind: 'result', file, path, type, status })}\n`;
  }
  yield `${JSON.stringify({ kind: 'end', finished: new Date().toISOString() })}\n`;
}

// node's --test-reporter loads a module's default export (the one exception to the named-exports rule).
export default resultsReporter;
