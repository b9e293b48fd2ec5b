/** `amtsbote serve`: runs the intermediary until SIGINT/SIGTERM, then shuts down gracefully. */
import type { Command } from 'commander';
import { loadConfigFile, resolveConfig, type ServerConfig } from '../config.ts';
import { startServer } from '../server.ts';
import { action, fail } from './run.ts';

interface ServeOpts {
  config?: string;
  port?: string;
  host?: string;
  data?: string;
  db?: string;
  identity?: string;
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
    .addHelpText('after', '\nExamples:\n  amtsbote serve\n  amtsbote serve --port 9090 --db postgres://root@127.0.0.1:5432/test')
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
        const server = await startServer(cfg);
        const mailboxes = (await server.store.listParticipants()).map((p) => p.id);
        process.stdout.write(
          `Amtsbote intermediary listening on ${server.url}/osci (store: ${server.store.kind})\n` +
            `Mailboxes: ${mailboxes.join(', ') || '(none)'}\n` +
            (cfg.devPki.enabled
              ? `Development PKI in ${cfg.devPki.dir} (NOT FOR PRODUCTION). Send a first message:\n` +
                `  npx amtsbote send --server ${server.url} --as ag-lemgo --to stadt-lemgo --subject "Erste Nachricht" --text "Hallo Lemgo"\n` +
                `  npx amtsbote fetch --server ${server.url} --as stadt-lemgo --out ./inbox\n`
              : ''),
        );
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await server.stop();
      }),
    );
}
