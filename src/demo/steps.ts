// How the demo talks to the person watching: numbered steps, the exact pin-preload command of each step,
// and the command run as a child process so that what is shown is what a user would type.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export class DemoNarrator {
  private step = 0;
  private readonly started = Date.now();

  constructor(private readonly total: number, private readonly out: NodeJS.WritableStream = process.stdout) {}

  heading(text: string): void {
    this.step++;
    this.out.write(`\n[${this.step}/${this.total}] ${text}  (+${((Date.now() - this.started) / 1000).toFixed(1)} s)\n`);
  }

  say(text: string): void {
    this.out.write(`    ${text}\n`);
  }

  elapsedSeconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** Runs `pin-preload ARGS…` as a child, echoing the command and indenting its output. */
  async run(args: readonly string[], options: { env?: NodeJS.ProcessEnv; only?: RegExp } = {}): Promise<void> {
    this.out.write(`    $ pin-preload ${args.map(shellQuote).join(' ')}\n`);
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    // `only`: show just the stdout lines that matter to this step (the rest was shown by an earlier, fuller
    // step); stderr is always shown whole, so a failing step's error and hint are on the screen.
    const indent = (chunk: Buffer, only?: RegExp) =>
      chunk.toString().replace(/\r/g, '\n').split('\n').filter((l) => l.trim() !== '' && (only === undefined || only.test(l))).map((l) => `      ${l}\n`).join('');
    child.stdout.on('data', (d: Buffer) => this.out.write(indent(d, options.only)));
    child.stderr.on('data', (d: Buffer) => this.out.write(indent(d)));
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw new UserError('DEMO_STEP_FAILED', `demo step failed: pin-preload ${args.join(' ')} exited with ${code}`);
  }
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The path of the CLI entry point, for children the demo keeps running (the node mirror). */
export function cliPath(): string {
  return CLI;
}
