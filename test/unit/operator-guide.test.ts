// Keeps the troubleshooting tables of docs/operator-guide.md true to the code: every UserError code in src/
// has a row, every code in a row still exists, and the mirror's spec error table matches REGISTRY_ERRORS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as grpc from '@grpc/grpc-js';
import { REGISTRY_ERRORS } from '../../src/mirror/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const GUIDE = path.join(ROOT, 'docs/operator-guide.md');
const CODE_SHAPE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;

interface CodeSite {
  readonly code: string;
  readonly where: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** String literals shaped like codes anywhere in an expression (`'A'`, `x ? 'A' : 'B'`, `e.code ?? 'A'`). */
function codeLiterals(node: ts.Node): string[] {
  if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE_SHAPE.test(node.text)) return [node.text];
  const found: string[] = [];
  node.forEachChild((child) => {
    found.push(...codeLiterals(child));
  });
  return found;
}

function parse(files: ReadonlyArray<{ name: string; text: string }>): ts.SourceFile[] {
  return files.map((f) => ts.createSourceFile(f.name, f.text, ts.ScriptTarget.Latest, true));
}

/** Classes that are UserError or extend it, directly or through another subclass. */
function userErrorClasses(sources: readonly ts.SourceFile[]): Set<string> {
  const parents = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node) && node.name) {
      const parent = node.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword)?.types[0]?.expression;
      if (parent && ts.isIdentifier(parent)) parents.set(node.name.text, parent.text);
    }
    node.forEachChild(visit);
  };
  sources.forEach(visit);
  const classes = new Set(['UserError']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parents) {
      if (classes.has(parent) && !classes.has(child)) {
        classes.add(child);
        grew = true;
      }
    }
  }
  return classes;
}

/** Every code a UserError (or subclass) is constructed with: `new X('CODE', …)` and `super('CODE', …)` in subclasses. */
function userErrorCodes(files: ReadonlyArray<{ name: string; text: string }>): CodeSite[] {
  const sources = parse(files);
  const classes = userErrorClasses(sources);
  const sites: CodeSite[] = [];
  for (const source of sources) {
    const record = (node: ts.CallExpression | ts.NewExpression) => {
      const first = node.arguments?.[0];
      if (!first) return;
      const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
      for (const code of codeLiterals(first)) sites.push({ code, where: `${source.fileName}:${line}` });
    };
    const visit = (node: ts.Node, inSubclass: boolean): void => {
      if (ts.isClassDeclaration(node)) {
        inSubclass = node.name !== undefined && node.name.text !== 'UserError' && classes.has(node.name.text);
      }
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && classes.has(node.expression.text)) record(node);
      if (inSubclass && ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.SuperKeyword) record(node);
      node.forEachChild((child) => visit(child, inSubclass));
    };
    visit(source, false);
  }
  return sites;
}

/** The codes in backticks in the first cell of each row of the guide's tables whose first header cell is `header`. */
function tableCodes(markdown: string, header: string): Set<string> {
  const codes = new Set<string>();
  const lines = markdown.split('\n');
  const cells = (line: string) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  let inTable = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim().startsWith('|')) {
      inTable = false;
      continue;
    }
    const next = lines[i + 1] ?? '';
    if (!inTable && /^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$/.test(next)) {
      inTable = cells(line)[0] === header;
      i++; // the separator row
      continue;
    }
    if (!inTable) continue;
    for (const match of (cells(line)[0] ?? '').matchAll(/`([^`]+)`/g)) if (CODE_SHAPE.test(match[1]!)) codes.add(match[1]!);
  }
  return codes;
}

let scanned: CodeSite[] | undefined;
/** The codes of the real src/ tree, scanned once for all tests. */
function sourceCodes(): CodeSite[] {
  scanned ??= userErrorCodes(sourceFiles(path.join(ROOT, 'src')).map((file) => ({ name: path.relative(ROOT, file), text: readFileSync(file, 'utf8') })));
  return scanned;
}

test('finds codes in new UserError(…), subclass super(…) calls and conditional first arguments, and nothing else', () => {
  const sites = userErrorCodes([
    {
      name: 'a.ts',
      text: `
        class UserError extends Error {}
        class CriError extends UserError { constructor(name: string) { super(name, 'x'); } }
        class PreloadFailedError extends UserError { constructor(r: string) { super(r === 'Storage' ? 'STORAGE_FULL' : 'PULL_FAILED', 'm'); } }
        class NoSpace extends PreloadFailedError { constructor() { super('StorageInsufficient', 'y'); } }
        function f(e: UserError) {
          throw new UserError(
            'IMPORT_NO_SPACE',
            \`not enough space \${'IN_MESSAGE'}\`, { hint: 'HINT_NOT_A_CODE' });
          return new UserError(e.code ?? 'REGISTRY_ERROR', 'x');
        }
        new Error('PLAIN_ERROR');
        new OtherThing('NOT_A_USER_ERROR');
      `,
    },
  ]);
  assert.deepEqual(sites.map((s) => s.code).sort(), ['IMPORT_NO_SPACE', 'PULL_FAILED', 'REGISTRY_ERROR', 'STORAGE_FULL']);
  assert.equal(sites.find((s) => s.code === 'IMPORT_NO_SPACE')?.where, 'a.ts:7');
});

test("reads codes from the first cell of the tables with the given header only", () => {
  const guide = [
    '| Code | Message | Cause | Fix |',
    '|---|---|---|---|',
    '| `KEY_EXISTS` | FILE already exists | `OTHER_CODE` in a later cell | `--output` |',
    '| gRPC: `UNAVAILABLE`, `NOT_FOUND` | CRI failed | | |',
    '',
    '| Spec code | HTTP |',
    '| --- | --- |',
    '| `BLOB_UNKNOWN` | 404 |',
    '',
    '| You see | Meaning |',
    '|---|---|',
    '| `NOT_IN_A_CODE_TABLE` | x |',
  ].join('\n');
  assert.deepEqual([...tableCodes(guide, 'Code')].sort(), ['KEY_EXISTS', 'NOT_FOUND', 'UNAVAILABLE']);
  assert.deepEqual([...tableCodes(guide, 'Spec code')], ['BLOB_UNKNOWN']);
});

test('the operator guide has a troubleshooting row for every user error code in src/', () => {
  const sites = sourceCodes();
  // A scan that finds almost nothing would pass vacuously; these are constructed in three different ways.
  const found = new Set(sites.map((s) => s.code));
  for (const known of ['IMPORT_REJECTED', 'STORAGE_INSUFFICIENT', 'PREFETCH_FAILED', 'REGISTRY_ERROR']) assert.ok(found.has(known), `scan missed ${known}`);
  assert.ok(found.size >= 40, `only ${found.size} codes found in src/`);
  const documented = tableCodes(readFileSync(GUIDE, 'utf8'), 'Code');
  const missing = [...found].filter((code) => !documented.has(code)).sort();
  const where = missing.map((code) => `${code} (${sites.filter((s) => s.code === code).map((s) => s.where).join(', ')})`);
  assert.deepEqual(where, [], `docs/operator-guide.md has no troubleshooting row for: ${where.join('; ')}`);
});

test('every code in the guide’s troubleshooting tables still exists in src/ (or is a gRPC status a CriError carries)', () => {
  const found = new Set(sourceCodes().map((s) => s.code));
  const grpcStatusNames = Object.keys(grpc.status).filter((k) => Number.isNaN(Number(k)));
  for (const name of grpcStatusNames) found.add(name);
  const documented = tableCodes(readFileSync(GUIDE, 'utf8'), 'Code');
  const stale = [...documented].filter((code) => !found.has(code)).sort();
  assert.deepEqual(stale, [], `docs/operator-guide.md documents codes that no longer exist: ${stale.join(', ')}`);
});

test("the guide's mirror table lists exactly the spec error codes the mirror can answer with", () => {
  const documented = tableCodes(readFileSync(GUIDE, 'utf8'), 'Spec code');
  const table = Object.keys(REGISTRY_ERRORS);
  assert.deepEqual(table.filter((c) => !documented.has(c)).sort(), [], 'spec codes missing from the guide');
  assert.deepEqual([...documented].filter((c) => !table.includes(c)).sort(), [], 'codes in the guide that REGISTRY_ERRORS lacks');
});
