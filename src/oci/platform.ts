// Platforms ("linux/amd64", "linux/arm64/v8") as written on the command line and in image indexes.

import { UserError } from '../util/errors.js';

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new UserError('PLATFORM_INVALID', `invalid platform "${text}"`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * Whether an index entry's platform satisfies the wanted one. As in containerd's matcher, arm64's
 * variant defaults to v8 and a wanted platform without variant accepts any variant.
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (wanted.variant === undefined) return true;
  const normal = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  return normal(wanted) === normal(candidate);
}
