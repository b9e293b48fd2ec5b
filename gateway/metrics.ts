/** Prometheus metrics (GET /metrics). One registry per server instance so tests can run several. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  requests: Counter<'type' | 'outcome'>;
  stored: Counter;
  httpDuration: Histogram<'route' | 'status'>;
  /** Days until notAfter per certificate (gateway/cert-expiry.ts); participant "(intermediary)" for the own keys. */
  certificateDaysToExpiry: Gauge<'participant' | 'usage' | 'fingerprint' | 'current'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'amtsbote_' });
  return {
    registry,
    requests: new Counter({ name: 'amtsbote_osci_requests_total', help: 'OSCI requests by message type and outcome', labelNames: ['type', 'outcome'], registers: [registry] }),
    stored: new Counter({ name: 'amtsbote_deliveries_stored_total', help: 'Deliveries durably stored', registers: [registry] }),
    httpDuration: new Histogram({
      name: 'amtsbote_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers: [registry],
    }),
    certificateDaysToExpiry: new Gauge({
      name: 'amtsbote_certificate_days_to_expiry',
      help: 'Days until the certificate expires (negative: expired); current="true" marks the newest unrevoked certificate per participant and usage',
      labelNames: ['participant', 'usage', 'fingerprint', 'current'],
      registers: [registry],
    }),
  };
}
