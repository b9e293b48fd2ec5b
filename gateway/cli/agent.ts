/** `amtsbote agent --config FILE`: the mailbox agent (adapters/README.md) — fetch, route, deliver, send. */
import type { X509Certificate } from 'node:crypto';
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
import { OsciError } from '../../protocol/errors.ts';
import { startIntake, type RunningIntake } from '../../adapters/http/intake.ts';
import { resolveAdminToken } from '../http/admin.ts';
import { createLogger, silentLogger } from '../log.ts';
import { clientAnchors, intermediaryFromDirectory, loadClientIdentity, pinnedCertificate, pinnedIntermediary, recipientCipher } from './identities.ts';
import { action, printJson } from './run.ts';

/** The intermediary a mailbox lives on: pinned (configuration `intermediaries`) or the Amtsbote `server` (its directory, checked against our anchors). */
type Intermediary = Awaited<ReturnType<typeof intermediaryFromDirectory>> & { name: string; directory?: string };

async function intermediaryOf(cfg: AgentConfig, name: string | undefined, anchors: X509Certificate[], cache: Map<string, Intermediary>): Promise<Intermediary> {
  const key = name ?? '';
  const known = cache.get(key);
  if (known) return known;
  let im: Intermediary;
  if (name !== undefined) {
    const c = cfg.intermediaries[name];
    if (!c) throw new OsciError('ERR_USAGE', `agent configuration: no intermediary "${name}"`);
    im = { name, ...pinnedIntermediary(c.endpoint, c.cipherCert, c.signatureCert), ...(c.directory ? { directory: c.directory } : {}) };
  } else {
    const server = cfg.server ?? '';
    im = { name: server, ...(await intermediaryFromDirectory(server, anchors)), directory: server };
  }
  cache.set(key, im);
  return im;
}

/**
 * Recipients: configured (`recipients`: pinned certificate, and the intermediary their mailbox lives on, default
 * the sender's), else looked up in the directory of the sender's intermediary.
 */
function recipientResolver(cfg: AgentConfig, im: Intermediary, anchors: X509Certificate[], clientAt: (intermediary: string | undefined) => Promise<OsciClient>): OutgoingMailbox['resolveRecipient'] {
  return async (id) => {
    const r = cfg.recipients[id];
    if (r) return { cert: pinnedCertificate(r.cipherCert, 'cipher', `cipher certificate of ${id}`), client: await clientAt(r.intermediary) };
    if (im.directory) return { cert: await recipientCipher(im.directory, id, anchors), client: await clientAt(undefined) };
    throw new OsciError('ERR_NOT_FOUND', `recipient ${id} is not configured (agent configuration "recipients") and intermediary ${im.name} has no directory`);
  };
}

/** Wires an agent from its configuration: identities, intermediaries (pinned or directory), adapters, store. */
export async function buildAgent(cfg: AgentConfig, log: Logger, opts: { hooks?: AgentHooks; env?: NodeJS.ProcessEnv } = {}): Promise<MailboxAgent> {
  const adapters = createAdapters(cfg.adapters, opts.env ?? process.env);
  const tmpDir = join(cfg.dataDir, 'tmp');
  const mailboxes: AgentMailbox[] = [];
  const outgoing: OutgoingMailbox[] = [];
  const intermediaries = new Map<string, Intermediary>();
  for (const m of cfg.mailboxes) {
    const who = { as: basename(m.identity), identityRoot: dirname(m.identity), ...(m.pinEnv ? { pinEnv: m.pinEnv } : {}), ...(m.pinFile ? { pinFile: m.pinFile } : {}), trustAnchor: cfg.trustAnchors };
    const me = loadClientIdentity(who);
    const anchors = clientAnchors(who);
    const im = await intermediaryOf(cfg, m.intermediary, anchors, intermediaries);
    const client = new OsciClient({ endpoint: im.endpoint, intermediary: im, signer: me.signer, cipher: me.cipher, tmpDir });
    // The mailbox's keys also sign what it sends through other intermediaries (recipients configured elsewhere).
    const clients = new Map<string, OsciClient>();
    const clientAt = async (name: string | undefined) => {
      if (name === undefined || name === m.intermediary) return client;
      const known = clients.get(name);
      if (known) return known;
      const other = await intermediaryOf(cfg, name, anchors, intermediaries);
      const c = new OsciClient({ endpoint: other.endpoint, intermediary: other, signer: me.signer, cipher: me.cipher, tmpDir });
      clients.set(name, c);
      return c;
    };
    const routing = { ...(m.routes ? { rules: m.routes } : {}), ...(m.defaultRoute ? { default: m.defaultRoute } : {}) };
    mailboxes.push({ id: m.id, via: im.name, client, pollIntervalMs: (m.pollIntervalSeconds ?? cfg.pollIntervalSeconds) * 1000, routing, readerKeys: [me.cipher.key, ...me.olderCipherKeys], anchors });
    if (m.outgoing) outgoing.push({ mailbox: m.id, dir: m.outgoing, author: me.signer, resolveRecipient: recipientResolver(cfg, im, anchors, clientAt) });
  }
  const store = await openJobStore(jobStoreUrl(cfg));
  const router = new Router({ rules: cfg.routes, default: cfg.defaultRoute }, new Set(adapters.keys()));
  const tracking = { intervalMs: cfg.receptionTracking.intervalSeconds * 1000, maxMs: cfg.receptionTracking.maxDays * 86_400_000 };
  return new MailboxAgent({
    store,
    dataDir: cfg.dataDir,
    mailboxes,
    router,
    adapters,
    ...(outgoing.length ? { outgoing: new HotFolderImport({ store, mailboxes: outgoing, maxAttempts: cfg.retry.maxAttempts, log, tmpDir, tracking }) } : {}),
    retry: cfg.retry,
    pollBackoffMaxMs: cfg.pollBackoffMaxSeconds * 1000,
    log,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
  });
}

/**
 * Starts a built agent's loop, with its HTTP intake for outgoing mail when configured (used by `amtsbote agent`
 * and by `serve` beside the intermediary). A missing token or a taken port fails here, before anything runs.
 */
export async function startAgentLoop(cfg: AgentConfig, agent: MailboxAgent, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<{ done: Promise<void>; stop(): Promise<void> }> {
  let intake: RunningIntake | undefined;
  if (cfg.intake) {
    const token = resolveAdminToken(cfg.intake, env, log, 'intake') as string;
    const mailboxes = new Map(cfg.mailboxes.flatMap((m) => (m.outgoing ? [[m.id, m.outgoing] as const] : [])));
    intake = await startIntake({ host: cfg.intake.host, port: cfg.intake.port, token, mailboxes, log });
  }
  const abort = new AbortController();
  const done = agent.run(abort.signal).finally(() => intake?.close());
  return {
    done,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

/** "stadt-lemgo via zentral every 60 s, …" for start-up lines. */
export function describeMailboxes(cfg: AgentConfig): string {
  return cfg.mailboxes.map((m) => `${m.id} via ${m.intermediary ?? cfg.server ?? '?'} every ${m.pollIntervalSeconds ?? cfg.pollIntervalSeconds} s`).join(', ');
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the mailbox agent: fetch mailboxes (on this or other OSCI intermediaries), route and deliver to hot folder / HTTP DMS / SMTP, send outgoing folders and HTTP intake posts, track their reception')
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
          process.stdout.write(`Amtsbote agent: ${describeMailboxes(cfg)}; adapters ${Object.keys(cfg.adapters).join(', ')}\n`);
          const loop = await startAgentLoop(cfg, agent, log);
          process.once('SIGINT', () => void loop.stop());
          process.once('SIGTERM', () => void loop.stop());
          await loop.done;
        } finally {
          await agent.close();
        }
      }),
    );
}
