/** `amtsbote outbox list | show ID | retry ID`: the mailbox agent's delivery jobs and dead letters. */
import type { Command } from 'commander';
import { jobStoreUrl, loadAgentConfig } from '../../adapters/config.ts';
import { openJobStore, type JobRecord, type JobStore } from '../../adapters/outbox/index.ts';
import { JOB_STATES, type JobState } from '../../adapters/outbox/types.ts';
import { OsciError } from '../../protocol/errors.ts';
import { action, fail, printJson } from './run.ts';

interface StoreOpts {
  config?: string;
  data?: string;
  db?: string;
  json?: boolean;
}

function withStoreOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'agent configuration (its dataDir / db name the store)')
    .option('--data <dir>', 'agent data folder (SQLite store), instead of --config')
    .option('--db <url>', 'job store URL (sqlite:DIR or postgres://…), instead of --config')
    .option('--json', 'machine-readable output');
}

async function open(o: StoreOpts): Promise<JobStore> {
  const given = [o.config, o.data, o.db].filter((x) => x !== undefined).length;
  if (given !== 1) fail('give exactly one of --config FILE, --data DIR or --db URL');
  const url = o.db ?? (o.data !== undefined ? `sqlite:${o.data}` : jobStoreUrl(loadAgentConfig(o.config as string)));
  const store = await openJobStore(url);
  await store.migrate();
  return store;
}

function jobId(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`job id ${v} is not a positive number`);
  return n;
}

function view(j: JobRecord) {
  return {
    id: j.id,
    kind: j.kind,
    adapter: j.adapter,
    mailbox: j.mailbox,
    messageId: j.messageId,
    source: j.source,
    state: j.state,
    attempts: j.attempts,
    maxAttempts: j.maxAttempts,
    nextAt: j.state === 'queued' ? j.nextAt.toISOString() : undefined,
    created: j.created.toISOString(),
    updated: j.updated.toISOString(),
    lastError: j.lastError,
    result: j.result,
  };
}

const cut = (s: string | undefined, n: number) => (s === undefined ? '' : s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function registerOutbox(program: Command): void {
  const outbox = program.command('outbox').description("the mailbox agent's delivery jobs: list, show, re-drive dead letters");

  withStoreOptions(outbox.command('list').description('list jobs (newest last)').option('--state <state>', `only jobs in this state (${JOB_STATES.join(', ')})`)).action(
    action(async (o: StoreOpts & { state?: string }) => {
      if (o.state !== undefined && !JOB_STATES.includes(o.state as JobState)) fail(`--state must be one of ${JOB_STATES.join(', ')}`);
      const store = await open(o);
      try {
        const jobs = await store.list(o.state ? { state: o.state as JobState } : {});
        if (o.json) return printJson(jobs.map(view));
        if (jobs.length === 0) return void process.stdout.write('No jobs.\n');
        for (const j of jobs) {
          const what = j.kind === 'send' ? `send ${j.source ?? ''}` : `${j.adapter} ${j.messageId ?? ''}`;
          const when = j.state === 'queued' ? ` next ${j.nextAt.toISOString()}` : '';
          process.stdout.write(`${String(j.id).padStart(5)}  ${j.state.padEnd(6)}  ${j.attempts}/${j.maxAttempts}  ${what}${when}${j.lastError && j.state !== 'done' ? `  — ${cut(j.lastError, 120)}` : ''}\n`);
        }
      } finally {
        await store.close();
      }
    }),
  );

  withStoreOptions(outbox.command('show').description('one job with its attempt history').argument('<id>', 'job id')).action(
    action(async (id: string, o: StoreOpts) => {
      const store = await open(o);
      try {
        const j = await store.get(jobId(id));
        if (!j) throw new OsciError('ERR_NOT_FOUND', `no job ${id}`);
        const msg = j.messageId && j.kind === 'deliver' ? await store.getMessage(j.messageId) : undefined;
        const message = msg ? { folder: msg.folder, fetchedAt: msg.fetchedAt.toISOString(), subject: msg.meta.subject, route: msg.meta.route, xjustiz: msg.meta.xjustiz } : undefined;
        if (o.json) return printJson({ ...view(j), history: j.history, message });
        const v = view(j);
        for (const [k, val] of Object.entries(v)) if (val !== undefined) process.stdout.write(`${k.padEnd(12)}${String(val)}\n`);
        if (message) process.stdout.write(`${'message'.padEnd(12)}${message.folder} (fetched ${message.fetchedAt}, route ${message.route?.rule ?? '?'})\n`);
        process.stdout.write('history\n');
        for (const h of j.history) process.stdout.write(`  ${h.at}  #${h.attempt} ${h.outcome.padEnd(7)} ${h.detail}\n`);
      } finally {
        await store.close();
      }
    }),
  );

  withStoreOptions(outbox.command('retry').description('re-drive a parked (or waiting) job now, with a fresh attempt budget').argument('<id>', 'job id')).action(
    action(async (id: string, o: StoreOpts) => {
      const store = await open(o);
      try {
        const j = await store.redrive(jobId(id), new Date());
        if (o.json) return printJson(view(j));
        process.stdout.write(`Job ${j.id} queued again (${j.kind} ${j.adapter}); the agent runs it at its next round.\n`);
      } finally {
        await store.close();
      }
    }),
  );
}
