/**
 * `amtsbote mailbox add|list|show|disable`: mailboxes of a running intermediary through its admin API
 * (gateway/http/admin.ts). The bearer token is read from an environment variable, never from the command line.
 */
import type { X509Certificate } from 'node:crypto';
import type { Command } from 'commander';
import { loadCertificates } from '../../crypto/keys.ts';
import { isErrorCode, OsciError } from '../../protocol/errors.ts';
import type { CertificateView, MailboxSummary, MailboxView } from '../http/admin.ts';
import { serverUrl } from './identities.ts';
import { action, fail, printJson, readInput } from './run.ts';

const DEFAULT_TOKEN_ENV = 'AMTSBOTE_ADMIN_TOKEN';
const collect = (v: string, acc: string[]) => [...acc, v];
const out = (s: string): void => void process.stdout.write(`${s}\n`);

interface AdminOpts {
  server?: string;
  tokenEnv: string;
  json?: boolean;
}

function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'intermediary base URL (default $AMTSBOTE_SERVER), e.g. http://127.0.0.1:8080')
    .option('--token-env <var>', 'environment variable holding the admin token', DEFAULT_TOKEN_ENV)
    .option('--json', 'machine-readable output');
}

/** One admin API call; HTTP answers become the error table's codes (401 → ERR_UNAUTHORISED, exit 4). */
async function call<T>(o: AdminOpts, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const base = serverUrl(o);
  const token = process.env[o.tokenEnv];
  if (!token) fail(`environment variable ${o.tokenEnv} (--token-env) with the admin token is not set`);
  let res: Response;
  try {
    res = await fetch(`${base}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (e) {
    throw new OsciError('ERR_REMOTE', `cannot reach ${base}: ${(e as Error).message}`, { cause: e });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (res.ok && parsed !== undefined) return { status: res.status, body: parsed as T };
  if (res.status === 401) throw new OsciError('ERR_UNAUTHORISED', `${base} refused the admin token from ${o.tokenEnv}`);
  const err = parsed as { error?: unknown; message?: unknown } | undefined;
  const message = typeof err?.message === 'string' ? err.message : `HTTP ${res.status}`;
  if (res.status === 404 && err?.message === 'not found') {
    throw new OsciError('ERR_NOT_FOUND', `${base} has no admin API (configure admin.tokenEnv or admin.tokenFile on the server)`);
  }
  if (res.status < 500 && isErrorCode(err?.error)) throw new OsciError(err.error, message);
  throw new OsciError('ERR_REMOTE', `${base}/admin${path}: ${message}`);
}

/** PEM text of every certificate in the files (PEM bundles or DER). */
function pemsOf(files: string[]): string[] {
  return files.flatMap((f) => loadCertificates(readInput(f))).map((c: X509Certificate) => c.toString());
}

const day = (iso: string) => iso.slice(0, 10);

function printCertificate(c: CertificateView): void {
  out(`  ${c.usage.padEnd(9)} ${c.state.padEnd(13)} until ${day(c.notAfter)} (${c.daysToExpiry} days)  ${c.subject}  sha256:${c.fingerprint.slice(0, 16)}…${c.revoked ? `  revoked ${c.revoked}` : ''}`);
}

function printMailbox(m: MailboxView): void {
  out(`Mailbox  ${m.id}${m.name ? ` (${m.name})` : ''}`);
  out(`State    ${m.state}`);
  out(`Endpoint ${m.endpointUrl ?? '(this intermediary)'}`);
  out(`Created  ${m.created}`);
  out('Certificates:');
  for (const c of m.certificates) printCertificate(c);
}

export function registerMailbox(program: Command): void {
  const mailbox = program
    .command('mailbox')
    .description('mailboxes of a running intermediary, through its admin API (token from $AMTSBOTE_ADMIN_TOKEN)')
    .addHelpText(
      'after',
      '\nThe server must enable the admin API (config "admin": { "tokenEnv": "AMTSBOTE_ADMIN_TOKEN" }).\n' +
        'Exit codes: 0 ok, 1 unknown mailbox or certificate refused (untrusted, expired, revoked, wrong key usage),\n' +
        '2 usage error or unreadable certificate, 3 server unreachable, 4 token refused, 5 internal.',
    );

  withAdminOptions(
    mailbox
      .command('add')
      .description('register a mailbox, or add certificates to an existing one (certificates must chain to the server trust anchors)')
      .requiredOption('--id <id>', 'mailbox id (letters, digits, ".", "_", "-")')
      .option('--name <name>', 'display name')
      .option('--signature-cert <file>', 'signature certificate, PEM or DER (repeatable)', collect, [])
      .option('--cipher-cert <file>', 'cipher (encryption) certificate, PEM or DER (repeatable)', collect, [])
      .option('--endpoint <url>', 'URL of a passive recipient (acceptDelivery/processDelivery)'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  AMTSBOTE_ADMIN_TOKEN=... amtsbote mailbox add --server http://127.0.0.1:8080 --id ag-detmold --name "AG Detmold" \\\n' +
        '    --signature-cert ag-detmold/signature.cert.pem --cipher-cert ag-detmold/cipher.cert.pem',
    )
    .action(
      action(async (o: AdminOpts & { id: string; name?: string; signatureCert: string[]; cipherCert: string[]; endpoint?: string }) => {
        const body = {
          id: o.id,
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.endpoint !== undefined ? { endpointUrl: o.endpoint } : {}),
          signatureCerts: pemsOf(o.signatureCert),
          cipherCerts: pemsOf(o.cipherCert),
        };
        const r = await call<MailboxView & { newMailbox: boolean; warnings: string[] }>(o, 'POST', '/mailboxes', body);
        if (o.json) return printJson(r.body);
        out(`${r.body.newMailbox ? 'Registered' : 'Updated'} mailbox ${r.body.id} (state ${r.body.state})`);
        for (const c of r.body.certificates) printCertificate(c);
        for (const w of r.body.warnings) out(`  note: ${w}`);
      }),
    );

  withAdminOptions(mailbox.command('list').description('list the mailboxes with their state (active, disabled, unreachable)'))
    .addHelpText('after', '\nExample:\n  AMTSBOTE_ADMIN_TOKEN=... amtsbote mailbox list --server http://127.0.0.1:8080 --json')
    .action(
      action(async (o: AdminOpts) => {
        const r = await call<{ mailboxes: MailboxSummary[] }>(o, 'GET', '/mailboxes');
        if (o.json) return printJson(r.body);
        if (r.body.mailboxes.length === 0) return out('No mailboxes.');
        for (const m of r.body.mailboxes) out(`${m.id.padEnd(24)} ${m.state.padEnd(11)} ${m.name ?? ''}`);
      }),
    );

  withAdminOptions(mailbox.command('show').description('one mailbox: state, endpoint and every certificate with validity and revocation').requiredOption('--id <id>', 'mailbox id'))
    .addHelpText('after', '\nExample:\n  AMTSBOTE_ADMIN_TOKEN=... amtsbote mailbox show --server http://127.0.0.1:8080 --id stadt-lemgo')
    .action(
      action(async (o: AdminOpts & { id: string }) => {
        const r = await call<MailboxView>(o, 'GET', `/mailboxes/${encodeURIComponent(o.id)}`);
        if (o.json) return printJson(r.body);
        printMailbox(r.body);
      }),
    );

  withAdminOptions(
    mailbox
      .command('disable')
      .description('stop new deliveries to a mailbox: its cipher certificates are revoked in the store; waiting mail stays fetchable')
      .requiredOption('--id <id>', 'mailbox id'),
  )
    .addHelpText(
      'after',
      '\nThe mailbox disappears from the directory and storeDelivery to it is refused (9707). Its owner can still fetch\n' +
        'waiting messages. Registering a new cipher certificate (mailbox add) enables it again.\n' +
        'Example:\n  AMTSBOTE_ADMIN_TOKEN=... amtsbote mailbox disable --server http://127.0.0.1:8080 --id kreis-lippe',
    )
    .action(
      action(async (o: AdminOpts & { id: string }) => {
        const r = await call<{ id: string; state: string; revokedCipherCertificates: string[] }>(o, 'POST', `/mailboxes/${encodeURIComponent(o.id)}/disable`);
        if (o.json) return printJson(r.body);
        out(`Mailbox ${r.body.id} is ${r.body.state}: ${r.body.revokedCipherCertificates.length} cipher certificate(s) revoked now.`);
      }),
    );
}
