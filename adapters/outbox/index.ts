/**
 * The agent's job store by URL: `sqlite:<dataDir>` (default: the agent's data folder) or
 * `postgres://…[?schema=NAME]` (default schema amtsbote_agent). Call `migrate()` before use.
 */
import { OsciError } from '../../protocol/errors.ts';
import { PgJobStore } from './postgres.ts';
import { SqliteJobStore } from './sqlite.ts';
import type { JobStore } from './types.ts';

export type * from './types.ts';
export { PgJobStore } from './postgres.ts';
export { SqliteJobStore } from './sqlite.ts';

export async function openJobStore(url: string): Promise<JobStore> {
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw new OsciError('ERR_USAGE', 'sqlite job store URL needs a data directory (sqlite:<dir>)');
    return SqliteJobStore.open(decodeURIComponent(path));
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (e) {
      throw new OsciError('ERR_USAGE', 'malformed PostgreSQL URL', { cause: e });
    }
    const schema = parsed.searchParams.get('schema') ?? undefined;
    parsed.searchParams.delete('schema');
    return new PgJobStore({ connectionString: parsed.toString(), ...(schema ? { schema } : {}) });
  }
  throw new OsciError('ERR_USAGE', 'job store URL must start with sqlite: or postgres://');
}
