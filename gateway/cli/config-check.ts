/** `amtsbote config check FILE`: validates a server or mailbox-agent configuration and explains each error. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadAgentConfig, type AgentConfig } from '../../adapters/config.ts';
import { OsciError } from '../../protocol/errors.ts';
import { loadConfigFile, resolveConfig } from '../config.ts';
import { pinnedCertificate, pinnedIntermediary } from './identities.ts';
import { action, printJson } from './run.ts';

/** An agent configuration has mailboxes/routes/adapters; everything else is read as a server configuration. */
function looksLikeAgent(file: string): boolean {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return typeof raw === 'object' && raw !== null && ('routes' in raw || 'mailboxes' in raw || 'adapters' in raw);
  } catch {
    return false;
  }
}

/** Pinned certificates (intermediaries, recipients) must be readable, valid now and fit for their use. */
function checkPinned(cfg: AgentConfig): void {
  for (const im of Object.values(cfg.intermediaries)) pinnedIntermediary(im.endpoint, im.cipherCert, im.signatureCert);
  for (const [id, r] of Object.entries(cfg.recipients)) pinnedCertificate(r.cipherCert, 'cipher', `recipients.${id}`);
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('configuration files');
  config
    .command('check')
    .description('validate a server configuration (serve --config) or a mailbox agent configuration (agent --config)')
    .argument('<file>', 'JSON configuration file')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit status: 0 valid, 2 invalid (the message names the key and what is wrong).\nExample:\n  amtsbote config check amtsbote.json')
    .action(
      action((file: string, o: { json?: boolean }) => {
        const checked: string[] = [];
        const explain = (what: string, fn: () => void) => {
          try {
            fn();
            checked.push(what);
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            throw new OsciError('ERR_USAGE', `${what} ${file}: ${msg}`);
          }
        };
        if (looksLikeAgent(file)) explain('agent configuration', () => checkPinned(loadAgentConfig(file)));
        else {
          let agentFile: string | undefined;
          explain('server configuration', () => {
            const cfg = resolveConfig(loadConfigFile(file));
            agentFile = cfg.agent;
          });
          if (agentFile) {
            const f = agentFile;
            explain('agent configuration', () => checkPinned(loadAgentConfig(f)));
          }
        }
        if (o.json) printJson({ file, valid: true, checked });
        else process.stdout.write(`OK: ${file} (${checked.join(', ')})\n`);
      }),
    );
}
