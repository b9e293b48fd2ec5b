/**
 * Job store on PostgreSQL (own schema, default `amtsbote_agent`). Same contract as the SQLite store; the spool
 * with the plaintext stays in the agent's data folder, so one agent process serves a set of mailboxes.
 * Claims use FOR UPDATE SKIP LOCKED, so a second agent process on the same schema never runs a job twice at once.
 */
import pg from 'pg';
import { OsciError } from '../../protocol/errors.ts';
import type { MessageMeta } from '../inbox.ts';
import { checkNewJob, jobFromRow, type JobRow } from './sqlite.ts';
import { transition, type JobChange } from './transitions.ts';
import type { JobFilter, JobRecord, JobStore, MessageRecord, NewJob } from './types.ts';

export const DEFAULT_AGENT_PG_SCHEMA = 'amtsbote_agent';

const schemaSql = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.messages (
  message_id TEXT PRIMARY KEY,
  mailbox TEXT NOT NULL,
  folder TEXT NOT NULL UNIQUE,
  fetched_at BIGINT NOT NULL,
  meta JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.jobs (
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('deliver','send')),
  adapter TEXT NOT NULL,
  mailbox TEXT NOT NULL,
  message_id TEXT,
  source TEXT,
  idem TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('queued','done','dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  next_at BIGINT NOT NULL,
  created BIGINT NOT NULL,
  updated BIGINT NOT NULL,
  last_error TEXT,
  result TEXT,
  history JSONB NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS jobs_due ON ${s}.jobs(state, next_at);
CREATE INDEX IF NOT EXISTS jobs_message ON ${s}.jobs(message_id);
`;

export class PgJobStore implements JobStore {
  private readonly pool: pg.Pool;
  private readonly s: string;

  constructor(opts: { connectionString: string; schema?: string }) {
    const schema = opts.schema ?? DEFAULT_AGENT_PG_SCHEMA;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new OsciError('ERR_USAGE', 'schema must be a lower-case SQL identifier');
    this.s = `"${schema}"`;
    this.pool = new pg.Pool({ connectionString: opts.connectionString, max: 4 });
    this.pool.on('error', () => undefined);
  }

  private t(name: string): string {
    return `${this.s}.${name}`;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw e;
    } finally {
      c.release(broken);
    }
  }

  async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`amtsbote:agent-migrate:${this.s}`]);
      await c.query(schemaSql(this.s));
    });
  }

  async hasMessage(messageId: string): Promise<boolean> {
    return ((await this.pool.query(`SELECT 1 FROM ${this.t('messages')} WHERE message_id = $1`, [messageId])).rowCount ?? 0) > 0;
  }

  async getMessage(messageId: string): Promise<MessageRecord | undefined> {
    const r = (await this.pool.query<{ message_id: string; mailbox: string; folder: string; fetched_at: string; meta: MessageMeta }>(`SELECT * FROM ${this.t('messages')} WHERE message_id = $1`, [messageId])).rows[0];
    return r ? { messageId: r.message_id, mailbox: r.mailbox, folder: r.folder, fetchedAt: new Date(Number(r.fetched_at)), meta: r.meta } : undefined;
  }

  async commitMessage(m: MessageRecord, jobs: NewJob[]): Promise<boolean> {
    jobs.forEach(checkNewJob);
    const now = m.fetchedAt.getTime();
    return this.tx(async (c) => {
      const ins = await c.query(`INSERT INTO ${this.t('messages')} (message_id, mailbox, folder, fetched_at, meta) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING`, [
        m.messageId,
        m.mailbox,
        m.folder,
        now,
        JSON.stringify(m.meta),
      ]);
      if ((ins.rowCount ?? 0) === 0) return false;
      for (const j of jobs) {
        await c.query(
          `INSERT INTO ${this.t('jobs')} (kind, adapter, mailbox, message_id, source, idem, state, attempts, max_attempts, next_at, created, updated)
           VALUES ($1,$2,$3,$4,$5,$6,'queued',0,$7,$8,$8,$8)`,
          [j.kind, j.adapter, j.mailbox, j.messageId ?? null, j.source ?? null, j.idempotencyKey, j.maxAttempts, now],
        );
      }
      return true;
    });
  }

  async enqueue(j: NewJob, now: Date): Promise<JobRecord | undefined> {
    checkNewJob(j);
    const r = await this.pool.query<JobRow>(
      `INSERT INTO ${this.t('jobs')} (kind, adapter, mailbox, message_id, source, idem, state, attempts, max_attempts, next_at, created, updated)
       VALUES ($1,$2,$3,$4,$5,$6,'queued',0,$7,$8,$8,$8) ON CONFLICT (idem) DO NOTHING RETURNING *`,
      [j.kind, j.adapter, j.mailbox, j.messageId ?? null, j.source ?? null, j.idempotencyKey, j.maxAttempts, now.getTime()],
    );
    const row = r.rows[0];
    return row ? jobFromRow(row) : undefined;
  }

  async claimDue(now: Date, leaseMs: number, limit: number, messageId?: string): Promise<JobRecord[]> {
    const t = now.getTime();
    const r = await this.pool.query<JobRow>(
      `UPDATE ${this.t('jobs')} SET attempts = attempts + 1, next_at = $2, updated = $1
       WHERE id IN (SELECT id FROM ${this.t('jobs')} WHERE state = 'queued' AND next_at <= $1 AND ($4::text IS NULL OR message_id = $4)
                    ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [t, t + leaseMs, limit, messageId ?? null],
    );
    return r.rows.map(jobFromRow).sort((a, b) => a.id - b.id);
  }

  private async update(id: number, fn: (j: JobRecord) => JobChange, now: Date): Promise<JobRecord> {
    return this.tx(async (c) => {
      const row = (await c.query<JobRow>(`SELECT * FROM ${this.t('jobs')} WHERE id = $1 FOR UPDATE`, [id])).rows[0];
      if (!row) throw new OsciError('ERR_NOT_FOUND', `no job ${id}`);
      const ch = fn(jobFromRow(row));
      const cols = Object.keys(ch);
      const vals = cols.map((k) => {
        const v = (ch as Record<string, unknown>)[k];
        return k === 'history' ? JSON.stringify(v) : v;
      });
      const set = cols.map((k, i) => `${k} = $${i + 1}`).join(', ');
      const out = await c.query<JobRow>(`UPDATE ${this.t('jobs')} SET ${set}, updated = $${cols.length + 1} WHERE id = $${cols.length + 2} RETURNING *`, [...vals, now.getTime(), id]);
      return jobFromRow(out.rows[0] as JobRow);
    });
  }

  async complete(id: number, result: string, now: Date): Promise<void> {
    await this.update(id, transition.complete(result, now), now);
  }

  async retryLater(id: number, reason: string, nextAt: Date, now: Date): Promise<void> {
    await this.update(id, transition.retry(reason, nextAt, now), now);
  }

  async wait(id: number, detail: string, nextAt: Date, now: Date): Promise<void> {
    await this.update(id, transition.wait(detail, nextAt, now), now);
  }

  async park(id: number, reason: string, now: Date): Promise<void> {
    await this.update(id, transition.park(reason, now), now);
  }

  async setMessageId(id: number, messageId: string, now: Date): Promise<void> {
    await this.update(id, transition.setMessageId(messageId), now);
  }

  async redrive(id: number, now: Date): Promise<JobRecord> {
    return this.update(id, transition.redrive(now), now);
  }

  async get(id: number): Promise<JobRecord | undefined> {
    const r = (await this.pool.query<JobRow>(`SELECT * FROM ${this.t('jobs')} WHERE id = $1`, [id])).rows[0];
    return r ? jobFromRow(r) : undefined;
  }

  async list(f: JobFilter = {}): Promise<JobRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (col: string, v: unknown) => {
      args.push(v);
      where.push(`${col} = $${args.length}`);
    };
    if (f.state) add('state', f.state);
    if (f.kind) add('kind', f.kind);
    if (f.messageId) add('message_id', f.messageId);
    args.push(f.limit ?? 1000);
    const r = await this.pool.query<JobRow>(`SELECT * FROM ${this.t('jobs')} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${args.length}`, args);
    return r.rows.map(jobFromRow);
  }

  async nextDue(): Promise<Date | undefined> {
    const r = (await this.pool.query<{ t: string | null }>(`SELECT MIN(next_at) AS t FROM ${this.t('jobs')} WHERE state = 'queued'`)).rows[0];
    return r?.t == null ? undefined : new Date(Number(r.t));
  }

  async messageFolders(): Promise<Set<string>> {
    return new Set((await this.pool.query<{ folder: string }>(`SELECT folder FROM ${this.t('messages')}`)).rows.map((r) => r.folder));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
