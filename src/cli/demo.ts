// `pin-preload demo`: the whole flow on the built-in sample release (README quickstart). Wiring only.

import type { Command } from 'commander';
import { action } from './run-command.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole flow on a built-in sample release: upstream, bundle plan/create/verify, import, serve, pull, status')
    .option('--work-dir <dir>', 'keep everything in this directory (default: a temp dir, removed at the end)')
    .option('--keep', 'keep the temp dir')
    .option('--cri-endpoint <socket>', 'pre-load into this CRI runtime (e.g. unix:///run/containerd/containerd.sock)')
    .option('--no-private-runtime', 'do not start a private containerd (as root, when installed): pull with our own client instead')
    .option('--runtime <kind>', 'kind of that runtime: containerd or crio', 'containerd')
    .action(action(async (opts: { workDir?: string; keep?: boolean; criEndpoint?: string; privateRuntime: boolean; runtime: 'crio' | 'containerd' }) => {
      const { runDemo } = await import('../demo/demo.js');
      await runDemo({ ...(opts.workDir !== undefined ? { workDir: opts.workDir } : {}), keep: opts.keep === true, ...(opts.criEndpoint !== undefined ? { criEndpoint: opts.criEndpoint } : {}), runtimeKind: opts.runtime, privateRuntime: opts.privateRuntime ? 'auto' : 'none' });
    }));
}
