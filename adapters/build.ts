/** Builds the delivery adapters a configuration names; secrets come from the environment variables it names. */
import { readFileSync } from 'node:fs';
import { OsciError } from '../protocol/errors.ts';
import type { AdapterConfig } from './config.ts';
import type { DeliveryAdapter } from './delivery.ts';
import { HotFolderExport } from './hotfolder/export.ts';
import { HttpDmsAdapter } from './http/dms.ts';
import { SmtpNotifyAdapter } from './smtp/notify.ts';

function secret(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const v = env[name];
  if (v === undefined || v === '') throw new OsciError('ERR_USAGE', `${what}: environment variable ${name} is not set`);
  return v;
}

export function createAdapter(name: string, c: AdapterConfig, env: NodeJS.ProcessEnv = process.env): DeliveryAdapter {
  switch (c.type) {
    case 'hotfolder':
      return new HotFolderExport({ name, dir: c.dir, ...(c.stagingDir ? { stagingDir: c.stagingDir } : {}) });
    case 'http':
      return new HttpDmsAdapter({
        name,
        url: c.url,
        secret: Buffer.from(secret(env, c.secretEnv, `adapter ${name}`), 'utf8'),
        ...(c.timeoutSeconds !== undefined ? { timeoutMs: c.timeoutSeconds * 1000 } : {}),
      });
    case 'smtp':
      return new SmtpNotifyAdapter({
        name,
        host: c.host,
        port: c.port,
        ...(c.security ? { security: c.security } : {}),
        ...(c.auth ? { auth: { user: c.auth.user, pass: secret(env, c.auth.passEnv, `adapter ${name}`) } } : {}),
        ...(c.ca ? { ca: c.ca.map((f) => readFileSync(f, 'utf8')) } : {}),
        from: c.from,
        to: c.to,
        ...(c.includeText !== undefined ? { includeText: c.includeText } : {}),
        ...(c.timeoutSeconds !== undefined ? { timeoutMs: c.timeoutSeconds * 1000 } : {}),
        ...(c.clientName ? { clientName: c.clientName } : {}),
      });
  }
}

export function createAdapters(cfg: Record<string, AdapterConfig>, env: NodeJS.ProcessEnv = process.env): Map<string, DeliveryAdapter> {
  return new Map(Object.entries(cfg).map(([name, c]) => [name, createAdapter(name, c, env)]));
}
