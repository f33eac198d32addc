// Copies the non-TypeScript files the compiled app reads at run time (the CRI .proto) from src/ into
// dist/src/, so that a package built from dist/src alone is complete. Run by `npm run build` after tsc.
import { cpSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const ASSET_EXTENSIONS = ['.proto'];

for (const entry of readdirSync(path.join(repo, 'src'), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !ASSET_EXTENSIONS.includes(path.extname(entry.name))) continue;
  const source = path.join(entry.parentPath, entry.name);
  const target = path.join(repo, 'dist', path.relative(repo, source));
  cpSync(source, target);
  console.log(`copied ${path.relative(repo, source)} -> ${path.relative(repo, target)}`);
}
