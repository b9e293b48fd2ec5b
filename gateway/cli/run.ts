/** Shared CLI plumbing: one error path (protocol/errors.ts ERROR_TABLE decides the exit code), JSON output. */
import { readFileSync } from 'node:fs';
import { OsciError, toOsciError } from '../../protocol/errors.ts';

export function fail(message: string): never {
  throw new OsciError('ERR_USAGE', message);
}

export function readInput(file: string): Buffer {
  try {
    return file === '-' ? readFileSync(0) : readFileSync(file);
  } catch (e) {
    throw new OsciError('ERR_USAGE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** PIN for a PKCS#12 file from the environment variable named by --pin-env (never from the command line). */
export function pinFromEnv(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const v = process.env[name];
  if (v === undefined) fail(`environment variable ${name} (--pin-env) is not set`);
  return v;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Wraps a command action: prints `amtsbote: CODE: message` and exits with the table's exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const rc = await fn(...args);
      if (typeof rc === 'number') process.exitCode = rc;
    } catch (err) {
      const e = toOsciError(err);
      const detail = e.code === 'ERR_INTERNAL' && e.cause instanceof Error ? ` (${e.cause.message})` : '';
      process.stderr.write(`amtsbote: ${e.code}: ${e.message}${detail}\n`);
      process.exitCode = e.exit;
    }
  };
}
