/** `amtsbote send | fetch | process-card`: the client side for courts, law firms and municipalities. */
import { createReadStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { courtSafeNameProblem, messageFolderName, SEND_LIMITS } from '../../adapters/files.ts';
import { summariseCard, writeDeliveryFolder } from '../../adapters/inbox.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import type { ProcessCardBundle } from '../../protocol/processcard.ts';
import { OsciError } from '../../protocol/errors.ts';
import { connect, pinnedCertificate, recipientCipher, type ClientGlobals } from './identities.ts';
import { action, fail, printJson } from './run.ts';

// Moved to adapters/files.ts (shared with the mailbox agent); re-exported for existing importers.
export { courtSafeNameProblem, messageFolderName, SEND_LIMITS };

const collect = (v: string, acc: string[]) => [...acc, v];

function addClientOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'intermediary base URL (default $AMTSBOTE_SERVER), e.g. http://127.0.0.1:8080')
    .requiredOption('--as <id>', 'own identity: a folder <identity-root>/<id> with {signature,cipher}.{key,cert}.pem or .p12')
    .option('--identity-root <dir>', 'folder of identity folders (default $AMTSBOTE_IDENTITIES or certs-dev)')
    .option('--pin-env <var>', 'environment variable holding the PIN of PKCS#12 keys')
    .option('--pin-file <file>', 'file holding that PIN (first line), instead of --pin-env')
    .option('--trust-anchor <file>', 'trusted CA certificate (repeatable; default the dev CA in certs-dev/ca)', collect, [])
    .option('--endpoint <url>', 'any OSCI 1.2 intermediary without a directory: its OSCI endpoint (instead of --server; needs the two options below)')
    .option('--intermediary-cipher <pem>', 'with --endpoint: the intermediary cipher certificate (pinned)')
    .option('--intermediary-signature <pem>', 'with --endpoint: the intermediary signature certificate (pinned)')
    .option('--json', 'machine-readable output');
}

function progressBar(total: number): (sent: number) => void {
  if (!process.stderr.isTTY || total < 5 * 1024 * 1024) return () => undefined;
  let last = -1;
  return (sent) => {
    const pct = Math.min(100, Math.floor((sent / total) * 100));
    if (pct === last) return;
    last = pct;
    const width = 30;
    const done = Math.round((pct / 100) * width);
    process.stderr.write(`\r  upload [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${pct}%${pct === 100 ? '\n' : ''}`);
  };
}

export function registerMail(program: Command): void {
  addClientOptions(
    program
      .command('send')
      .description('send a signed, end-to-end encrypted message (storeDelivery) to a postbox')
      .requiredOption('--to <id>', 'recipient postbox id (its cipher certificate is looked up in the directory, or given by --to-cert)')
      .option('--to-cert <pem>', 'the recipient\'s cipher certificate (for intermediaries without a directory)')
      .requiredOption('--subject <text>', 'subject')
      .option('--text <text>', 'message text (sent as Base64Content)')
      .option('--attach <file>', 'attachment (repeatable)', collect, []),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  amtsbote send --server http://127.0.0.1:8080 --as ag-lemgo --to stadt-lemgo --subject "Klage 12 C 1000/26" --attach xjustiz_nachricht.xml --attach schriftsatz.pdf\n' +
        '  amtsbote send --endpoint https://osci.justiz.example/osci --intermediary-cipher im-cipher.pem --intermediary-signature im-signature.pem \\\n' +
        '      --as stadt-lemgo --to ag-lemgo --to-cert ag-lemgo-cipher.pem --subject "Stellungnahme" --attach stellungnahme.pdf',
    )
    .action(
      action(async (o: ClientGlobals & { to: string; toCert?: string; subject: string; text?: string; attach: string[]; json?: boolean }) => {
        // Pre-send checks (§13): file count, total size, names a court would refuse.
        if (o.attach.length > SEND_LIMITS.maxFiles) fail(`${o.attach.length} files; at most ${SEND_LIMITS.maxFiles} per message`);
        const files = o.attach.map((f) => {
          const path = resolve(f);
          if (!existsSync(path)) fail(`attachment ${f} does not exist`);
          const name = basename(path);
          const problem = courtSafeNameProblem(name);
          if (problem) fail(`attachment name "${name}" would be refused by courts: ${problem}`);
          return { path, name, size: statSync(path).size };
        });
        const names = new Set<string>();
        for (const f of files) {
          if (names.has(f.name.toLowerCase())) fail(`two attachments are named "${f.name}"`);
          names.add(f.name.toLowerCase());
        }
        const total = files.reduce((a, f) => a + f.size, 0);
        if (total > SEND_LIMITS.maxTotalBytes) fail(`attachments total ${(total / 1e6).toFixed(1)} MB; at most ${SEND_LIMITS.maxTotalBytes / 1024 / 1024} MB per message`);
        if (!o.text && files.length === 0) fail('nothing to send: give --text and/or --attach');

        const bar = progressBar(total);
        const { server, me, anchors, client, tmp } = await connect(o, { onUploadProgress: (sent) => bar(sent) });
        try {
          if (!o.toCert && !server) fail('--to-cert PEM is needed with --endpoint (an intermediary without a directory)');
          const to = o.toCert ? pinnedCertificate(o.toCert, 'cipher', `cipher certificate of ${o.to}`) : await recipientCipher(server as string, o.to, anchors);
          // The encrypted attachment copies go to our temporary folder, which is removed below (not os.tmpdir()).
          const sealed = await sealContent({
            tmpDir: tmp,
            author: me.signer,
            readers: [to],
            contents: [
              ...(o.text ? [{ base64Content: Buffer.from(o.text, 'utf8') }] : []),
              ...files.map((f) => ({ attachment: { contentId: f.name, size: f.size, open: () => createReadStream(f.path) } })),
            ],
          });
          const r = await client.storeDelivery({ addresseeCipher: to, subject: o.subject, contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments });
          const card = summariseCard(r.processCardBundle);
          if (o.json) printJson({ messageId: r.messageId, feedback: r.feedback, processCard: card });
          else {
            process.stdout.write(`Sent. MessageId ${r.messageId}\n  stored by the intermediary at ${card?.creation ?? '?'} (${r.feedback[0]?.code} ${r.feedback[0]?.text})\n`);
            for (const i of card?.inspections ?? []) process.stdout.write(`  certificate ${i.subject}: math ${i.math}, offline ${i.offline}${i.online ? `, online ${i.online}` : ''}\n`);
          }
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      }),
    );

  addClientOptions(
    program
      .command('fetch')
      .description('fetch every waiting message in one explicit dialog, decrypt and verify it, write one folder per message')
      .requiredOption('--out <dir>', 'inbox folder; one sub-folder per MessageId'),
  )
    .addHelpText(
      'after',
      '\nReception is acknowledged only after a message folder is durably written (the next request of the dialog\n' +
        'acknowledges it); an interrupted fetch loses nothing and a repeated fetch duplicates nothing.\n' +
        'Example:\n  amtsbote fetch --server http://127.0.0.1:8080 --as stadt-lemgo --out ./inbox --json',
    )
    .action(
      action(async (o: ClientGlobals & { out: string; json?: boolean }) => {
        const out = resolve(o.out);
        mkdirSync(out, { recursive: true });
        const { client, anchors, tmp, me } = await connect(o);
        const results: unknown[] = [];
        let allVerified = true;
        const dialog = await client.openDialog();
        let failed = false;
        try {
          for (;;) {
            const got = await dialog.fetchDelivery();
            if (!got) break;
            const { response, decoded } = got;
            try {
              const card = response.processCardBundle;
              const messageId = card?.messageId ?? 'unknown';
              const folder = join(out, messageFolderName(messageId));
              if (existsSync(folder)) {
                // Written by an earlier, interrupted run: this request's successor acknowledges it; nothing is duplicated.
                results.push({ messageId, folder, duplicate: true });
                continue;
              }
              const { meta } = await writeDeliveryFolder({ parent: out, response, decoded, readerKeys: [me.cipher.key, ...me.olderCipherKeys], anchors, tmpDir: tmp });
              const verified = meta.verification.allValid;
              allVerified &&= verified;
              results.push({ messageId, folder, verified, attachments: meta.attachments.length });
              if (!o.json) process.stdout.write(`${verified ? 'OK ' : 'BAD'} ${messageId}  ${meta.subject ?? ''}  → ${folder}\n`);
            } finally {
              await decoded.dispose();
            }
          }
        } catch (e) {
          failed = true;
          throw e;
        } finally {
          // exitDialog is the request that acknowledges the last message's reception (§2): after a failure the
          // dialog is abandoned instead, so a message whose folder was not written is not acknowledged.
          if (!failed) await dialog.close();
          rmSync(tmp, { recursive: true, force: true });
        }
        if (o.json) printJson({ fetched: results });
        else if (results.length === 0) process.stdout.write('No messages waiting.\n');
        return allVerified ? 0 : 1;
      }),
    );

  addClientOptions(
    program
      .command('process-card')
      .description('fetch the process card (Laufzettel) of a message: creation, forwarding, reception, inspection report')
      .requiredOption('--message-id <mid>', 'MessageId (base64, as printed by send)'),
  )
    .addHelpText('after', '\nExample:\n  amtsbote process-card --server http://127.0.0.1:8080 --as ag-lemgo --message-id YW10c2JvdGUt...')
    .action(
      action(async (o: ClientGlobals & { messageId: string; json?: boolean }) => {
        const { client, tmp } = await connect(o);
        const dialog = await client.openDialog();
        let cards: ProcessCardBundle[];
        try {
          cards = await dialog.fetchProcessCards({ by: 'messageId', messageIds: [o.messageId] });
        } finally {
          await dialog.close();
          rmSync(tmp, { recursive: true, force: true });
        }
        const card = summariseCard(cards[0]);
        if (!card) throw new OsciError('ERR_PROCESS_CARD_NOT_FOUND', `no process card for ${o.messageId} (or not yours)`);
        if (o.json) printJson(card);
        else {
          process.stdout.write(`MessageId  ${card.messageId}\nSubject    ${card.subject ?? ''}\nCreation   ${card.creation ?? '-'}\nForwarding ${card.forwarding ?? '-'}\nReception  ${card.reception ?? '-'}\n`);
          for (const i of card.inspections) process.stdout.write(`Inspection ${i.subject}: math ${i.math}, offline ${i.offline}${i.online ? `, online ${i.online}` : ''}\n`);
        }
      }),
    );
}
