// The OpenShift update graph (Cincinnati): which releases a channel holds and which updates connect them,
// fetched from the update service and walked to find the releases a channel request stands for.

import { UserError } from '../util/errors.js';
import { parseHttpUrlOption } from '../util/http-url.js';
import { flagOrigin, originFixHint, originLabel, originToCheck, type OptionOrigin } from '../util/option-origin.js';

/** The public OpenShift update service's graph endpoint: only a default, tests serve their own graph. */
export const DEFAULT_GRAPH_URL = 'https://api.openshift.com/api/upgrades_info/v1/graph';

/** A whole graph is a few MB at most (every 4.x release of a channel); guards memory against odd answers. */
const MAX_GRAPH_BYTES = 64 * 1024 * 1024;
const GRAPH_TIMEOUT_MS = 30_000;

export interface GraphRelease {
  readonly version: string;
  /** The payload pullspec by digest, e.g. quay.io/openshift-release-dev/ocp-release@sha256:… */
  readonly payload: string;
}

export interface UpdateGraph {
  readonly channel: string;
  readonly arch: string;
  /** The endpoint as asked (without query), for messages. */
  readonly url: string;
  readonly releases: readonly GraphRelease[];
  /** Updates as [from, to] indexes into `releases`. */
  readonly edges: ReadonlyArray<readonly [number, number]>;
}

// Errors: input the user can correct (channel, versions) exits 2; a service that cannot be reached or
// read exits 1.

/**
 * Parses a graph answer: `nodes[]` of {version, payload, metadata} and `edges[]` of [from, to] indexes.
 * `conditionalEdges` (updates with known risks) are ignored, as oc-mirror's path search ignores them.
 */
export function parseUpdateGraph(doc: unknown, where: { url: string; channel: string; arch: string; invalidHint?: string | undefined }): UpdateGraph {
  const bad = (why: string) =>
    new UserError('GRAPH_INVALID', `update graph of channel ${where.channel} from ${where.url}: ${why}`, { subject: { kind: 'url', name: where.url }, ...(where.invalidHint !== undefined ? { hint: where.invalidHint } : {}) });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('not a JSON object');
  const { nodes, edges } = doc as { nodes?: unknown; edges?: unknown };
  if (!Array.isArray(nodes)) throw bad('no nodes list');
  if (!Array.isArray(edges)) throw bad('no edges list');
  const releases = nodes.map((n: unknown, i): GraphRelease => {
    const node = (n ?? {}) as { version?: unknown; payload?: unknown };
    if (typeof node.version !== 'string' || parseVersion(node.version) === undefined) throw bad(`node ${i} has no valid version`);
    if (typeof node.payload !== 'string' || node.payload === '') throw bad(`node ${i} (${node.version}) has no payload`);
    return { version: node.version, payload: node.payload };
  });
  const pairs = edges.map((e: unknown, i): readonly [number, number] => {
    const ok = Array.isArray(e) && e.length === 2 && e.every((x) => Number.isInteger(x) && x >= 0 && x < releases.length);
    if (!ok) throw bad(`edge ${i} is not a pair of node indexes`);
    return [e[0] as number, e[1] as number];
  });
  return { url: where.url, channel: where.channel, arch: where.arch, releases, edges: pairs };
}

/**
 * The hints of errors about the endpoint. The codes' own hints name --graph-url: an endpoint from a spec or
 * UPDATE_URL_OVERRIDE gets the same advice naming where it was given.
 */
function graphHints(origin: OptionOrigin): { unreachable?: string; invalid?: string; status: string } {
  const check = originToCheck(origin);
  if (origin.kind === 'flag') return { status: `retry later, or check ${check}` };
  return {
    unreachable: `check ${check} and the network (or a proxy); on a disconnected bastion give --release REF instead of a channel`,
    invalid: `check ${check}: it must be the update service's graph endpoint (…/api/upgrades_info/v1/graph)`,
    status: `retry later, or check ${check}`,
  };
}

/**
 * GET URL?channel=NAME&arch=ARCH with Accept: application/json, as `oc adm upgrade` and oc-mirror ask. `origin`
 * is where URL was given (default the flag): errors name it.
 */
export async function fetchUpdateGraph(url: string, channel: string, arch: string, options: { timeoutMs?: number; origin?: OptionOrigin | undefined } = {}): Promise<UpdateGraph> {
  const origin = options.origin ?? flagOrigin('--graph-url');
  const hints = graphHints(origin);
  const withHint = (hint: string | undefined) => (hint !== undefined ? { hint } : {});
  const endpoint = parseHttpUrlOption(url, originLabel(origin), originFixHint(origin));
  endpoint.searchParams.set('channel', channel);
  endpoint.searchParams.set('arch', arch);
  let response: Response;
  try {
    response = await fetch(endpoint, { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(options.timeoutMs ?? GRAPH_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new UserError('GRAPH_UNREACHABLE', `cannot reach the update service at ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { subject: { kind: 'url', name: url }, ...withHint(hints.unreachable) });
  }
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status >= 400 && response.status < 500) {
    // The update service answers 400/404 for a channel it does not know (with an error JSON body).
    throw new UserError('CHANNEL_UNKNOWN', `the update service at ${url} does not know channel "${channel}" for arch ${arch} (HTTP ${response.status}${errorDetail(body)})`, { subject: { kind: 'url', name: url } });
  }
  if (response.status !== 200) throw new UserError('GRAPH_UNREACHABLE', `the update service at ${url} answered HTTP ${response.status} for channel ${channel}`, { hint: hints.status, subject: { kind: 'url', name: url } });
  if (body.length > MAX_GRAPH_BYTES) throw new UserError('GRAPH_INVALID', `update graph of channel ${channel} from ${url} is larger than ${MAX_GRAPH_BYTES} bytes`, { subject: { kind: 'url', name: url }, ...withHint(hints.invalid) });
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new UserError('GRAPH_INVALID', `update graph of channel ${channel} from ${url}: not JSON (${(err as Error).message})`, { subject: { kind: 'url', name: url }, hint: hints.invalid ?? "check --graph-url: it must be the update service's graph endpoint" });
  }
  return parseUpdateGraph(doc, { url, channel, arch, invalidHint: hints.invalid });
}

function errorDetail(body: Buffer): string {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { reason?: unknown; kind?: unknown };
    const reason = doc.reason ?? doc.kind;
    return typeof reason === 'string' ? `: ${reason.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

interface ParsedVersion {
  readonly core: readonly [number, number, number];
  readonly pre: readonly string[];
}

/** Semantic versions as the update service uses them: 4.16.3, 4.17.0-rc.1, 4.17.0-ec.2 (build metadata ignored). */
export function parseVersion(text: string): ParsedVersion | undefined {
  const m = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(text);
  if (!m) return undefined;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split('.') : [] };
}

/** Semver precedence: negative when a < b. A version with a pre-release sorts before the release itself. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i]! - y.core[i]!;
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const [p, q] = [x.pre[i]!, y.pre[i]!];
    if (p === q) continue;
    const [pn, qn] = [/^\d+$/.test(p), /^\d+$/.test(q)];
    if (pn && qn) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return x.pre.length - y.pre.length;
}

function indexOfVersion(graph: UpdateGraph, version: string): number {
  const i = graph.releases.findIndex((r) => r.version === version);
  if (i === -1) {
    const known = [...graph.releases].sort((a, b) => compareVersions(a.version, b.version)).map((r) => r.version);
    const shown = known.length > 8 ? `${known.slice(0, 3).join(', ')}, …, ${known.slice(-3).join(', ')}` : known.join(', ');
    throw new UserError('VERSION_NOT_IN_CHANNEL', `version ${version} is not in channel ${graph.channel} (arch ${graph.arch}); the channel has ${known.length} releases${known.length > 0 ? `: ${shown}` : ''}`);
  }
  return i;
}

export function releaseOf(graph: UpdateGraph, version: string): GraphRelease {
  return graph.releases[indexOfVersion(graph, version)]!;
}

/** The channel's newest (or, with `oldest`, its oldest) release. */
export function channelEnd(graph: UpdateGraph, oldest = false): GraphRelease {
  if (graph.releases.length === 0) throw new UserError('VERSION_NOT_IN_CHANNEL', `channel ${graph.channel} (arch ${graph.arch}) holds no releases`, { hint: 'check the channel name and --platform' });
  const sorted = [...graph.releases].sort((a, b) => compareVersions(a.version, b.version));
  return oldest ? sorted[0]! : sorted[sorted.length - 1]!;
}

/**
 * The releases on the shortest update path from `from` to `to`, both included (breadth-first over the
 * edges, as oc-mirror does with `shortestPath: true`). Among equally short paths the one whose steps
 * list first in the graph wins, so the answer is stable for the same graph.
 */
export function shortestUpdatePath(graph: UpdateGraph, from: string, to: string): GraphRelease[] {
  const start = indexOfVersion(graph, from);
  const goal = indexOfVersion(graph, to);
  const next = new Map<number, number[]>();
  for (const [a, b] of graph.edges) {
    const targets = next.get(a);
    if (targets) targets.push(b);
    else next.set(a, [b]);
  }
  const previous = new Map<number, number>([[start, start]]);
  const queue = [start];
  for (let head = 0; head < queue.length && !previous.has(goal); head++) {
    const at = queue[head]!;
    for (const n of next.get(at) ?? []) {
      if (previous.has(n)) continue;
      previous.set(n, at);
      queue.push(n);
    }
  }
  if (!previous.has(goal)) {
    throw new UserError('NO_UPDATE_PATH', `no update path from ${from} to ${to} in channel ${graph.channel} (arch ${graph.arch})`);
  }
  const path = [goal];
  while (path[0] !== start) path.unshift(previous.get(path[0]!)!);
  return path.map((i) => graph.releases[i]!);
}

/** Every release of the channel from `min` to `max` inclusive, oldest first (oc-mirror without shortestPath). */
export function releasesInRange(graph: UpdateGraph, min: string, max: string): GraphRelease[] {
  return graph.releases
    .filter((r) => compareVersions(r.version, min) >= 0 && compareVersions(r.version, max) <= 0)
    .sort((a, b) => compareVersions(a.version, b.version));
}
