// `pin-preload serve`: serve the registered bundles as a read-only registry mirror until SIGTERM/SIGINT.
// Wiring and output only; the work is src/mirror/serve.ts.

import type { Command } from 'commander';
import path from 'node:path';
import { logLine } from './command-log.js';
import { action } from './run-command.js';
import { stopOnSignals } from './stop-signals.js';

/** The configuration wants absolute paths; on the command line a relative one means from here. */
function absolute(file: string | undefined): string | undefined {
  return file === undefined ? undefined : path.resolve(file);
}

interface ServeFlags {
  config?: string;
  bundleDir?: string;
  bundle?: string[];
  listen?: string;
  state?: string;
  tlsCert?: string;
  tlsKey?: string;
  accessLog: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the bundles as a read-only OCI registry mirror (CRI-O, containerd and skopeo pull from it)')
    .option('--config <file>', 'node configuration file ([mirror] listen, [paths] bundles and state)')
    .option('--bundle-dir <dir>', 'register every bundle in this directory (NAME.seal.json, or a lone .tar)')
    .option('--bundle <path...>', 'also register these bundles (tar, volume or .seal.json)')
    .option('--listen <addr>', 'HOST:PORT to listen on (default 127.0.0.1:5000; another address only when given)')
    .option('--state <db>', 'state database holding the bundle index')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'and this key (PEM)')
    .option('--no-access-log', 'do not write a JSON access log line per request to stdout')
    .action(
      action(async (flags: ServeFlags) => {
        // The node configuration (file < flags) gives the defaults: /var/lib/pin-preload/{bundles,state.db}.
        // Loaded when serving, not at start-up (HTTP server, SQLite, metrics): --help and --version stay fast.
        const [{ loadNodeConfig }, { serveBundles }] = await Promise.all([import('../node/config.js'), import('../mirror/serve.js')]);
        const config = await loadNodeConfig({
          ...(flags.config !== undefined ? { configFile: flags.config } : {}),
          flags: { bundles: absolute(flags.bundleDir), state: absolute(flags.state), listen: flags.listen, tlsCert: absolute(flags.tlsCert), tlsKey: absolute(flags.tlsKey) },
        });
        const serving = await serveBundles({
          state: config.paths.state,
          bundleDir: config.paths.bundles,
          bundles: flags.bundle ?? [],
          listen: config.mirror.listen,
          ...(config.mirror.tlsCert !== undefined && config.mirror.tlsKey !== undefined ? { tls: { certFile: config.mirror.tlsCert, keyFile: config.mirror.tlsKey } } : {}),
          accessLog: flags.accessLog,
          log: logLine,
        });
        const served = serving.registered.filter((b) => b.problem === undefined);
        logLine(`serving ${served.length} bundle(s), ${serving.store.repositories().length} repositories, at ${serving.mirror.url} (state ${config.paths.state})`);
        for (const b of served) logLine(`  ${b.path}${b.release !== undefined ? ` — release ${b.release}` : ''}: ${b.images} images`);
        await stopOnSignals((name) => logLine(`${name}: closing the mirror`)).stopped;
        await serving.close();
      }),
    );
}
