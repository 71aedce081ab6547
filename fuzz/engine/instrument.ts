/**
 * The library instrumented with the engine's own coverage counters: a copy of `dist/src` (and
 * of `dist/fuzz`, unchanged, so the targets import the instrumented library) in `dist-fuzz/`,
 * where every block of the library increments one cell of a shared `Uint32Array`.
 *
 * Why not V8's precise block coverage (node:inspector), which the engine used first: with it
 * every block calls a builtin to count, functions carrying coverage info are never inlined, and
 * a take serialises the counts of every function of the isolate to JSON (milliseconds). A
 * typed-array increment is inlined and optimised like the code around it, and a take is a scan
 * of one array (fuzz/README.md, "Executions per second" has the figures).
 *
 * Blocks counted, as V8's block coverage and libFuzzer's edges would see them: a function's
 * body, each branch of an `if` (an `if` without `else` gets one, so the branch not taken counts
 * too), each loop body, each `case`/`default`, `catch` and `finally`, both arms of `?:`, and the
 * right operand of `&&`, `||` and `??`. Same depth as `dist/` (`dist-fuzz/src/...`), so paths a
 * module builds from its own URL (`../../../build/Release/...`) resolve as in `dist/`.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { threadId } from 'node:worker_threads';
import ts from 'typescript';
import { COUNTERS_GLOBAL } from './edge-counters.js';
const LOCAL = '__vfz';

export interface InstrumentManifest {
  /** Counter cells in all. */
  readonly counters: number;
  /** Newest modification time (ms) of the files it was built from. */
  readonly builtFrom: number;
  /** Per library file (relative to `dist/src`), its first counter and how many it has. */
  readonly files: readonly { readonly path: string; readonly first: number; readonly count: number }[];
}

function listJs(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listJs(p, out);
    else if (e.name.endsWith('.js') && !e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

/** Instruments one module's source; counters are numbered from `first`. Returns the code and the count. */
export function instrumentSource(code: string, fileName: string, first: number): { code: string; count: number } {
  const source = ts.createSourceFile(fileName, code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  let next = first;
  const transformer: ts.TransformerFactory<ts.SourceFile> = (context) => {
    const f = context.factory;
    const bump = (): ts.Expression => f.createPostfixIncrement(f.createElementAccessExpression(f.createIdentifier(LOCAL), f.createNumericLiteral(next++)));
    const bumpStatement = (): ts.Statement => f.createExpressionStatement(bump());
    /** `(counter++, expr)`: counts an expression arm. */
    const counted = (e: ts.Expression): ts.Expression => f.createParenthesizedExpression(f.createCommaListExpression([bump(), e]));
    const prologueLength = (statements: readonly ts.Statement[]): number => {
      let n = 0;
      while (n < statements.length && ts.isExpressionStatement(statements[n]!) && ts.isStringLiteral((statements[n] as ts.ExpressionStatement).expression)) n++;
      return n;
    };
    const countedBlock = (block: ts.Block): ts.Block => {
      const s = block.statements;
      const p = prologueLength(s);
      return f.updateBlock(block, [...s.slice(0, p), bumpStatement(), ...s.slice(p)]);
    };
    const countedStatement = (s: ts.Statement): ts.Statement => (ts.isBlock(s) ? countedBlock(s) : f.createBlock([bumpStatement(), s], true));

    const visit = (node: ts.Node): ts.Node => {
      // Children first: their counters are numbered after the parent's (order does not matter).
      if ((ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isMethodDeclaration(node) || ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) || ts.isSetAccessorDeclaration(node)) && node.body) {
        const v = ts.visitEachChild(node, visit, context) as typeof node;
        const body = countedBlock(v.body!);
        if (ts.isFunctionDeclaration(v)) return f.updateFunctionDeclaration(v, v.modifiers, v.asteriskToken, v.name, v.typeParameters, v.parameters, v.type, body);
        if (ts.isFunctionExpression(v)) return f.updateFunctionExpression(v, v.modifiers, v.asteriskToken, v.name, v.typeParameters, v.parameters, v.type, body);
        if (ts.isMethodDeclaration(v)) return f.updateMethodDeclaration(v, v.modifiers, v.asteriskToken, v.name, v.questionToken, v.typeParameters, v.parameters, v.type, body);
        if (ts.isConstructorDeclaration(v)) return f.updateConstructorDeclaration(v, v.modifiers, v.parameters, body);
        if (ts.isGetAccessorDeclaration(v)) return f.updateGetAccessorDeclaration(v, v.modifiers, v.name, v.parameters, v.type, body);
        return f.updateSetAccessorDeclaration(v as ts.SetAccessorDeclaration, v.modifiers, v.name, v.parameters, body);
      }
      if (ts.isArrowFunction(node)) {
        const v = ts.visitEachChild(node, visit, context);
        const body = ts.isBlock(v.body) ? countedBlock(v.body) : counted(v.body);
        return f.updateArrowFunction(v, v.modifiers, v.typeParameters, v.parameters, v.type, v.equalsGreaterThanToken, body);
      }
      if (ts.isClassStaticBlockDeclaration(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateClassStaticBlockDeclaration(v, countedBlock(v.body));
      }
      if (ts.isIfStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateIfStatement(v, v.expression, countedStatement(v.thenStatement), v.elseStatement ? countedStatement(v.elseStatement) : f.createBlock([bumpStatement()], false));
      }
      if (ts.isForStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateForStatement(v, v.initializer, v.condition, v.incrementor, countedStatement(v.statement));
      }
      if (ts.isForOfStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateForOfStatement(v, v.awaitModifier, v.initializer, v.expression, countedStatement(v.statement));
      }
      if (ts.isForInStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateForInStatement(v, v.initializer, v.expression, countedStatement(v.statement));
      }
      if (ts.isWhileStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateWhileStatement(v, v.expression, countedStatement(v.statement));
      }
      if (ts.isDoStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateDoStatement(v, countedStatement(v.statement), v.expression);
      }
      if (ts.isCaseClause(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateCaseClause(v, v.expression, [bumpStatement(), ...v.statements]);
      }
      if (ts.isDefaultClause(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateDefaultClause(v, [bumpStatement(), ...v.statements]);
      }
      if (ts.isCatchClause(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateCatchClause(v, v.variableDeclaration, countedBlock(v.block));
      }
      if (ts.isTryStatement(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return v.finallyBlock ? f.updateTryStatement(v, v.tryBlock, v.catchClause, countedBlock(v.finallyBlock)) : v;
      }
      if (ts.isConditionalExpression(node)) {
        const v = ts.visitEachChild(node, visit, context);
        return f.updateConditionalExpression(v, v.condition, v.questionToken, counted(v.whenTrue), v.colonToken, counted(v.whenFalse));
      }
      if (ts.isBinaryExpression(node)) {
        const k = node.operatorToken.kind;
        if (k === ts.SyntaxKind.AmpersandAmpersandToken || k === ts.SyntaxKind.BarBarToken || k === ts.SyntaxKind.QuestionQuestionToken) {
          const v = ts.visitEachChild(node, visit, context);
          return f.updateBinaryExpression(v, v.left, v.operatorToken, counted(v.right));
        }
      }
      return ts.visitEachChild(node, visit, context);
    };
    return (sf) => ts.visitEachChild(sf, visit, context);
  };
  const result = ts.transform(source, [transformer]);
  const printed = ts.createPrinter({ newLine: ts.NewLineKind.LineFeed, removeComments: true }).printFile(result.transformed[0]!);
  result.dispose();
  const count = next - first;
  // A module loaded without the engine (a worker thread it starts) counts into its own array.
  const header = `const ${LOCAL} = globalThis.${COUNTERS_GLOBAL} ?? new Uint32Array(${next});\n`;
  return { code: header + printed, count };
}

function readManifest(path: string): InstrumentManifest | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as InstrumentManifest) : null;
}

function newestMtime(files: readonly string[]): number {
  let t = 0;
  for (const p of files) t = Math.max(t, statSync(p).mtimeMs);
  return t;
}

/**
 * Builds `<root>/dist-fuzz` from `<root>/dist` unless it is current (built from files no older
 * than the newest of them); returns its manifest.
 */
export function ensureInstrumented(root: string): InstrumentManifest {
  const dist = join(root, 'dist');
  const out = join(root, 'dist-fuzz');
  const libFiles = listJs(join(dist, 'src'));
  const fuzzFiles = listJs(join(dist, 'fuzz'));
  const builtFrom = newestMtime([...libFiles, ...fuzzFiles]);
  const manifestPath = join(out, 'counters.json');
  const existing = readManifest(manifestPath);
  if (existing?.builtFrom === builtFrom) return existing;
  // Built aside and renamed into place, so a process reading a current copy never sees a half
  // built one (two processes finding it stale both build; the second keeps the first's).
  const aside = `${out}.${process.pid}.${threadId}`;
  rmSync(aside, { recursive: true, force: true });
  const files: { path: string; first: number; count: number }[] = [];
  let next = 0;
  for (const p of libFiles) {
    const rel = relative(dist, p);
    const { code, count } = instrumentSource(readFileSync(p, 'utf8'), p, next);
    mkdirSync(dirname(join(aside, rel)), { recursive: true });
    writeFileSync(join(aside, rel), code);
    files.push({ path: relative(join(dist, 'src'), p), first: next, count });
    next += count;
  }
  for (const p of fuzzFiles) {
    const rel = relative(dist, p);
    mkdirSync(dirname(join(aside, rel)), { recursive: true });
    copyFileSync(p, join(aside, rel));
  }
  const manifest: InstrumentManifest = { counters: next, builtFrom, files };
  writeFileSync(join(aside, 'counters.json'), JSON.stringify(manifest));
  const current = readManifest(manifestPath);
  if (current?.builtFrom === builtFrom) {
    rmSync(aside, { recursive: true, force: true });
    return current;
  }
  rmSync(out, { recursive: true, force: true });
  renameSync(aside, out);
  return manifest;
}
