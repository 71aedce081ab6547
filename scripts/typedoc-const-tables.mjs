/**
 * TypeDoc plugin (typedoc.json "plugin") for the validation of the API reference.
 *
 * 1. The members of a documented constant table are documented by the table. The
 *    specification's numbers live in `as const` objects (`BlkReqType`, `BlkConfig`, `FuseOpcode`,
 *    ...) whose keys are the specification's own names (VIRTIO_BLK_T_IN -> `IN`, struct
 *    virtio_blk_config.capacity -> `CAPACITY`) and whose values are literals; the table's comment
 *    says what its members are (request types, byte offsets of a struct's fields, feature bit
 *    numbers) and cites the section, so a comment per key would only repeat the key. Validation
 *    still requires the table itself to be documented; a table without a comment, or a member
 *    that is not a constant (a function, a class instance), still fails. Computed constants
 *    (`CSUM: 1n << 0n`) count: TypeScript types them bigint or number rather than literal.
 *
 * 2. The backlog: `docs/api-undocumented.txt` lists, one full reflection name a line, the exported
 *    symbols that had no doc comment when validation was switched on. They are passed to TypeDoc
 *    as intentionallyNotDocumented, so validation fails on every NEW undocumented export while the
 *    list is worked down. A listed name that is now documented or gone is dropped silently (other
 *    branches rename things); `VIRTIO_TS_DOCS_BACKLOG=write npx typedoc --emit none` rewrites the
 *    file with what is still undocumented (it only ever shrinks it by hand: never add to it).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Converter, ReflectionKind, ReflectionType } from 'typedoc';

const BACKLOG = new URL('../docs/api-undocumented.txt', import.meta.url);

/** An object type whose properties are all literals (or nested tables of literals). */
function isLiteralTable(type) {
  if (!(type instanceof ReflectionType)) return false;
  const members = type.declaration.children ?? [];
  if (members.length === 0 || type.declaration.signatures?.length) return false;
  return members.every((m) => m.kindOf(ReflectionKind.Property) && isLiteralValue(m.type));
}

function isLiteralValue(type) {
  if (!type) return false;
  if (type.type === 'literal') return true;
  // Computed constants (`CSUM: 1n << 0n`, `SIZE: 4 * 8`) are typed bigint / number, not literal.
  if (type.type === 'intrinsic') return type.name === 'bigint' || type.name === 'number' || type.name === 'string' || type.name === 'boolean';
  if (type.type === 'tuple') return type.elements.every(isLiteralValue);
  if (type.type === 'typeOperator' && type.operator === 'readonly') return isLiteralValue(type.target);
  return isLiteralTable(type);
}

function collectMembers(declaration, names) {
  for (const m of declaration.children ?? []) {
    if (!m.hasComment()) names.push(m.getFriendlyFullName());
    if (m.type instanceof ReflectionType) collectMembers(m.type.declaration, names);
  }
}

function readBacklog() {
  try {
    return readFileSync(BACKLOG, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  } catch {
    return [];
  }
}

/**
 * Every reflection TypeDoc's notDocumented validation reports (its walk: functions, methods and
 * accessors are checked through their signatures, a signature is documented by its parent's
 * comment, nothing inside a parameter's type is checked, only symbols of this package count).
 */
function undocumented(project) {
  const K = ReflectionKind;
  const kinds = K.Enum | K.EnumMember | K.Variable | K.Class | K.Interface | K.Property | K.TypeAlias | K.CallSignature | K.GetSignature | K.SetSignature;
  const toProcess = project.getReflectionsByKind(kinds);
  const seen = new Set();
  const names = new Set();
  while (toProcess.length) {
    const r = toProcess.shift();
    if (seen.has(r)) continue;
    seen.add(r);
    let inParameter = false;
    for (let p = r.parent; p; p = p.parent) if (p.kindOf(K.Parameter)) inParameter = true;
    if (inParameter) continue;
    if (r.kindOf(K.TypeLiteral) && r.parent?.kindOf(K.TypeAlias)) {
      toProcess.push(r.parent);
      continue;
    }
    if (r.kindOf(K.CallSignature) && r.parent?.kindOf(K.TypeLiteral)) {
      toProcess.push(r.parent.parent);
      continue;
    }
    if (typeof r.getNonIndexSignatures === 'function' || r.type instanceof ReflectionType) {
      const signatures = r.type instanceof ReflectionType ? r.type.declaration.getNonIndexSignatures() : r.getNonIndexSignatures();
      if (signatures.length) {
        toProcess.push(...signatures);
        if (r.kindOf(K.SignatureContainer)) continue;
      }
    }
    const documented = r.hasComment() || (r.kindOf(K.SomeSignature) && r.parent?.hasComment());
    const symbol = project.getSymbolIdFromReflection(r);
    if (!documented && symbol && symbol.packageName === project.packageName) names.add(r.getFriendlyFullName());
  }
  return names;
}

export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const tableMembers = [];
    for (const v of context.project.getReflectionsByKind(ReflectionKind.Variable)) {
      if (!v.flags.isConst || !v.hasComment() || !isLiteralTable(v.type)) continue;
      collectMembers(v.type.declaration, tableMembers);
    }
    const missing = undocumented(context.project);
    for (const t of tableMembers) missing.delete(t);
    if (process.env.VIRTIO_TS_DOCS_BACKLOG === 'write') {
      const header =
        '# Exported symbols still without a doc comment (scripts/typedoc-const-tables.mjs).\n' +
        '# Work it down: document a symbol, delete its line. Never add a line: a new export gets a comment.\n';
      writeFileSync(BACKLOG, header + [...missing].sort().join('\n') + '\n');
    }
    const backlog = readBacklog().filter((n) => missing.has(n));
    const given = app.options.getValue('intentionallyNotDocumented');
    app.options.setValue('intentionallyNotDocumented', [...new Set([...given, ...tableMembers, ...backlog])]);
  });
}
