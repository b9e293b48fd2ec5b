/**
 * Job store on SQLite (`<dataDir>/agent.sqlite`, WAL, synchronous=FULL: a resolved commit survives power loss).
 * better-sqlite3 is synchronous, so each method is one short transaction that never spans an await.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OsciError } from '../../protocol/errors.ts';
import type { MessageMeta } from '../inbox.ts';
import type { AttemptRecord, JobFilter, JobRecord, JobState, JobStore, MessageRecord, NewJob } from './types.ts';
import { transition, type JobChange } from './transitions.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  message_id TEXT PRIMARY KEY,
  mailbox TEXT NOT NULL,
  folder TEXT NOT NULL UNIQUE,
  fetched_at INTEGER NOT NULL,
  meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('deliver','send')),
  adapter TEXT NOT NULL,
  mailbox TEXT NOT NULL,
  message_id TEXT,
  source TEXT,
  idem TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('queued','done','dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  next_at INTEGER NOT NULL,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  last_error TEXT,
  result TEXT,
  history TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, next_at);
CREATE INDEX IF NOT EXISTS jobs_message ON jobs(message_id);
`;

export interface JobRow {
  id: number;
  kind: string;
  adapter: string;
  mailbox: string;
  message_id: string | null;
  source: string | null;
  idem: string;
  state: string;
  attempts: number;
  max_attempts: number;
  next_at: number | string;
  created: number | string;
  updated: number | string;
  last_error: string | null;
  result: string | null;
  history: string | AttemptRecord[];
}

export function jobFromRow(r: JobRow): JobRecord {
  const job: JobRecord = {
    id: Number(r.id),
    kind: r.kind as JobRecord['kind'],
    adapter: r.adapter,
    mailbox: r.mailbox,
    idempotencyKey: r.idem,
    state: r.state as JobState,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    nextAt: new Date(Number(r.next_at)),
    created: new Date(Number(r.created)),
    updated: new Date(Number(r.updated)),
    history: typeof r.history === 'string' ? (JSON.parse(r.history) as AttemptRecord[]) : r.history,
  };
  if (r.message_id !== null) job.messageId = r.message_id;
  if (r.source !== null) job.source = r.source;
  if (r.last_error !== null) job.lastError = r.last_error;
  if (r.result !== null) job.result = r.result;
  return job;
}

export function checkNewJob(j: NewJob): void {
  if (!Number.isInteger(j.maxAttempts) || j.maxAttempts < 1) throw new OsciError('ERR_USAGE', 'a job needs maxAttempts ≥ 1');
  if (!j.idempotencyKey) throw new OsciError('ERR_USAGE', 'a job needs an idempotency key');
}

export class SqliteJobStore implements JobStore {
  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating) `<dataDir>/agent.sqlite`. One agent process per data folder. */
  static open(dataDir: string): SqliteJobStore {
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true });
    const db = new Database(join(dir, 'agent.sqlite'));
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 10000');
    } catch (e) {
      db.close();
      throw new OsciError('ERR_INTERNAL', `cannot open the agent store in ${dir}`, { cause: e });
    }
    return new SqliteJobStore(db);
  }

  async migrate(): Promise<void> {
    this.db.exec(SCHEMA);
  }

  async hasMessage(messageId: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM messages WHERE message_id = ?').get(messageId) !== undefined;
  }

  async getMessage(messageId: string): Promise<MessageRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM messages WHERE message_id = ?').get(messageId) as
      | { message_id: string; mailbox: string; folder: string; fetched_at: number; meta: string }
      | undefined;
    if (!r) return undefined;
    return { messageId: r.message_id, mailbox: r.mailbox, folder: r.folder, fetchedAt: new Date(r.fetched_at), meta: JSON.parse(r.meta) as MessageMeta };
  }

  async commitMessage(m: MessageRecord, jobs: NewJob[]): Promise<boolean> {
    jobs.forEach(checkNewJob);
    const now = m.fetchedAt.getTime();
    const tx = this.db.transaction(() => {
      const ins = this.db.prepare('INSERT OR IGNORE INTO messages (message_id, mailbox, folder, fetched_at, meta) VALUES (?, ?, ?, ?, ?)').run(m.messageId, m.mailbox, m.folder, now, JSON.stringify(m.meta));
      if (ins.changes === 0) return false;
      const job = this.db.prepare(
        `INSERT INTO jobs (kind, adapter, mailbox, message_id, source, idem, state, attempts, max_attempts, next_at, created, updated)
         VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)`,
      );
      for (const j of jobs) job.run(j.kind, j.adapter, j.mailbox, j.messageId ?? null, j.source ?? null, j.idempotencyKey, j.maxAttempts, now, now, now);
      return true;
    });
    return tx.immediate();
  }

  async enqueue(j: NewJob, now: Date): Promise<JobRecord | undefined> {
    checkNewJob(j);
    const t = now.getTime();
    const r = this.db
      .prepare(
        `INSERT OR IGNORE INTO jobs (kind, adapter, mailbox, message_id, source, idem, state, attempts, max_attempts, next_at, created, updated)
         VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)`,
      )
      .run(j.kind, j.adapter, j.mailbox, j.messageId ?? null, j.source ?? null, j.idempotencyKey, j.maxAttempts, t, t, t);
    return r.changes === 0 ? undefined : this.get(Number(r.lastInsertRowid));
  }

  async claimDue(now: Date, leaseMs: number, limit: number, messageId?: string): Promise<JobRecord[]> {
    const t = now.getTime();
    const tx = this.db.transaction(() => {
      const rows = (
        messageId === undefined
          ? this.db.prepare("SELECT * FROM jobs WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT ?").all(t, limit)
          : this.db.prepare("SELECT * FROM jobs WHERE state = 'queued' AND next_at <= ? AND message_id = ? ORDER BY next_at, id LIMIT ?").all(t, messageId, limit)
      ) as JobRow[];
      const upd = this.db.prepare('UPDATE jobs SET attempts = attempts + 1, next_at = ?, updated = ? WHERE id = ?');
      for (const r of rows) upd.run(t + leaseMs, t, r.id);
      return rows.map((r) => jobFromRow({ ...r, attempts: Number(r.attempts) + 1, next_at: t + leaseMs, updated: t }));
    });
    return tx.immediate();
  }

  private update(id: number, fn: (job: JobRecord) => JobChange, now: Date): JobRecord {
    const tx = this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
      if (!row) throw new OsciError('ERR_NOT_FOUND', `no job ${id}`);
      const job = jobFromRow(row);
      const ch = fn(job);
      const cols = Object.keys(ch);
      const vals = cols.map((c) => {
        const v = (ch as Record<string, unknown>)[c];
        return c === 'history' ? JSON.stringify(v) : (v as string | number | null);
      });
      this.db.prepare(`UPDATE jobs SET ${cols.map((c) => `${c} = ?`).join(', ')}, updated = ? WHERE id = ?`).run(...vals, now.getTime(), id);
      return jobFromRow(this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow);
    });
    return tx.immediate();
  }

  async complete(id: number, result: string, now: Date): Promise<void> {
    this.update(id, transition.complete(result, now), now);
  }

  async retryLater(id: number, reason: string, nextAt: Date, now: Date): Promise<void> {
    this.update(id, transition.retry(reason, nextAt, now), now);
  }

  async wait(id: number, detail: string, nextAt: Date, now: Date): Promise<void> {
    this.update(id, transition.wait(detail, nextAt, now), now);
  }

  async park(id: number, reason: string, now: Date): Promise<void> {
    this.update(id, transition.park(reason, now), now);
  }

  async setMessageId(id: number, messageId: string, now: Date): Promise<void> {
    this.update(id, transition.setMessageId(messageId), now);
  }

  async redrive(id: number, now: Date): Promise<JobRecord> {
    return this.update(id, transition.redrive(now), now);
  }

  async get(id: number): Promise<JobRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r ? jobFromRow(r) : undefined;
  }

  async list(f: JobFilter = {}): Promise<JobRecord[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    const add = (cond: string, v: string) => {
      where.push(cond);
      args.push(v);
    };
    if (f.state) add('state = ?', f.state);
    if (f.kind) add('kind = ?', f.kind);
    if (f.messageId) add('message_id = ?', f.messageId);
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.db.prepare(sql).all(...args, f.limit ?? 1000) as JobRow[]).map(jobFromRow);
  }

  async nextDue(): Promise<Date | undefined> {
    const r = this.db.prepare("SELECT MIN(next_at) AS t FROM jobs WHERE state = 'queued'").get() as { t: number | null };
    return r.t === null ? undefined : new Date(r.t);
  }

  async messageFolders(): Promise<Set<string>> {
    return new Set((this.db.prepare('SELECT folder FROM messages').all() as Array<{ folder: string }>).map((r) => r.folder));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
