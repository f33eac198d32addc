// Side-by-side rounds for the benches: a command timed as a child under /usr/bin/time -v (wall, CPU, peak
// RSS, load), sides run in turn with their order reversed every round, medians with their ranges.

import os from 'node:os';
import { mustSucceed, timed } from './proc.js';

const MB = 1e6;

export interface Sample {
  readonly wallS: number;
  readonly cpuS: number;
  readonly rssMB: number;
  readonly load1: number;
}

/** Runs argv under /usr/bin/time -v (must exit 0): wall, user + system CPU of it and its children, peak RSS. */
export async function measure(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Sample & { stdout: string }> {
  const run = mustSucceed(await timed(argv, { env }));
  const seconds = (label: string) => Number(new RegExp(`${label} time \\(seconds\\): ([\\d.]+)`).exec(run.stderr)?.[1] ?? NaN);
  return { wallS: run.wallMs / 1000, cpuS: seconds('User') + seconds('System'), rssMB: run.peakRssBytes / MB, load1: os.loadavg()[0]!, stdout: run.stdout };
}

export const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
export const spread = (xs: readonly number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

export interface Side {
  readonly name: string;
  readonly before?: () => Promise<void>;
  readonly run: () => Promise<Sample>;
}

/** A and B in turn, R rounds, B first in every other round; every sample kept. */
export async function pair(rounds: number, a: Side, b: Side, log: (line: string) => void): Promise<{ a: Sample[]; b: Sample[] }> {
  const out = { a: [] as Sample[], b: [] as Sample[] };
  for (let r = 0; r < rounds; r++) {
    const order: Array<['a' | 'b', Side]> = r % 2 === 0 ? [['a', a], ['b', b]] : [['b', b], ['a', a]];
    for (const [key, side] of order) {
      await side.before?.();
      const sample = await side.run();
      out[key].push(sample);
      log(`round ${r + 1} ${side.name}: ${sample.wallS.toFixed(2)} s wall, ${sample.cpuS.toFixed(2)} s CPU, ${sample.rssMB.toFixed(0)} MB RSS, load ${sample.load1.toFixed(1)}`);
    }
  }
  return out;
}

