/**
 * Opens the store a URL names:
 * - `sqlite:<dataDir>` (also `sqlite://<abs-dataDir>`): embedded, one process per data dir.
 * - `postgres://…` / `postgresql://…`, optional `?schema=<name>` (default `amtsbote`): shared by replicas.
 * The store is opened, not migrated: call `migrate()` before use (it also runs crash recovery).
 */
import { OsciError } from '../../protocol/errors.ts';
import { PgStore } from './postgres.ts';
import { SqliteStore } from './sqlite.ts';
import type { Store } from './types.ts';

export type * from './types.ts';
export { PgStore } from './postgres.ts';
export { SqliteStore } from './sqlite.ts';

export const DEFAULT_PG_SCHEMA = 'amtsbote';

export interface OpenStoreOptions {
  /** PostgreSQL pool size. */
  maxConnections?: number;
}

export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw new OsciError('ERR_USAGE', 'sqlite store URL needs a data directory (sqlite:<dir>)');
    return SqliteStore.open(decodeURIComponent(path));
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new OsciError('ERR_USAGE', 'malformed PostgreSQL store URL', { cause: err });
    }
    const schema = parsed.searchParams.get('schema') ?? DEFAULT_PG_SCHEMA;
    parsed.searchParams.delete('schema');
    return new PgStore({ connectionString: parsed.toString(), schema, ...(opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections }) });
  }
  throw new OsciError('ERR_USAGE', 'store URL must start with sqlite: or postgres://');
}
