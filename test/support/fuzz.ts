// Shared pieces of the property-based (fuzz) tests: the run budget and the one rule every parser obeys —
// bad input ends in the module's typed error, never in a TypeError or another unplanned exception.

import assert from 'node:assert/strict';
import fc from 'fast-check';

/** Runs per property; PIN_PRELOAD_FUZZ_RUNS raises it for a longer local hunt. */
export const FUZZ_RUNS = Number(process.env.PIN_PRELOAD_FUZZ_RUNS ?? 300);

/**
 * The seed of every property: fixed by default, so `npm test` (and CI, where a failure blocks landing)
 * checks the same inputs on every run; PIN_PRELOAD_FUZZ_SEED=N picks another, =random a new one per
 * property (fast-check prints it with any counterexample, to replay with PIN_PRELOAD_FUZZ_SEED=N).
 */
const FUZZ_SEED_SETTING = process.env.PIN_PRELOAD_FUZZ_SEED ?? '20261125';
const FUZZ_SEED = FUZZ_SEED_SETTING === 'random' ? undefined : Number(FUZZ_SEED_SETTING);
if (FUZZ_SEED !== undefined && !Number.isSafeInteger(FUZZ_SEED)) throw new Error(`PIN_PRELOAD_FUZZ_SEED must be an integer or "random", not "${FUZZ_SEED_SETTING}"`);

/** Options for fc.assert: bounded runs (no time limit: fast-check's timer would hold the process open). */
export const FUZZ_OPTIONS = { numRuns: FUZZ_RUNS, ...(FUZZ_SEED === undefined ? {} : { seed: FUZZ_SEED }) } as const;

// Error classes are matched by constructor, so a subclass of TypeError never passes as a UserError.
type ErrorClass = abstract new (...args: never[]) => Error;

/** Calls `fn`; returns its value, or undefined when it threw one of `allowed`; fails the property otherwise. */
export function expectOnly<T>(fn: () => T, allowed: readonly ErrorClass[], input?: unknown): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (allowed.some((cls) => err instanceof cls)) return undefined;
    assert.fail(
      `expected only ${allowed.map((c) => c.name).join(' or ')}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` +
        (input === undefined ? '' : ` for input ${safeJson(input)}`),
    );
  }
}

/** Async form of expectOnly. */
export async function expectOnlyAsync<T>(fn: () => Promise<T>, allowed: readonly ErrorClass[], input?: unknown): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (allowed.some((cls) => err instanceof cls)) return undefined;
    assert.fail(`expected only ${allowed.map((c) => c.name).join(' or ')}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` + (input === undefined ? '' : ` for input ${safeJson(input)}`));
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))?.slice(0, 500) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Text that leans towards the characters parsers care about (separators, quotes, brackets, unicode). */
export function trickyText(maxLength = 60): fc.Arbitrary<string> {
  const pieces = fc.constantFrom(
    ':', '/', '@', '.', '-', '_', '__', '[', ']', '{', '}', '"', "'", '=', '#', '\n', '\r', '\t', ' ', '\0', '*', ',',
    'sha256:', 'sha512:', 'a', 'Z', '0', '9', 'é', '🐳', '\u2028', 'localhost', 'docker.io', 'quay.io', ':5000', 'latest',
  );
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.array(pieces, { maxLength: Math.floor(maxLength / 3) }).map((a) => a.join('')),
  );
}

/** 64 lowercase hex digits. */
export const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
