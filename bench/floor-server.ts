// Calibration ("floor") server, run as a child by the benchmarks: answers every GET with one fixed
// manifest-sized body and a manifest's headers, doing nothing else, so its latency is what the load
// generator can resolve on this machine, and the Express variant shows what a framework layer costs.
//
// node dist/bench/floor-server.js http|express PORT   (listens on 127.0.0.1:PORT until SIGTERM)

import { createHash } from 'node:crypto';
import http from 'node:http';
import express from 'express';

/** Size of the body: about a real single-platform image manifest (the fixture's are 0.5–3 KB). */
const BODY_BYTES = 2560;

/** An OCI image manifest, padded with an annotation to exactly BODY_BYTES. */
function manifestBody(): Buffer {
  const descriptor = (mediaType: string, seed: string, size: number) => ({ mediaType, digest: `sha256:${createHash('sha256').update(seed).digest('hex')}`, size });
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor('application/vnd.oci.image.config.v1+json', 'config', 1469),
    layers: Array.from({ length: 8 }, (_, i) => descriptor('application/vnd.oci.image.layer.v1.tar+gzip', `layer ${i}`, 6_291_456 + i)),
    annotations: { 'org.example.padding': '' },
  };
  const unpadded = Buffer.byteLength(JSON.stringify(manifest));
  if (unpadded > BODY_BYTES) throw new Error(`floor manifest is ${unpadded} bytes before padding, more than ${BODY_BYTES}`);
  manifest.annotations['org.example.padding'] = 'x'.repeat(BODY_BYTES - unpadded);
  return Buffer.from(JSON.stringify(manifest));
}

const body = manifestBody();
const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
// The headers the mirror sends with a manifest (src/mirror/handlers/manifests.ts), computed once.
const headers: http.OutgoingHttpHeaders = {
  'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  'Content-Length': body.length,
  'Docker-Content-Digest': digest,
  ETag: `"${digest}"`,
  'Docker-Distribution-API-Version': 'registry/2.0',
};

function answer(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'GET') {
    res.writeHead(405, { Allow: 'GET', 'Content-Length': 0 }).end();
    return;
  }
  res.writeHead(200, headers).end(body);
}

/** Express 5 set up as the mirror once had it: one middleware for everything, the extras it adds off. */
function expressListener(): http.RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);
  app.use((req, res) => answer(req, res));
  return app;
}

function main(): void {
  const [variant, portText] = process.argv.slice(2);
  const port = Number(portText);
  if ((variant !== 'http' && variant !== 'express') || !Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write('usage: floor-server.js http|express PORT\n');
    process.exit(2);
  }
  const server = http.createServer(variant === 'express' ? expressListener() : answer);
  server.listen(port, '127.0.0.1');
  process.once('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
}

main();
