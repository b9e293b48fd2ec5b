/**
 * Prometheus metrics (GET /metrics). One registry per server instance so tests can run several. Under
 * `serve --workers N` the worker answering /metrics asks the primary, which collects every worker's registry
 * (prom-client AggregatorRegistry: counters and histograms summed, the expiry gauges taken from one worker).
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  requests: Counter<'type' | 'outcome'>;
  stored: Counter;
  httpDuration: Histogram<'route' | 'status'>;
  /** Days until notAfter per certificate (gateway/cert-expiry.ts); participant "(intermediary)" for the own keys. */
  certificateDaysToExpiry: Gauge<'participant' | 'usage' | 'fingerprint' | 'current'>;
  /** The exposition text /metrics answers: this process's registry, or in a cluster worker every worker's. */
  exposition(): Promise<string>;
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
      // Every worker computes the same values: summing them would be wrong.
      aggregator: 'first',
    }),
    exposition: cluster.isWorker ? clusterExposition(registry) : () => registry.metrics(),
  };
}

const REQUEST = 'amtsbote:metrics-request';
const ANSWER = 'amtsbote:metrics-answer';
/** A worker answers with its own registry when the primary has not answered by then. */
const PRIMARY_TIMEOUT_MS = 6_000;

interface Answer {
  type: typeof ANSWER;
  id: number;
  text?: string;
  error?: string;
}

function isMessage(m: unknown, type: string): m is { type: string; id: number } {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type && typeof (m as { id?: unknown }).id === 'number';
}

/** Primary: answers the workers' requests for the aggregated metrics of all workers. */
let serving = false;

/** Registries of the primary itself (the mailbox agent runs there), appended to the workers' aggregate. */
const primaryRegistries: Registry[] = [];

export function addPrimaryRegistry(r: Registry): void {
  primaryRegistries.push(r);
}

export function serveClusterMetrics(): void {
  if (serving) return;
  serving = true;
  const aggregator = new AggregatorRegistry();
  const primary = async () => (await Promise.all(primaryRegistries.map((r) => r.metrics()))).join('\n');
  cluster.on('message', (worker, m: unknown) => {
    if (!isMessage(m, REQUEST)) return;
    const reply = (a: Omit<Answer, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: ANSWER, id: m.id, ...a });
    };
    Promise.all([aggregator.clusterMetrics(), primary()]).then(
      ([workers, own]) => reply({ text: own ? `${workers.trimEnd()}\n${own}` : workers }),
      (e: unknown) => reply({ error: e instanceof Error ? e.message : String(e) }),
    );
  });
}

/** Worker: lets the primary collect `registry` and asks it for every worker's metrics. */
function clusterExposition(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs prom-client's worker-side listener
  const pending = new Map<number, (a: Answer) => void>();
  let next = 0;
  process.on('message', (m: unknown) => {
    if (isMessage(m, ANSWER)) pending.get(m.id)?.(m as Answer);
  });
  return () =>
    new Promise<string>((resolve) => {
      const id = next++;
      const own = () => {
        pending.delete(id);
        resolve(registry.metrics());
      };
      const timer = setTimeout(own, PRIMARY_TIMEOUT_MS);
      pending.set(id, (a) => {
        clearTimeout(timer);
        pending.delete(id);
        if (a.text !== undefined) resolve(a.text);
        else own();
      });
      if (process.send) process.send({ type: REQUEST, id });
      else {
        clearTimeout(timer);
        own();
      }
    });
}
