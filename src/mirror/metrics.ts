// Prometheus metrics of the mirror, in a registry of its own (never prom-client's global one, so that
// two mirrors in one process, as in tests, do not collide): requests, bytes served, latency.

import { Counter, Histogram, Registry, Gauge } from 'prom-client';

/** Methods are whatever clients send: past this many bound label sets, start over rather than grow. */
const CHILDREN_MAX = 1000;

export class MirrorMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'pin_preload_mirror_requests_total',
    help: 'HTTP requests answered by the mirror, by route and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  private readonly bytes = new Counter({
    name: 'pin_preload_mirror_bytes_served_total',
    help: 'Response body bytes sent by the mirror, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'pin_preload_mirror_request_duration_seconds',
    help: 'Time from request to the end of the response, by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly blobStreams = new Gauge({
    name: 'pin_preload_mirror_blob_streams',
    help: 'Blob downloads in progress',
    registers: [this.registry],
  });

  /** Label children by label values, bound once: prom-client would otherwise hash the label set on every request. */
  private readonly requestChildren = new Map<string, Counter.Internal>();
  private readonly routeChildren = new Map<string, { bytes: Counter.Internal; latency: Histogram.Internal<'route'> }>();

  observe(route: string, method: string, status: number, bodyBytes: number, seconds: number): void {
    const key = `${route} ${method} ${status}`;
    let requests = this.requestChildren.get(key);
    if (requests === undefined) {
      // Bounded: a handful of routes × the methods clients send × the statuses the mirror answers.
      if (this.requestChildren.size >= CHILDREN_MAX) this.requestChildren.clear();
      requests = this.requests.labels({ route, method, status: String(status) });
      this.requestChildren.set(key, requests);
    }
    requests.inc();
    let byRoute = this.routeChildren.get(route);
    if (byRoute === undefined) {
      byRoute = { bytes: this.bytes.labels({ route }), latency: this.latency.labels({ route }) };
      this.routeChildren.set(route, byRoute);
    }
    if (bodyBytes > 0) byRoute.bytes.inc(bodyBytes);
    byRoute.latency.observe(seconds);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
