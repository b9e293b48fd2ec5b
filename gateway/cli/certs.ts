/** `amtsbote certs`: development PKI and certificate administration (logic in gateway/certs-admin.ts). */
import { resolve, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { Command, CommanderError } from 'commander';
import { initDevPki, DEFAULT_DEV_IDENTITIES } from '../../crypto/devpki.ts';
import { loadCertificate, loadCertificates } from '../../crypto/keys.ts';
import {
  checkCertificates,
  checkUsage,
  createCsr,
  DEFAULT_OVERLAP_DAYS,
  DEFAULT_WARN_DAYS,
  entryJson,
  importCertificate,
  installCertificate,
  listCertificates,
  openAdminStore,
  revokeCertificate,
  rotateCertificate,
  type AdminContext,
  type RotationResult,
} from '../certs-admin.ts';
import { loadConfigFile, resolveConfig } from '../config.ts';
import { action, fail, pinFromEnv, printJson } from './run.ts';

const collect = (v: string, acc: string[]) => [...acc, v];

interface AdminOpts {
  dir?: string;
  config?: string;
  data?: string;
  db?: string;
  store: boolean;
  trustAnchor: string[];
  crl: string[];
  json?: boolean;
}

/** Options every administration command shares: where the identity folders and the store are. */
function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'identity folders and dev CA (default certs-dev, or devPki.dir of --config)')
    .option('--config <file>', 'the server configuration (JSON): store, identityDir, trustAnchors, crls')
    .option('--data <dir>', 'the server data folder; the store is sqlite:<dir> (default ./data)')
    .option('--db <url>', 'the store: sqlite:DIR or postgres://user@host:5432/db[?schema=NAME]')
    .option('--no-store', 'leave the store alone (identity folders only)')
    .option('--trust-anchor <file>', 'further trusted CA certificate (repeatable; the dev CA always counts)', collect, [])
    .option('--crl <file>', 'further CRL file (repeatable; the dev CA CRL always counts)', collect, [])
    .option('--json', 'print the result as JSON');
}

/** The same store and folders the server would use with the same options. */
async function adminContext(o: AdminOpts): Promise<{ ctx: AdminContext; notes: string[]; close(): Promise<void> }> {
  const file = o.config ? loadConfigFile(o.config) : undefined;
  const cfg = resolveConfig(file, { dataDir: o.data, db: o.db });
  const dir = resolve(o.dir ?? file?.devPki?.dir ?? 'certs-dev');
  const ctx: AdminContext = {
    dir,
    anchors: [...(file?.trustAnchors ?? []), ...o.trustAnchor].flatMap((f) => loadCertificates(f)),
    crlFiles: [...(file?.crls ?? []), ...o.crl],
  };
  if (file?.identityDir && resolve(file.identityDir) !== join(dir, 'intermediary')) ctx.extraIdentityDirs = { intermediary: resolve(file.identityDir) };
  const notes: string[] = [];
  if (o.store !== false && cfg.db) {
    const explicit = Boolean(o.db || o.data || file?.db || file?.dataDir);
    const s = await openAdminStore(cfg.db, explicit);
    if (s.store) ctx.store = s.store;
    if (s.note) notes.push(s.note);
  }
  return { ctx, notes, close: async () => ctx.store?.close() };
}

async function withContext<T>(o: AdminOpts, fn: (ctx: AdminContext, notes: string[]) => Promise<T>): Promise<T> {
  const { ctx, notes, close } = await adminContext(o);
  try {
    return await fn(ctx, notes);
  } finally {
    await close();
  }
}

function days(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`${name} must be a number of days ≥ 0, got ${v}`);
  return n;
}

function bitsOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 2048) fail('--bits must be an integer of at least 2048');
  return n;
}

const out = (s: string) => process.stdout.write(`${s}\n`);
const day = (iso: string | Date) => (typeof iso === 'string' ? iso : iso.toISOString()).slice(0, 10);

function printRotation(r: RotationResult, notes: string[]): void {
  out(`${r.identity} ${r.usage}: now serial ${r.current.serial} (${r.current.subject}), valid until ${day(r.current.notAfter)}`);
  out(`  key ${r.current.keyFile}, certificate ${r.current.certFile}`);
  if (r.previous) out(`  previous serial ${r.previous.serial} kept as ${r.previous.certFile} until ${r.previous.retireAt}`);
  out(`  store: ${r.store}`);
  for (const w of [...r.warnings, ...notes]) out(`  note: ${w}`);
}

function rotationJson(r: RotationResult, notes: string[]): unknown {
  return { ...r, notes };
}

export function registerCerts(program: Command): void {
  const certs = program
    .command('certs')
    .description('development PKI and certificate administration')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 check failed (certs check) or certificate refused (expired, revoked, wrong key usage),\n2 usage error or unreadable/non-matching key or certificate, 3 store unreachable, 5 internal.',
    );

  certs
    .command('init-dev')
    .description('create a development CA and separate signature and cipher keys for each dev identity (NOT FOR PRODUCTION)')
    .option('--dir <dir>', 'target folder', 'certs-dev')
    .option('--bits <n>', 'RSA key size', '3072')
    .option('--force', 'regenerate everything, even existing keys')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `\nIdentities: ${DEFAULT_DEV_IDENTITIES.join(', ')}.\nLayout: <dir>/<id>/{signature,cipher}.{key.pem,cert.pem}, <dir>/ca/.\nExample:\n  amtsbote certs init-dev --dir certs-dev --bits 3072`)
    .action(
      action(async (o: { dir: string; bits: string; force?: boolean; json?: boolean }) => {
        const bits = Number(o.bits);
        if (!Number.isInteger(bits) || bits < 2048) fail('--bits must be an integer of at least 2048');
        const r = await initDevPki(o.dir, { bits, force: Boolean(o.force) });
        const rows = r.identities.map((i) => ({
          id: i.id,
          created: i.created,
          signature: { cert: i.signature.certPath, notAfter: new Date(i.signature.certificate.validTo).toISOString() },
          cipher: { cert: i.cipher.certPath, notAfter: new Date(i.cipher.certificate.validTo).toISOString() },
        }));
        if (o.json) printJson({ dir: r.dir, ca: { created: r.ca.created, cert: r.ca.certPath, crl: r.ca.crlPath }, identities: rows, generatedKeys: r.generatedKeys });
        else {
          process.stdout.write(`Development PKI in ${r.dir} (NOT FOR PRODUCTION): CA ${r.ca.created ? 'created' : 'kept'}, ${r.generatedKeys} new key(s)\n`);
          for (const row of rows) process.stdout.write(`  ${row.id.padEnd(20)} ${row.created ? 'created' : 'kept   '}  valid until ${row.signature.notAfter.slice(0, 10)}\n`);
        }
      }),
    );

  withAdminOptions(certs.command('list'))
    .description('every certificate in use: identity folders and mailbox certificates in the store, with their state')
    .addHelpText(
      'after',
      '\nStates: current, overlap (previous one, still in use until its overlap ends), future, retired, expired, revoked.\nExamples:\n  amtsbote certs list\n  amtsbote certs list --db postgres://root@127.0.0.1:5432/test --json',
    )
    .action(
      action(async (o: AdminOpts) =>
        withContext(o, async (ctx, notes) => {
          const l = await listCertificates(ctx);
          if (o.json) {
            printJson({ dir: ctx.dir, store: l.store, certificates: l.entries.map(entryJson), notes: [...notes, ...l.notes] });
            return;
          }
          out(`${'IDENTITY'.padEnd(20)} ${'USAGE'.padEnd(9)} ${'STATE'.padEnd(8)} ${'SERIAL'.padEnd(16)} ${'NOT AFTER'.padEnd(10)} WHERE       SUBJECT`);
          for (const e of l.entries) {
            const where = [e.file ? 'dir' : '', e.inStore ? 'store' : ''].filter(Boolean).join('+');
            const extra = e.retireAt && e.state === 'overlap' ? ` (until ${e.retireAt.toISOString()})` : '';
            out(`${e.identity.padEnd(20)} ${e.usage.padEnd(9)} ${e.state.padEnd(8)} ${e.serial.slice(0, 16).padEnd(16)} ${day(e.notAfter)} ${where.padEnd(11)} ${e.subject}${extra}`);
          }
          for (const n of [...notes, ...l.notes]) out(`note: ${n}`);
        }),
      ),
    );

  withAdminOptions(certs.command('check'))
    .description('exit 1 if a certificate in use expires within N days, is revoked, or does not chain to a trust anchor')
    .option('--warn-days <n>', `warn this many days before expiry (default ${DEFAULT_WARN_DAYS})`)
    .addHelpText('after', '\nExit codes: 0 everything fine, 1 findings (printed), 2 usage error, 3 store unreachable.\nExample (cron):\n  amtsbote certs check --warn-days 45 --json')
    .action(
      action(async (o: AdminOpts & { warnDays?: string }) =>
        withContext(o, async (ctx, notes) => {
          const r = await checkCertificates(ctx, { warnDays: days(o.warnDays, '--warn-days', DEFAULT_WARN_DAYS) });
          if (o.json) {
            printJson({ ok: r.ok, warnDays: r.warnDays, findings: r.findings, checked: r.checked.map(entryJson), notes: [...notes, ...r.notes] });
          } else {
            if (r.ok) out(`OK: ${r.checked.length} certificate(s) in use; none expires within ${r.warnDays} days, none revoked, all chain to a trust anchor`);
            else out(`${r.findings.length} finding(s) in ${r.checked.length} certificate(s) in use:`);
            for (const f of r.findings) out(`  ${f.kind}: ${f.message}`);
            for (const n of [...notes, ...r.notes]) out(`note: ${n}`);
          }
          return r.ok ? 0 : 1;
        }),
      ),
    );

  withAdminOptions(certs.command('rotate'))
    .description('replace a key and certificate without downtime: the previous pair stays in use for the overlap')
    .requiredOption('--identity <id>', 'identity folder name (intermediary = the server itself, others are mailboxes)')
    .requiredOption('--usage <usage>', 'signature or cipher')
    .option('--overlap-days <n>', `days the previous certificate stays valid (default ${DEFAULT_OVERLAP_DAYS}; 0 = retire at once)`)
    .option('--bits <n>', 'RSA key size of a new dev key (default 3072)')
    .option('--p12 <file>', 'install this CA-issued key and certificate instead of issuing from the dev CA')
    .option('--pin-env <var>', 'environment variable holding the PIN of --p12')
    .addHelpText(
      'after',
      '\nWithout --p12 the dev CA issues the new certificate. The new certificate is registered for the mailbox in the\nstore at once; a running server re-reads its identity folder on the next request.\nExamples:\n  amtsbote certs rotate --identity stadt-lemgo --usage cipher --overlap-days 14\n  amtsbote certs rotate --identity intermediary --usage cipher --p12 new-cipher.p12 --pin-env P12_PIN',
    )
    .action(
      action(async (o: AdminOpts & { identity: string; usage: string; overlapDays?: string; bits?: string; p12?: string; pinEnv?: string }) => {
        const u = checkUsage(o.usage);
        const overlapDays = days(o.overlapDays, '--overlap-days', DEFAULT_OVERLAP_DAYS);
        if (o.pinEnv && !o.p12) fail('--pin-env goes with --p12');
        const p12 = o.p12 ? { file: o.p12, pin: pinFromEnv(o.pinEnv) ?? fail('--p12 needs --pin-env VAR') } : undefined;
        const bits = bitsOf(o.bits);
        await withContext(o, async (ctx, notes) => {
          const r = await rotateCertificate(ctx, { identity: o.identity, usage: u, overlapDays, ...(bits ? { bits } : {}), ...(p12 ? { p12 } : {}) });
          if (o.json) printJson(rotationJson(r, notes));
          else printRotation(r, notes);
        });
      }),
    );

  withAdminOptions(certs.command('csr'))
    .description('create a new key and a PKCS#10 certificate request for a CA (then: certs install)')
    .requiredOption('--identity <id>', 'identity folder name')
    .requiredOption('--usage <usage>', 'signature or cipher')
    .requiredOption('--subject <dn>', 'subject, RFC 4514, most specific first: "CN=Stadt Lemgo,O=Stadt Lemgo,C=DE"')
    .option('--bits <n>', 'RSA key size (default 3072)')
    .option('--out <file>', 'also write the request here ("-" = standard output)')
    .option('--force', 'replace a pending key')
    .addHelpText(
      'after',
      '\nThe key stays in <dir>/<id>/<usage>.pending.key.pem, the request is <dir>/<id>/<usage>.csr.pem (keyUsage requested\nas an extensionRequest).\nExample:\n  amtsbote certs csr --identity stadt-lemgo --usage cipher --subject "CN=Stadt Lemgo Verschluesselung,O=Stadt Lemgo,C=DE"',
    )
    .action(
      action(async (o: AdminOpts & { identity: string; usage: string; subject: string; bits?: string; out?: string; force?: boolean }) => {
        const u = checkUsage(o.usage);
        const bits = bitsOf(o.bits);
        await withContext({ ...o, store: false }, async (ctx) => {
          const r = await createCsr(ctx, { identity: o.identity, usage: u, subject: o.subject, force: Boolean(o.force), ...(bits ? { bits } : {}) });
          if (o.out === '-') {
            process.stdout.write(r.csrPem);
            return;
          }
          if (o.out) writeFileSync(o.out, r.csrPem);
          if (o.json) printJson({ identity: r.identity, usage: r.usage, keyFile: r.keyFile, csrFile: r.csrFile, ...(o.out ? { out: o.out } : {}) });
          else {
            out(`key ${r.keyFile} (pending), request ${r.csrFile}${o.out ? ` and ${o.out}` : ''}`);
            out(`send the request to your CA, then: amtsbote certs install --identity ${r.identity} --usage ${r.usage} --cert ISSUED.pem`);
          }
        });
      }),
    );

  withAdminOptions(certs.command('install'))
    .description('install the CA-issued certificate for the pending key of certs csr (previous pair kept for the overlap)')
    .requiredOption('--identity <id>', 'identity folder name')
    .requiredOption('--usage <usage>', 'signature or cipher')
    .requiredOption('--cert <file>', 'the issued certificate (PEM, may include its issuers, or DER)')
    .option('--overlap-days <n>', `days the previous certificate stays valid (default ${DEFAULT_OVERLAP_DAYS})`)
    .addHelpText('after', '\nA certificate that does not match the pending key is refused (exit 2).\nExample:\n  amtsbote certs install --identity stadt-lemgo --usage cipher --cert stadt-lemgo-cipher.pem')
    .action(
      action(async (o: AdminOpts & { identity: string; usage: string; cert: string; overlapDays?: string }) => {
        const u = checkUsage(o.usage);
        const overlapDays = days(o.overlapDays, '--overlap-days', DEFAULT_OVERLAP_DAYS);
        const certificates = loadCertificates(o.cert);
        await withContext(o, async (ctx, notes) => {
          const r = await installCertificate(ctx, { identity: o.identity, usage: u, certificates, overlapDays });
          if (o.json) printJson(rotationJson(r, notes));
          else printRotation(r, notes);
        });
      }),
    );

  withAdminOptions(certs.command('import'))
    .description("register a mailbox certificate in the store (e.g. a court's cipher certificate); creates the mailbox if needed")
    .requiredOption('--identity <id>', 'mailbox id')
    .requiredOption('--usage <usage>', 'signature or cipher')
    .requiredOption('--cert <file>', 'the certificate (PEM or DER)')
    .option('--name <text>', 'display name of a new mailbox')
    .addHelpText('after', '\nExample:\n  amtsbote certs import --identity ag-detmold --usage cipher --cert ag-detmold-cipher.cer --data ./data')
    .action(
      action(async (o: AdminOpts & { identity: string; usage: string; cert: string; name?: string }) => {
        const u = checkUsage(o.usage);
        const certificate = loadCertificate(o.cert);
        await withContext(o, async (ctx, notes) => {
          const r = await importCertificate(ctx, { identity: o.identity, usage: u, certificate, ...(o.name ? { name: o.name } : {}) });
          if (o.json) printJson({ ...r, notes });
          else {
            out(`${r.identity} ${r.usage}: registered serial ${r.certificate.serial} (${r.certificate.subject}), valid until ${day(r.certificate.notAfter)}${r.createdMailbox ? ' (new mailbox)' : ''}`);
            for (const w of [...r.warnings, ...notes]) out(`  note: ${w}`);
          }
        });
      }),
    );

  withAdminOptions(certs.command('revoke'))
    .description('revoke a certificate: dev CA CRL (the server re-reads it on every check) and the store')
    .option('--serial <hex>', 'serial number of a dev CA certificate (hex, colons allowed)')
    .option('--cert <file>', 'the certificate to revoke')
    .addHelpText('after', '\nExamples:\n  amtsbote certs revoke --cert certs-dev/stadt-lemgo/cipher-4F3A.cert.pem\n  amtsbote certs revoke --serial 4F:3A:...')
    .action(
      action(async (o: AdminOpts & { serial?: string; cert?: string }) => {
        if (Boolean(o.serial) === Boolean(o.cert)) fail('give exactly one of --serial HEX or --cert FILE');
        const certificate = o.cert ? loadCertificate(o.cert) : undefined;
        await withContext(o, async (ctx, notes) => {
          const r = await revokeCertificate(ctx, certificate ? { certificate } : { serial: o.serial as string });
          if (o.json) printJson({ ...r, notes });
          else {
            out(`serial ${r.serial} revoked${r.crlFile ? ` (CRL ${r.crlFile})` : ''}; store: ${r.store.length} certificate(s) marked`);
            for (const f of r.inFolders) out(`  in use: ${f.identity} ${f.usage} ${f.file}: rotate it (certs rotate --identity ${f.identity} --usage ${f.usage})`);
            for (const w of [...r.warnings, ...notes]) out(`  note: ${w}`);
          }
        });
      }),
    );

  // Usage errors exit 2 (ERR_USAGE in protocol/errors.ts). commander copies exitOverride only into commands created
  // after it is set, and gateway/cli/main.ts sets it on the program after registration, so set it here as well.
  const usageExit = (err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : 2);
  for (const c of [certs, ...certs.commands]) c.exitOverride(usageExit);
}
