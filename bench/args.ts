// Command-line flags of the bench scripts: parsed strictly, with --help printing the script's usage and a
// wrong flag answered in one line (not a stack trace) with exit 2.

import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function benchArgs<O extends Options>(usage: string, options: O): ReturnType<typeof parseArgs<{ options: O }>>['values'] {
  const withHelp = { ...options, help: { type: 'boolean', short: 'h' } } as const;
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ options: withHelp }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values as ReturnType<typeof parseArgs<{ options: O }>>['values'];
}
