// The update graph: parsing the service's answer, version order, the shortest update path and ranges, and
// a channel request resolved the way oc-mirror does, over a graph served by a real HTTP server on 127.0.0.1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { graphArch, resolveChannel, type ChannelRequest } from '../../src/release/channel.js';
import { compareVersions, fetchUpdateGraph, parseUpdateGraph, releasesInRange, shortestUpdatePath, type UpdateGraph } from '../../src/release/update-graph.js';
import { UserError } from '../../src/util/errors.js';

const payload = (n: number) => `quay.io/openshift-release-dev/ocp-release@sha256:${n.toString(16).padStart(64, '0')}`;
const VERSIONS = ['4.16.0', '4.16.1', '4.16.2', '4.16.3', '4.16.4', '4.16.10'];
// Real graphs list nodes in no particular order, and updates skip versions.
const NODES = ['4.16.3', '4.16.0', '4.16.10', '4.16.1', '4.16.4', '4.16.2'];
const edge = (a: string, b: string) => [NODES.indexOf(a), NODES.indexOf(b)];
const GRAPH_DOC = {
  nodes: NODES.map((version) => ({ version, payload: payload(VERSIONS.indexOf(version) + 1), metadata: { 'io.openshift.upgrades.graph.release.channels': 'stable-4.16' } })),
  edges: [edge('4.16.0', '4.16.1'), edge('4.16.1', '4.16.2'), edge('4.16.2', '4.16.3'), edge('4.16.3', '4.16.4'), edge('4.16.4', '4.16.10'), edge('4.16.1', '4.16.4'), edge('4.16.0', '4.16.2')],
  conditionalEdges: [{ edges: [{ from: '4.16.0', to: '4.16.10' }], risks: [{ name: 'SomeRisk' }] }],
};
const WHERE = { url: 'http://graph.test/graph', channel: 'stable-4.16', arch: 'amd64' };
const graph: UpdateGraph = parseUpdateGraph(GRAPH_DOC, WHERE);

const rejectsWith = (code: RegExp | string, message?: RegExp) => (err: unknown) =>
  err instanceof UserError && (typeof code === 'string' ? err.code === code : code.test(err.code)) && (message === undefined || message.test(err.message));

test('versions order as semver: numerically, a pre-release before its release', () => {
  const sorted = ['4.16.10', '4.16.2', '4.17.0', '4.17.0-rc.1', '4.17.0-ec.2', '4.17.0-rc.10', '4.9.1'].sort(compareVersions);
  assert.deepEqual(sorted, ['4.9.1', '4.16.2', '4.16.10', '4.17.0-ec.2', '4.17.0-rc.1', '4.17.0-rc.10', '4.17.0']);
});

test('the shortest update path goes over the fewest edges, ignoring conditional edges', () => {
  assert.deepEqual(shortestUpdatePath(graph, '4.16.0', '4.16.10').map((r) => r.version), ['4.16.0', '4.16.1', '4.16.4', '4.16.10']);
  assert.deepEqual(shortestUpdatePath(graph, '4.16.2', '4.16.3').map((r) => [r.version, r.payload]), [['4.16.2', payload(3)], ['4.16.3', payload(4)]]);
  assert.throws(() => shortestUpdatePath(graph, '4.16.4', '4.16.1'), rejectsWith('NO_UPDATE_PATH', /no update path from 4\.16\.4 to 4\.16\.1 in channel stable-4\.16/));
  assert.throws(() => shortestUpdatePath(graph, '4.16.0', '4.16.99'), rejectsWith('VERSION_NOT_IN_CHANNEL', /version 4\.16\.99 is not in channel stable-4\.16 \(arch amd64\); the channel has 6 releases/));
});

test('a range holds every release of the channel between its ends, oldest first', () => {
  assert.deepEqual(releasesInRange(graph, '4.16.1', '4.16.4').map((r) => r.version), ['4.16.1', '4.16.2', '4.16.3', '4.16.4']);
});

test('a malformed graph is refused naming the channel and what is wrong', () => {
  assert.throws(() => parseUpdateGraph({ nodes: [{ version: '4.16.0' }], edges: [] }, WHERE), rejectsWith('GRAPH_INVALID', /stable-4\.16 .*node 0 \(4\.16\.0\) has no payload/));
  assert.throws(() => parseUpdateGraph({ nodes: GRAPH_DOC.nodes, edges: [[0, 9]] }, WHERE), rejectsWith('GRAPH_INVALID', /edge 0 is not a pair of node indexes/));
  assert.throws(() => parseUpdateGraph([], WHERE), rejectsWith('GRAPH_INVALID'));
});

test('channel requests resolve as oc-mirror does: heads only, one version, shortest path, full range', async () => {
  const read = async () => graph;
  const request = (over: Partial<ChannelRequest>): ChannelRequest => ({ name: 'stable-4.16', shortestPath: false, full: false, origin: 'test', ...over });
  const versions = async (over: Partial<ChannelRequest>) => (await resolveChannel(request(over), read, 'amd64', WHERE.url)).releases.map((r) => r.version);
  assert.deepEqual(await versions({}), ['4.16.10']);
  assert.deepEqual(await versions({ minVersion: '4.16.3', maxVersion: '4.16.3' }), ['4.16.3']);
  assert.deepEqual(await versions({ minVersion: '4.16.0', maxVersion: '4.16.10', shortestPath: true }), ['4.16.0', '4.16.1', '4.16.4', '4.16.10']);
  assert.deepEqual(await versions({ minVersion: '4.16.2', maxVersion: '4.16.4' }), ['4.16.2', '4.16.3', '4.16.4']);
  assert.deepEqual(await versions({ maxVersion: '4.16.2', full: true }), ['4.16.0', '4.16.1', '4.16.2']);
  await assert.rejects(versions({ minVersion: '4.16.4', maxVersion: '4.16.1' }), rejectsWith('USAGE', /minimum version 4\.16\.4 is newer than the maximum 4\.16\.1/));
  await assert.rejects(versions({ minVersion: '4.16.0', maxVersion: '4.16.5' }), rejectsWith('VERSION_NOT_IN_CHANNEL'));
  assert.equal(graphArch([{ os: 'linux', architecture: 'arm64' }]), 'arm64');
  assert.equal(graphArch([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]), 'multi');
  assert.equal(graphArch('all'), 'multi');
});

test('the graph is fetched with channel, arch and Accept: application/json; an unknown channel and a dead server are clear errors', async (t) => {
  const asked: Array<{ url: string; accept: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    asked.push({ url: req.url ?? '', accept: req.headers.accept });
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('channel') !== 'stable-4.16') {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ kind: 'invalid_params', value: 'unknown channel' }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(GRAPH_DOC));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/upgrades_info/v1/graph`;
  const fetched = await fetchUpdateGraph(url, 'stable-4.16', 'amd64');
  assert.equal(fetched.releases.length, 6);
  assert.deepEqual(asked[0], { url: '/api/upgrades_info/v1/graph?channel=stable-4.16&arch=amd64', accept: 'application/json' });
  await assert.rejects(fetchUpdateGraph(url, 'stable-9.99', 'amd64'), rejectsWith('CHANNEL_UNKNOWN', /does not know channel "stable-9\.99" for arch amd64 \(HTTP 400: invalid_params\)/));
  // A port nothing listens on: the server above, once closed, frees its port.
  const dead = http.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  await assert.rejects(fetchUpdateGraph(`http://127.0.0.1:${deadPort}/graph`, 'stable-4.16', 'amd64'), rejectsWith('GRAPH_UNREACHABLE', /cannot reach the update service at http:\/\/127\.0\.0\.1:\d+\/graph: ECONNREFUSED/));
});
