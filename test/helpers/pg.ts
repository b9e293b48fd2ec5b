/** The real PostgreSQL of the machine (and of CI): a fresh schema per test suite, dropped afterwards. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { IN_CI } from './env.ts';

export const PG_URL = process.env.AMTSBOTE_TEST_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';

/** true when reachable; outside CI skips the calling suite otherwise, in CI throws. */
export async function pgAvailable(ctx: Mocha.Context): Promise<boolean> {
  const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await probe.connect();
    return true;
  } catch (err) {
    if (IN_CI) throw new Error(`PostgreSQL at ${PG_URL} is required in CI: ${String(err)}`);
    console.warn(`      skipped: PostgreSQL at ${PG_URL} is not reachable (set AMTSBOTE_TEST_PG_URL)`);
    ctx.skip();
    return false;
  } finally {
    await probe.end().catch(() => undefined);
  }
}

/** A store URL with a fresh random schema. */
export function pgSchemaUrl(): string {
  const schema = `amtsbote_test_${randomBytes(6).toString('hex')}`;
  return `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schema}`;
}

export async function dropPgSchema(url: string): Promise<void> {
  const schema = new URL(url).searchParams.get('schema');
  if (!schema || !/^amtsbote_test_[0-9a-f]+$/.test(schema)) return;
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** Waits until PostgreSQL has ended (and rolled back) every session of a killed server with this application_name. */
export async function waitForSessionsGone(appName: string | undefined): Promise<void> {
  if (!appName) return;
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    for (let i = 0; i < 1200; i++) {
      const r = await c.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [appName]);
      if (r.rows[0]?.n === '0') return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('sessions of the killed server did not end');
  } finally {
    await c.end();
  }
}
