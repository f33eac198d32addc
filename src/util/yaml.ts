// The yaml package, loaded when a YAML text is first parsed rather than with the modules that can parse one:
// `bundle plan` and `bundle create` without a YAML image list skip its load (74 files, 20–100 ms here).

import { createRequire } from 'node:module';
import type * as YamlPackage from 'yaml';

const require = createRequire(import.meta.url);

/** The yaml package (the same module instance an `import 'yaml'` gives: Node resolves both to its CommonJS build). */
export function yaml(): typeof YamlPackage {
  return require('yaml') as typeof YamlPackage;
}
