// A channel request (`--channel`, or an ImageSetConfiguration's platform.channels[]) turned into the
// releases it stands for, through the update graph, the way oc-mirror chooses them.

import type { PlatformChoice } from '../plan/selection.js';
import { UserError } from '../util/errors.js';
import { channelEnd, compareVersions, releaseOf, releasesInRange, shortestUpdatePath, type GraphRelease, type UpdateGraph } from './update-graph.js';

export interface ChannelRequest {
  readonly name: string;
  readonly minVersion?: string;
  readonly maxVersion?: string;
  /** Only the releases on the shortest update path from min to max (else every release in between). */
  readonly shortestPath: boolean;
  /** oc-mirror's `full`: without minVersion, start at the channel's oldest release (else at maxVersion). */
  readonly full: boolean;
  /** Where it was asked for: "--channel", "isc.yaml:7". */
  readonly origin: string;
}

export type ChannelMode = 'version' | 'shortest-path' | 'range';

export interface ResolvedChannel {
  readonly name: string;
  readonly arch: string;
  readonly graphUrl: string;
  readonly mode: ChannelMode;
  readonly minVersion: string;
  readonly maxVersion: string;
  /** Oldest first: for 'shortest-path' the path itself, each release updating to the next. */
  readonly releases: readonly GraphRelease[];
}

/** Reads the graph of one channel; fetchUpdateGraph in production, the same over a local server in tests. */
export type GraphReader = (channel: string, arch: string) => Promise<UpdateGraph>;

/**
 * The update service's arch for the wanted platforms: one architecture → its graph (amd64, arm64, …);
 * several, or "all" → the `multi` graph, whose payloads are manifest lists covering every architecture.
 */
export function graphArch(platforms: PlatformChoice): string {
  if (platforms === 'all') return 'multi';
  const archs = [...new Set(platforms.map((p) => p.architecture))];
  return archs.length === 1 ? archs[0]! : 'multi';
}

/**
 * As oc-mirror (v2 release/cincinnati.go): no maxVersion → the channel's newest; no minVersion → the
 * maxVersion itself (heads only), or the channel's oldest with `full`; then either the shortest update
 * path from min to max or every release of the channel between them.
 */
export async function resolveChannel(request: ChannelRequest, read: GraphReader, arch: string, graphUrl: string): Promise<ResolvedChannel> {
  const graph = await read(request.name, arch);
  const maxVersion = request.maxVersion ?? channelEnd(graph).version;
  const minVersion = request.minVersion ?? (request.full ? channelEnd(graph, true).version : maxVersion);
  if (compareVersions(minVersion, maxVersion) > 0) {
    throw new UserError('USAGE', `${request.origin}: channel ${request.name}: the minimum version ${minVersion} is newer than the maximum ${maxVersion}`);
  }
  let mode: ChannelMode;
  let releases: GraphRelease[];
  if (minVersion === maxVersion) {
    mode = 'version';
    releases = [releaseOf(graph, maxVersion)];
  } else if (request.shortestPath) {
    mode = 'shortest-path';
    releases = shortestUpdatePath(graph, minVersion, maxVersion);
  } else {
    mode = 'range';
    // Both ends must exist, as with a path: a typo should not silently narrow the range.
    releaseOf(graph, minVersion);
    releaseOf(graph, maxVersion);
    releases = releasesInRange(graph, minVersion, maxVersion);
  }
  return { name: request.name, arch, graphUrl, mode, minVersion, maxVersion, releases };
}
