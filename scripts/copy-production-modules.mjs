// Copies the installed node_modules minus the dev dependencies (as package-lock.json marks them) and minus
// better-sqlite3's sources and build leftovers, for the offline package. No network, nothing rebuilt.
// usage: node scripts/copy-production-modules.mjs <repo> <target node_modules dir>
import { cpSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';

const [repo, target] = process.argv.slice(2);
if (!repo || !target) {
  console.error('usage: copy-production-modules.mjs <repo> <target node_modules dir>');
  process.exit(2);
}
const lock = JSON.parse(readFileSync(path.join(repo, 'package-lock.json'), 'utf8'));
if (!lock.packages) {
  console.error('package-lock.json has no "packages" map (lockfile v2 or newer is needed)');
  process.exit(1);
}

// Lockfile keys are install paths ("node_modules/a/node_modules/b"); `dev: true` marks what only dev
// dependencies reach, exactly what `npm prune --omit=dev` removes. Anything under such a path goes too.
const devPaths = Object.entries(lock.packages).filter(([key, entry]) => key !== '' && entry.dev === true).map(([key]) => key);

// better-sqlite3 loads build/Release/better_sqlite3.node and nothing else of its build.
const SQLITE = 'node_modules/better-sqlite3';
const sqliteKept = (rel) => !rel.startsWith(`${SQLITE}/`) || !/^(deps|src)(\/|$)/.test(rel.slice(SQLITE.length + 1))
  && (!rel.startsWith(`${SQLITE}/build/`) || rel === `${SQLITE}/build/Release` || rel === `${SQLITE}/build/Release/better_sqlite3.node`);

// A node_modules that is itself a symlink (a shared install) is copied from where it points: copying the
// link would ship a path that does not exist on the node.
const source = realpathSync(path.join(repo, 'node_modules'));
cpSync(source, target, {
  recursive: true,
  verbatimSymlinks: true,
  filter: (file) => {
    const rel = path.join('node_modules', path.relative(source, file)).split(path.sep).join('/').replace(/\/$/, '');
    if (rel === 'node_modules') return true;
    // .bin links point into packages that may be gone; .package-lock.json would describe the dev tree.
    if (rel === 'node_modules/.bin' || rel === 'node_modules/.package-lock.json') return false;
    if (devPaths.some((dev) => rel === dev || rel.startsWith(`${dev}/`))) return false;
    return sqliteKept(rel);
  },
});
