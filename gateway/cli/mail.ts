/** `amtsbote send | fetch | process-card`: the client side for courts, law firms and municipalities. */
import { createHash, type X509Certificate } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { checkCertificate } from '../../crypto/x509.ts';
import { openContent, sealContent } from '../../protocol/envelope/index.ts';
import type { ProcessCardBundle } from '../../protocol/processcard.ts';
import { OsciError } from '../../protocol/errors.ts';
import { connect, recipientCipher, type ClientGlobals } from './identities.ts';
import { action, fail, printJson } from './run.ts';

/** Limits of the EGVP/justice infrastructure (osci-protocol.md §13): 200 MB, 1000 files, court-safe names. */
export const SEND_LIMITS = Object.freeze({ maxFiles: 1000, maxTotalBytes: 200 * 1024 * 1024, maxNameLength: 60 });

/** File names courts accept: ≤ 60 characters, ASCII letters, digits, '.', '_', '-', no leading dot (§13). */
export function courtSafeNameProblem(name: string): string | undefined {
  if (name.length > SEND_LIMITS.maxNameLength) return `longer than ${SEND_LIMITS.maxNameLength} characters`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return 'only A-Z, a-z, 0-9, ".", "_" and "-" are allowed (no umlauts, spaces or leading dot)';
  if (/\.\./.test(name)) return 'contains ".."';
  return undefined;
}

const collect = (v: string, acc: string[]) => [...acc, v];

function addClientOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'intermediary base URL (default $AMTSBOTE_SERVER), e.g. http://127.0.0.1:8080')
    .requiredOption('--as <id>', 'own identity: a folder <identity-root>/<id> with {signature,cipher}.{key,cert}.pem or .p12')
    .option('--identity-root <dir>', 'folder of identity folders (default $AMTSBOTE_IDENTITIES or certs-dev)')
    .option('--pin-env <var>', 'environment variable holding the PIN of PKCS#12 keys')
    .option('--trust-anchor <file>', 'trusted CA certificate (repeatable; default the dev CA in certs-dev/ca)', collect, [])
    .option('--json', 'machine-readable output');
}

function summariseCard(b: ProcessCardBundle | undefined) {
  if (!b) return undefined;
  const t = (x: { kind: string; time?: string } | undefined) => (x && 'time' in x ? x.time : undefined);
  const pc = b.processCard;
  return {
    messageId: b.messageId,
    subject: pc.subject,
    creation: t(pc.creation as { kind: string; time?: string } | undefined),
    forwarding: t(pc.forwarding as { kind: string; time?: string } | undefined),
    reception: t(pc.reception as { kind: string; time?: string } | undefined),
    recentModification: pc.recentModification,
    inspections: b.inspectionReport.map((i) => ({ subject: i.x509SubjectName, math: i.mathResult, offline: i.offlineResult, online: i.onlineResult?.result })),
  };
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

/** Writes a file and flushes it to disk. */
function writeDurable(path: string, data: Buffer | string): void {
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Folder name of a message: its MessageId decoded when printable, else hex of it; always filesystem-safe. */
export function messageFolderName(messageId: string): string {
  const decoded = Buffer.from(messageId, 'base64').toString('utf8');
  const safe = /^[\w.-]{1,100}$/.test(decoded) ? decoded : createHash('sha256').update(messageId).digest('hex').slice(0, 32);
  return safe;
}

/** Unique safe names for attachments (the OVG receiver's rule: fix invalid, long and duplicate names). */
function safeUniqueName(wanted: string, taken: Set<string>): string {
  let base = wanted.normalize('NFKD').replace(/[^\w.-]+/g, '_').replace(/^\.+/, '').slice(0, 60) || 'attachment';
  if (base === 'message.json' || base === 'process-card.xml' || base === 'inspection-report.json') base = `_${base}`;
  let name = base;
  for (let i = 2; taken.has(name.toLowerCase()); i++) {
    const dot = base.lastIndexOf('.');
    name = dot > 0 ? `${base.slice(0, dot)}_${i}${base.slice(dot)}` : `${base}_${i}`;
  }
  taken.add(name.toLowerCase());
  return name;
}

export function registerMail(program: Command): void {
  addClientOptions(
    program
      .command('send')
      .description('send a signed, end-to-end encrypted message (storeDelivery) to a postbox')
      .requiredOption('--to <id>', 'recipient postbox id (its cipher certificate is looked up in the directory)')
      .requiredOption('--subject <text>', 'subject')
      .option('--text <text>', 'message text (sent as Base64Content)')
      .option('--attach <file>', 'attachment (repeatable)', collect, []),
  )
    .addHelpText('after', '\nExample:\n  amtsbote send --server http://127.0.0.1:8080 --as ag-lemgo --to stadt-lemgo --subject "Klage 12 C 1000/26" --attach xjustiz_nachricht.xml --attach schriftsatz.pdf')
    .action(
      action(async (o: ClientGlobals & { to: string; subject: string; text?: string; attach: string[]; json?: boolean }) => {
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
          const to = await recipientCipher(server, o.to, anchors);
          const sealed = await sealContent({
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
              const authors: Array<{ subject: string; trusted: boolean; errors: string[] }> = [];
              const opened = await openContent(response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
                readerKey: me.cipher.key,
                attachments: new Map(decoded.attachments.map((a) => [a.contentId, () => a.open()])),
                certificates: response.certificates,
                tmpDir: tmp,
                trustAuthor: async (carried: X509Certificate | undefined) => {
                  if (!carried) throw new Error('content container without author certificate');
                  const c = checkCertificate(carried, { usage: 'signature', anchors });
                  authors.push({ subject: carried.subject.replace(/\n/g, ', '), trusted: c.errors.length === 0, errors: c.errors.map((e) => e.code) });
                  return carried;
                },
              });
              const work = `${folder}.part-${process.pid}`;
              rmSync(work, { recursive: true, force: true });
              mkdirSync(work, { recursive: true });
              const taken = new Set<string>();
              const files: Array<{ name: string; contentId: string; size: number; sha256: string }> = [];
              const texts: string[] = [];
              let verified = opened.containers.length > 0;
              for (const c of opened.containers) {
                verified &&= c.signatureValid;
                for (const item of c.contents) {
                  if (item.kind === 'base64') {
                    texts.push(item.data.toString('utf8'));
                    continue;
                  }
                  if (item.kind === 'xml') {
                    texts.push(item.xml);
                    continue;
                  }
                  const name = safeUniqueName(item.contentId, taken);
                  const hash = createHash('sha256');
                  let size = 0;
                  const src = item.open();
                  src.on('data', (ch: Buffer) => {
                    hash.update(ch);
                    size += ch.length;
                  });
                  await pipeline(src, createWriteStream(join(work, name)));
                  const fd = openSync(join(work, name), 'r');
                  fsyncSync(fd);
                  closeSync(fd);
                  files.push({ name, contentId: item.contentId, size, sha256: hash.digest('hex') });
                }
              }
              verified &&= authors.every((a) => a.trusted);
              allVerified &&= verified;
              if (texts.length) writeDurable(join(work, 'text.txt'), texts.join('\n\n'));
              writeDurable(join(work, 'inspection-report.json'), JSON.stringify(card?.inspectionReport ?? [], null, 2));
              writeDurable(join(work, 'process-card.json'), JSON.stringify(summariseCard(card), null, 2));
              const meta = {
                messageId,
                subject: card?.processCard.subject,
                from: authors.map((a) => a.subject),
                timestamps: summariseCard(card),
                verification: { allValid: verified, containers: opened.containers.map((c) => ({ signatureValid: c.signatureValid, signer: c.signer?.subject.replace(/\n/g, ', ') })), authors },
                attachments: files,
              };
              writeDurable(join(work, 'message.json'), JSON.stringify(meta, null, 2));
              fsyncDir(work);
              renameSync(work, folder);
              fsyncDir(out);
              results.push({ messageId, folder, verified, attachments: files.length });
              if (!o.json) process.stdout.write(`${verified ? 'OK ' : 'BAD'} ${messageId}  ${meta.subject ?? ''}  → ${folder}\n`);
            } finally {
              await decoded.dispose();
            }
          }
        } finally {
          // exitDialog is the request that acknowledges the last message's reception (§2).
          await dialog.close();
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
