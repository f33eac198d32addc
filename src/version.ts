// The tool's own version, read once from package.json so that bundles and --version agree.

import { readFileSync } from 'node:fs';

function readVersion(): string {
  // dist/src/version.js → ../../package.json; src/version.ts under a loader → ../package.json
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pin-preload' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0-unknown';
}

export const TOOL_VERSION = readVersion();
