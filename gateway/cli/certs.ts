/** `amtsbote certs`: development PKI and certificate administration. */
import type { Command } from 'commander';
import { initDevPki, DEFAULT_DEV_IDENTITIES } from '../../crypto/devpki.ts';
import { action, fail, printJson } from './run.ts';

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description('development PKI and certificate administration');

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
}
