// Where an option's value came from (the flag, a bundle spec's key, an environment variable), so that an
// error raised long after the options were read, while planning, still sends the operator to the right place.

export type OptionOrigin =
  | { readonly kind: 'flag'; readonly flag: string }
  | { readonly kind: 'spec'; readonly flag: string; readonly key: string; readonly file: string }
  | { readonly kind: 'env'; readonly flag: string; readonly variable: string };

export function flagOrigin(flag: string): OptionOrigin {
  return { kind: 'flag', flag };
}

/** The value as an error names it: "--release-keyring", "release-keyring (ocp.toml)", "UPDATE_URL_OVERRIDE (environment)". */
export function originLabel(origin: OptionOrigin): string {
  switch (origin.kind) {
    case 'flag':
      return origin.flag;
    case 'spec':
      return `${origin.key} (${origin.file})`;
    case 'env':
      return `${origin.variable} (environment)`;
  }
}

/** What to check, for a hint: "--graph-url", "graph-url in ocp.toml", "UPDATE_URL_OVERRIDE". */
export function originToCheck(origin: OptionOrigin): string {
  switch (origin.kind) {
    case 'flag':
      return origin.flag;
    case 'spec':
      return `${origin.key} in ${origin.file}`;
    case 'env':
      return origin.variable;
  }
}

/**
 * The hint for a value that is wrong itself: undefined for a flag (the error code's own hint applies), else how
 * to fix it where it was written, and that the flag overrides it.
 */
export function originFixHint(origin: OptionOrigin): string | undefined {
  switch (origin.kind) {
    case 'flag':
      return undefined;
    case 'spec':
      return `fix ${origin.key} in ${origin.file}, or give ${origin.flag} (the command line wins over the spec)`;
    case 'env':
      return `fix or unset ${origin.variable}, or give ${origin.flag} (the command line wins over the environment)`;
  }
}
