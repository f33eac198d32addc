#!/usr/bin/env node
// The pin-preload command line: wiring only. Each command lives in its own file and registers itself here.

import { Command, CommanderError } from 'commander';
import { TOOL_VERSION } from '../version.js';
import { registerBundleCreate } from './bundle-create.js';
import { registerBundleInspect } from './bundle-inspect.js';
import { registerBundleManifests } from './bundle-manifests.js';
import { registerBundlePlan } from './bundle-plan.js';
import { registerBundlePush } from './bundle-push.js';
import { registerDemo } from './demo.js';
import { registerBundleVerify } from './bundle-verify.js';
import { registerImport } from './import.js';
import { registerInventory } from './inventory.js';
import { registerKeygen } from './keygen.js';
import { registerPreload } from './preload.js';
import { registerRun } from './run.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';
import { USAGE_EXIT } from './exit-status.js';
import { endQuietlyWhenStdoutCloses, printJsonError, reportAndExit } from './run-command.js';

export function buildProgram(): Command {
  const program = new Command('pin-preload')
    .description('Pre-load and pin container images on the nodes of disconnected OpenShift/Kubernetes clusters')
    .version(TOOL_VERSION, '-V, --version')
    // Options after a command name belong to it: `bundle plan --channel … --version 4.16.3` is not the tool's --version.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const bundle = program.command('bundle').description('make, check and look into offline bundles (bastion side)');
  void bundle;
  // Command registrations (one line each, keep sorted):
  registerBundleCreate(bundle);
  registerBundleInspect(bundle);
  registerBundleManifests(bundle);
  registerBundlePlan(bundle);
  registerBundlePush(bundle);
  registerBundleVerify(bundle);
  registerDemo(program);
  registerImport(program);
  registerInventory(program);
  registerKeygen(program);
  registerPreload(program);
  registerRun(program);
  registerServe(program);
  registerStatus(program);
  return program;
}

/** --json among the options (before a "--"), for failures that happen before a command's options are parsed. */
function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
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
