/** `amtsbote serve`: runs the intermediary until SIGINT/SIGTERM, then shuts down gracefully. */
import cluster from 'node:cluster';
import type { Command } from 'commander';
import { awaitPreviousWorkers, defaultWorkers, runWorker, startCluster } from '../cluster.ts';
import { loadConfigFile, resolveConfig, type ServerConfig } from '../config.ts';
import { createLogger, type Logger } from '../log.ts';
import { startServer } from '../server.ts';
import { loadAgentConfig } from '../../adapters/config.ts';
import { buildAgent, describeMailboxes, startAgentLoop } from './agent.ts';
import { action, fail } from './run.ts';
import { Registry } from 'prom-client';
import { addPrimaryRegistry } from '../metrics.ts';
import { agentMetricsHooks } from '../agent-metrics.ts';

interface ServeOpts {
  config?: string;
  port?: string;
  host?: string;
  data?: string;
  db?: string;
  identity?: string;
  workers?: string;
}

function banner(url: string, storeKind: string, mailboxes: string[], cfg: ServerConfig, workers: number): string {
  return (
    `Amtsbote intermediary listening on ${url}/osci (store: ${storeKind}${workers > 1 ? `, ${workers} worker processes` : ''})\n` +
    `Mailboxes: ${mailboxes.join(', ') || '(none)'}\n` +
    (cfg.devPki.enabled
      ? `Development PKI in ${cfg.devPki.dir} (NOT FOR PRODUCTION). Send a first message:\n` +
        `  npx amtsbote send --server ${url} --as ag-lemgo --to stadt-lemgo --subject "Erste Nachricht" --text "Hallo Lemgo"\n` +
        `  npx amtsbote fetch --server ${url} --as stadt-lemgo --out ./inbox\n`
      : '')
  );
}

/** Resolves on the first SIGINT/SIGTERM. */
function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/**
 * The mailbox agent beside the intermediary (config key `agent`): runs in the primary process until stopped. Its poll
 * metrics are on /metrics: in the server's registry (--workers 1), or in one the primary adds to the workers' aggregate.
 */
async function startAgent(cfg: ServerConfig, log: Logger, registry: Registry): Promise<{ stop(): Promise<void> } | undefined> {
  if (!cfg.agent) return undefined;
  const agentCfg = loadAgentConfig(cfg.agent);
  const agent = await buildAgent(agentCfg, log.child({ component: 'agent' }), { hooks: agentMetricsHooks(registry) });
  await agent.recover();
  const loop = await startAgentLoop(agentCfg, agent, log.child({ component: 'agent' }));
  const running = loop.done.catch((err: unknown) => log.error({ err }, 'mailbox agent stopped'));
  log.info({ mailboxes: describeMailboxes(agentCfg) }, 'mailbox agent running');
  return {
    async stop() {
      await loop.stop().catch(() => undefined);
      await running;
      await agent.close();
    },
  };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the OSCI intermediary (POST /osci, GET /directory/:id, /healthz, /readyz, /metrics)')
    .option('--config <file>', 'JSON configuration file (see README, "Configuration")')
    .option('--port <n>', 'TCP port (default 8080)')
    .option('--host <addr>', 'listen address (default 127.0.0.1)')
    .option('--data <dir>', 'data folder for SQLite and payloads (default ./data)')
    .option('--db <url>', 'store: sqlite:DIR or postgres://user@host:5432/db[?schema=NAME]')
    .option('--identity <dir>', 'folder with the intermediary keys {signature,cipher}.{key,cert}.pem (default certs-dev/intermediary)')
    .option('--workers <n>', `intermediary processes sharing the port (default: number of CPUs, here ${defaultWorkers()}); 1 = single process`)
    .addHelpText('after', '\nExamples:\n  amtsbote serve\n  amtsbote serve --port 9090 --db postgres://root@127.0.0.1:5432/test\n  amtsbote serve --workers 1')
    .action(
      action(async (o: ServeOpts) => {
        const overrides: Partial<ServerConfig> = {};
        if (o.port !== undefined) {
          const n = Number(o.port);
          if (!Number.isInteger(n)) fail(`--port ${o.port} is not a number`);
          overrides.port = n;
        }
        if (o.host) overrides.host = o.host;
        if (o.data) overrides.dataDir = o.data;
        if (o.db) overrides.db = o.db;
        if (o.identity) overrides.identityDir = o.identity;
        const cfg = resolveConfig(o.config ? loadConfigFile(o.config) : undefined, overrides);
        if (cluster.isWorker) {
          await runWorker(cfg);
          return;
        }
        let workers = defaultWorkers();
        if (o.workers !== undefined) {
          workers = Number(o.workers);
          if (!Number.isInteger(workers) || workers < 1) fail(`--workers ${o.workers} is not a positive integer`);
        }
        const log = createLogger({ level: cfg.logLevel });
        if (workers > 1) {
          const running = await startCluster(cfg, { workers, log });
          process.stdout.write(banner(running.url, cfg.db?.startsWith('sqlite:') ? 'sqlite' : 'postgres', running.mailboxes, cfg, workers));
          const registry = new Registry();
          addPrimaryRegistry(registry);
          const agent = await startAgent(cfg, log, registry);
          const code = await Promise.race([untilSignal().then(() => 0), running.failed]);
          await agent?.stop();
          await running.stop();
          return code;
        }
        // A single process recovers the store itself; workers of an earlier cluster run must be gone first.
        await awaitPreviousWorkers(cfg, log);
        const server = await startServer(cfg, { log });
        const mailboxes = (await server.store.listParticipants()).map((p) => p.id);
        process.stdout.write(banner(server.url, server.store.kind, mailboxes, cfg, 1));
        const agent = await startAgent(cfg, log, server.metrics.registry);
        await untilSignal();
        await agent?.stop();
        await server.stop();
      }),
    );
}
