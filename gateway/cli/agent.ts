/** `amtsbote agent --config FILE`: the mailbox agent (adapters/README.md) — fetch, route, deliver, send. */
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { MailboxAgent, type AgentHooks, type AgentMailbox } from '../../adapters/agent.ts';
import { createAdapters } from '../../adapters/build.ts';
import { jobStoreUrl, loadAgentConfig, type AgentConfig } from '../../adapters/config.ts';
import { HotFolderImport, type OutgoingMailbox } from '../../adapters/hotfolder/import.ts';
import { OsciClient } from '../../adapters/osci/client.ts';
import { openJobStore } from '../../adapters/outbox/index.ts';
import { Router } from '../../adapters/routing.ts';
import { createLogger, silentLogger } from '../log.ts';
import { clientAnchors, intermediaryFromDirectory, loadClientIdentity, recipientCipher } from './identities.ts';
import { action, printJson } from './run.ts';

/** Wires an agent from its configuration: identities, intermediary certificates (directory), adapters, store. */
export async function buildAgent(cfg: AgentConfig, log: Logger, opts: { hooks?: AgentHooks; env?: NodeJS.ProcessEnv } = {}): Promise<MailboxAgent> {
  const adapters = createAdapters(cfg.adapters, opts.env ?? process.env);
  const tmpDir = join(cfg.dataDir, 'tmp');
  const mailboxes: AgentMailbox[] = [];
  const outgoing: OutgoingMailbox[] = [];
  let intermediary: Awaited<ReturnType<typeof intermediaryFromDirectory>> | undefined;
  for (const m of cfg.mailboxes) {
    const who = { as: basename(m.identity), identityRoot: dirname(m.identity), ...(m.pinEnv ? { pinEnv: m.pinEnv } : {}), trustAnchor: cfg.trustAnchors };
    const me = loadClientIdentity(who);
    const anchors = clientAnchors(who);
    intermediary ??= await intermediaryFromDirectory(cfg.server, anchors);
    const client = new OsciClient({ endpoint: intermediary.endpoint, intermediary, signer: me.signer, cipher: me.cipher, tmpDir });
    mailboxes.push({ id: m.id, client, readerKeys: [me.cipher.key, ...me.olderCipherKeys], anchors });
    if (m.outgoing) outgoing.push({ mailbox: m.id, dir: m.outgoing, client, author: me.signer, resolveRecipient: (id) => recipientCipher(cfg.server, id, anchors) });
  }
  const store = await openJobStore(jobStoreUrl(cfg));
  const router = new Router({ rules: cfg.routes, default: cfg.defaultRoute }, new Set(adapters.keys()));
  return new MailboxAgent({
    store,
    dataDir: cfg.dataDir,
    mailboxes,
    router,
    adapters,
    ...(outgoing.length ? { outgoing: new HotFolderImport({ store, mailboxes: outgoing, maxAttempts: cfg.retry.maxAttempts, log, tmpDir }) } : {}),
    retry: cfg.retry,
    log,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
  });
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the mailbox agent: fetch municipal mailboxes, route and deliver to hot folder / HTTP DMS / SMTP, send dropped outgoing folders')
    .requiredOption('--config <file>', 'agent configuration (JSON; see adapters/README.md)')
    .option('--once', 'one round (fetch, scan outgoing folders, run the jobs due now), then exit')
    .option('--json', 'with --once: print the round as JSON')
    .addHelpText(
      'after',
      '\nReception is acknowledged to the intermediary only after the message and its delivery jobs are committed.\n' +
        'Examples:\n  amtsbote agent --config agent.json\n  amtsbote agent --config agent.json --once --json\n  amtsbote outbox list --config agent.json --state dead',
    )
    .action(
      action(async (o: { config: string; once?: boolean; json?: boolean }) => {
        const cfg = loadAgentConfig(o.config);
        const log = o.json && !process.env.AMTSBOTE_LOG_LEVEL ? silentLogger : createLogger({ name: 'amtsbote-agent' });
        const agent = await buildAgent(cfg, log);
        try {
          await agent.recover();
          if (o.once) {
            const r = await agent.runOnce();
            const failed = r.polls.filter((p) => p.error);
            if (o.json) printJson(r.polls.length ? { ...r, jobs: r.jobs.map((j) => ({ id: j.job.id, adapter: j.job.adapter, messageId: j.job.messageId, outcome: j.outcome, detail: j.detail })) } : r);
            else {
              for (const p of r.polls) process.stdout.write(`${p.mailbox}: ${p.stored.length} new, ${p.duplicates.length} already stored${p.error ? `, ERROR ${p.error}` : ''}\n`);
              for (const j of r.jobs) process.stdout.write(`job ${j.job.id} ${j.job.adapter}: ${j.outcome} ${j.detail}\n`);
            }
            return failed.length ? 3 : 0;
          }
          process.stdout.write(`Amtsbote agent: ${cfg.mailboxes.map((m) => m.id).join(', ')} via ${cfg.server}, every ${cfg.pollIntervalSeconds} s; adapters ${Object.keys(cfg.adapters).join(', ')}\n`);
          const stop = new AbortController();
          process.once('SIGINT', () => stop.abort());
          process.once('SIGTERM', () => stop.abort());
          await agent.run(stop.signal, cfg.pollIntervalSeconds * 1000);
        } finally {
          await agent.close();
        }
      }),
    );
}
