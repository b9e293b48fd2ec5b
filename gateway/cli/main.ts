/** The `amtsbote` command line. Each command group lives in its own module. */
import { Command, CommanderError } from 'commander';
import { registerAgent } from './agent.ts';
import { registerCerts } from './certs.ts';
import { registerConfig } from './config-check.ts';
import { registerMail } from './mail.ts';
import { registerMailbox } from './mailbox.ts';
import { registerOsci } from './osci.ts';
import { registerOutbox } from './outbox.ts';
import { registerServe } from './serve.ts';
import { registerXml } from './xml.ts';

export function buildProgram(): Command {
  const program = new Command('amtsbote')
    .description('Amtsbote: OSCI-Transport 1.2 intermediary and gateway for secure electronic mailboxes')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 verification/check failed, 2 unreadable input or usage error, 3 remote/network, 4 unauthorised, 5 internal.',
    )
    // Set before the subcommands are created so that they inherit it: usage errors exit 2 (ERR_USAGE), help/version 0.
    .exitOverride((err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : 2));
  registerServe(program);
  registerMail(program);
  registerCerts(program);
  registerXml(program);
  registerOsci(program);
  registerAgent(program);
  registerOutbox(program);
  registerConfig(program);
  registerMailbox(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
