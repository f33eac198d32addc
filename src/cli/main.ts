#!/usr/bin/env node
// The pin-preload command line: wiring only. Each command lives in its own file and registers itself here.

import { Command, CommanderError } from 'commander';
import { TOOL_VERSION } from '../version.js';
import { USAGE_EXIT } from './exit-status.js';
import { endQuietlyWhenStdoutCloses, printJsonError, reportAndExit } from './run-command.js';

type Register = (parent: Command) => void;

/**
 * Every command (one line each, keep sorted), by the words that name it, its module loaded only when it is
 * registered: a run of one command loads that command's modules, not every command's (`bundle verify` of a
 * 1.16 GB bundle: 1.06 s of CPU against 1.14 s with every command's modules loaded).
 */
const COMMANDS: ReadonlyArray<{ readonly words: readonly [string] | readonly ['bundle', string]; readonly load: () => Promise<Register> }> = [
  { words: ['bundle', 'create'], load: async () => (await import('./bundle-create.js')).registerBundleCreate },
  { words: ['bundle', 'inspect'], load: async () => (await import('./bundle-inspect.js')).registerBundleInspect },
  { words: ['bundle', 'manifests'], load: async () => (await import('./bundle-manifests.js')).registerBundleManifests },
  { words: ['bundle', 'plan'], load: async () => (await import('./bundle-plan.js')).registerBundlePlan },
  { words: ['bundle', 'push'], load: async () => (await import('./bundle-push.js')).registerBundlePush },
  { words: ['bundle', 'verify'], load: async () => (await import('./bundle-verify.js')).registerBundleVerify },
  { words: ['demo'], load: async () => (await import('./demo.js')).registerDemo },
  { words: ['import'], load: async () => (await import('./import.js')).registerImport },
  { words: ['inventory'], load: async () => (await import('./inventory.js')).registerInventory },
  { words: ['keygen'], load: async () => (await import('./keygen.js')).registerKeygen },
  { words: ['preload'], load: async () => (await import('./preload.js')).registerPreload },
  { words: ['run'], load: async () => (await import('./run.js')).registerRun },
  { words: ['serve'], load: async () => (await import('./serve.js')).registerServe },
  { words: ['status'], load: async () => (await import('./status.js')).registerStatus },
];

/**
 * The program with the command `args` (the arguments after `node main.js`) name, with none for --version, or
 * with every command when they name none (help, a mistyped command: commander then lists or suggests them all).
 */
export async function buildProgram(args: readonly string[]): Promise<Command> {
  const program = new Command('pin-preload')
    .description('Pre-load and pin container images on the nodes of disconnected OpenShift/Kubernetes clusters')
    .version(TOOL_VERSION, '-V, --version')
    // Options after a command name belong to it: `bundle plan --channel … --version 4.16.3` is not the tool's --version.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const bundle = program.command('bundle').description('make, check and look into offline bundles (bastion side)');
  const named = COMMANDS.filter((c) => c.words.every((word, i) => args[i] === word));
  const wanted = args[0] === '--version' || args[0] === '-V' ? [] : named.length === 1 ? named : COMMANDS;
  const registering = await Promise.all(wanted.map(async (c) => ({ parent: c.words.length === 2 ? bundle : program, register: await c.load() })));
  for (const { parent, register } of registering) register(parent);
  return program;
}

/** --json among the options (before a "--"), for failures that happen before a command's options are parsed. */
function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

async function main(): Promise<void> {
  try {
    const program = await buildProgram(process.argv.slice(2));
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) process.exit(0);
      // Commander has printed its message; a --json caller still gets the one error object it parses.
      if (jsonRequested(process.argv)) printJsonError({ code: 'USAGE', message: err.message.replace(/^error: /, ''), hint: 'run with --help for usage' });
      process.exit(USAGE_EXIT);
    }
    reportAndExit(err, { json: jsonRequested(process.argv) });
  }
}

process.on('unhandledRejection', (err) => reportAndExit(err, { json: jsonRequested(process.argv) }));
endQuietlyWhenStdoutCloses();
await main();
