// Keeps the troubleshooting tables of docs/operator-guide.md true to the error table (util/error-codes.ts):
// every code has a row in the section its entry names, every code in a row is in the table, and the
// mirror's spec error table matches REGISTRY_ERRORS. The table is the list; no source text is scanned.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { REGISTRY_ERRORS } from '../../src/mirror/errors.js';
import { GRPC_STATUS_NAMES, GUIDE_SECTIONS, USER_ERRORS, type UserErrorCode } from '../../src/util/error-codes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const GUIDE = path.join(ROOT, 'docs/operator-guide.md');
const CODE_SHAPE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;

/** GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens. */
function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/**
 * The codes in backticks in the first cell of each row of the guide's tables whose first header cell is
 * `header`, each with the anchor of the section (### heading) the table stands in.
 */
function tableCodes(markdown: string, header: string): Map<string, string[]> {
  const codes = new Map<string, string[]>();
  const lines = markdown.split('\n');
  const cells = (line: string) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  let inTable = false;
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heading = /^#{1,6} (.*)$/.exec(line);
    if (heading) section = headingAnchor(heading[1]!);
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
    for (const match of (cells(line)[0] ?? '').matchAll(/`([^`]+)`/g)) {
      if (CODE_SHAPE.test(match[1]!)) codes.set(match[1]!, [...(codes.get(match[1]!) ?? []), section]);
    }
  }
  return codes;
}

const guideText = () => readFileSync(GUIDE, 'utf8');

test('reads codes from the first cell of the tables with the given header only, with their section', () => {
  const guide = [
    '### 4.1 Choosing images (`bundle plan`)',
    '',
    '| Code | Message | Cause | Fix |',
    '|---|---|---|---|',
    '| `KEY_EXISTS` | FILE already exists | `OTHER_CODE` in a later cell | `--output` |',
    '| gRPC: `UNAVAILABLE`, `NOT_FOUND` | CRI failed | | |',
    '',
    '### 4.7 What the mirror answers',
    '',
    '| Spec code | HTTP |',
    '| --- | --- |',
    '| `BLOB_UNKNOWN` | 404 |',
    '',
    '| You see | Meaning |',
    '|---|---|',
    '| `NOT_IN_A_CODE_TABLE` | x |',
  ].join('\n');
  const codes = tableCodes(guide, 'Code');
  assert.deepEqual([...codes.keys()].sort(), ['KEY_EXISTS', 'NOT_FOUND', 'UNAVAILABLE']);
  assert.deepEqual(codes.get('KEY_EXISTS'), ['41-choosing-images-bundle-plan']);
  assert.deepEqual([...tableCodes(guide, 'Spec code').keys()], ['BLOB_UNKNOWN']);
});

/** The anchors of every heading of `markdown`. */
const headingAnchors = (markdown: string) => new Set([...markdown.matchAll(/^#{1,6} (.*)$/gm)].map((m) => headingAnchor(m[1]!)));

test('every section the error table points at is a heading of the operator guide', () => {
  const anchors = headingAnchors(guideText());
  for (const anchor of Object.values(GUIDE_SECTIONS)) assert.ok(anchors.has(anchor), `docs/operator-guide.md has no heading #${anchor}`);
});

test('the operator guide has a troubleshooting row for every code of the error table, in the section the table names', () => {
  const documented = tableCodes(guideText(), 'Code');
  const misplaced = (Object.keys(USER_ERRORS) as UserErrorCode[])
    .filter((code) => !(documented.get(code) ?? []).includes(USER_ERRORS[code].anchor))
    .map((code) => `${code} (wanted in #${USER_ERRORS[code].anchor}, found in ${documented.get(code)?.join(', ') || 'no section'})`);
  assert.deepEqual(misplaced, [], `docs/operator-guide.md lacks these rows: ${misplaced.join('; ')}`);
});

test('every code in the guide’s troubleshooting tables is in the error table (or is a gRPC status a CriError carries)', () => {
  const known = new Set<string>([...Object.keys(USER_ERRORS), ...GRPC_STATUS_NAMES]);
  const stale = [...tableCodes(guideText(), 'Code').keys()].filter((code) => !known.has(code)).sort();
  assert.deepEqual(stale, [], `docs/operator-guide.md documents codes the error table lacks: ${stale.join(', ')}`);
});

test('the gRPC status names a CriError may carry are exactly grpc-js’s', () => {
  const names = Object.keys(grpc.status).filter((k) => Number.isNaN(Number(k)));
  assert.deepEqual([...GRPC_STATUS_NAMES].sort(), names.sort());
});

test("the guide's mirror table lists exactly the spec error codes the mirror can answer with", () => {
  const documented = new Set(tableCodes(guideText(), 'Spec code').keys());
  const table = Object.keys(REGISTRY_ERRORS);
  assert.deepEqual(table.filter((c) => !documented.has(c)).sort(), [], 'spec codes missing from the guide');
  assert.deepEqual([...documented].filter((c) => !table.includes(c)).sort(), [], 'codes in the guide that REGISTRY_ERRORS lacks');
});

test('every link to a section of the guide itself (#anchor) names one of its headings', () => {
  const text = guideText();
  const anchors = headingAnchors(text);
  const links = [...text.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]!);
  assert.ok(links.length > 0, 'the guide links to its own sections');
  assert.deepEqual(links.filter((a) => !anchors.has(a)), []);
});
