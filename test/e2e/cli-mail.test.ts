/**
 * `amtsbote send | fetch | process-card` end to end: the built CLI as separate processes against a real
 * intermediary process (`amtsbote serve --workers 1`, SQLite, test dev PKI). A message with text and three
 * attachments is sent, fetched into an inbox folder and its process card read; every step's `--json` output is
 * parsed and checked (MessageId, Creation/Reception, inspection results, verification, SHA-256 of every
 * attachment against the originals), and no temporary files are left behind.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPki } from '../helpers/devpki.ts';
import { REPO_ROOT } from '../helpers/env.ts';
import { devServerConfig, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';
import type { CardSummary } from '../../adapters/inbox.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What `send --json` / `process-card --json` print as the process card. */
type CardJson = CardSummary;

describe('amtsbote send, fetch, process-card (CLI processes against a server process)', function () {
  this.timeout(240_000);
  let root: string;
  let pkiDir: string;
  let clientTmp: string;
  let server: ServerProcess;
  const files: Array<{ name: string; path: string; data: Buffer }> = [];
  const TEXT = 'Sehr geehrte Damen und Herren,\nanbei die Klage mit Anlagen.';

  /** One CLI process; TMPDIR points at a folder of our own so that leftovers can be seen. */
  function cli(args: string[]): { code: number | null; out: string; err: string } {
    const r = spawnSync(process.execPath, [CLI, ...args, '--server', server.url, '--identity-root', pkiDir, '--json'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent', TMPDIR: clientTmp },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'amtsbote-cli-mail-'));
    clientTmp = join(root, 'tmp');
    mkdirSync(clientTmp);
    pkiDir = (await testPki()).dir;
    server = await startServerProcess(writeServerConfig(root, devServerConfig(pkiDir, join(root, 'data'))), { args: ['--workers', '1'] });
    const att = join(root, 'attachments');
    mkdirSync(att);
    const xml = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<nachricht><aktenzeichen>12 C 1000/26</aktenzeichen></nachricht>\n');
    for (const [name, data] of [['klage.pdf', randomBytes(1_500_000)], ['anlage_1.png', randomBytes(70_001)], ['begleitschreiben.xml', xml]] as const) {
      const path = join(att, name);
      writeFileSync(path, data);
      files.push({ name, path, data });
    }
  });
  after(async () => {
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  let messageId = '';
  let sentCard: CardJson;
  const started = Date.now();

  it('send --json: three attachments stored, receipt with MessageId, Creation and inspection results', () => {
    const r = cli(['send', '--as', 'ag-lemgo', '--to', 'stadt-lemgo', '--subject', 'Klage 12 C 1000/26', '--text', TEXT, ...files.flatMap((f) => ['--attach', f.path])]);
    expect(r.code, r.err).to.equal(0);
    const j = JSON.parse(r.out) as { messageId: string; feedback: Array<{ code: string; text: string }>; processCard: CardJson };
    expect(j.messageId).to.match(/^[A-Za-z0-9+/]+=*$/);
    expect(j.feedback[0]?.code).to.equal('0800');
    expect(j.processCard.messageId).to.equal(j.messageId);
    expect(j.processCard.subject).to.equal('Klage 12 C 1000/26');
    const creation = Date.parse(j.processCard.creation ?? '');
    expect(creation).to.be.within(started - 1000, Date.now() + 1000);
    expect(j.processCard.reception).to.equal(undefined);
    expect(j.processCard.inspections.length).to.be.greaterThan(0);
    for (const i of j.processCard.inspections) expect(i, i.subject).to.include({ math: 'ok', offline: 'valid' });
    messageId = j.messageId;
    sentCard = j.processCard;
    // The encrypted copies of the attachments were removed.
    expect(readdirSync(clientTmp).filter((f) => !f.startsWith('tsx-'))).to.deep.equal([]);
  });

  it('fetch --json: the message is decrypted, verified and written with every attachment byte-identical', () => {
    const inbox = join(root, 'inbox');
    const r = cli(['fetch', '--as', 'stadt-lemgo', '--out', inbox]);
    expect(r.code, r.err).to.equal(0);
    const j = JSON.parse(r.out) as { fetched: Array<{ messageId: string; folder: string; verified: boolean; attachments: number }> };
    expect(j.fetched).to.have.length(1);
    const got = j.fetched[0];
    expect(got).to.include({ messageId, verified: true, attachments: 3 });
    const folder = got?.folder as string;
    expect(existsSync(folder)).to.equal(true);

    const meta = JSON.parse(readFileSync(join(folder, 'message.json'), 'utf8')) as {
      messageId: string;
      subject: string;
      verification: { allValid: boolean; authors: Array<{ subject: string; trusted: boolean }> };
      attachments: Array<{ name: string; contentId: string; size: number; sha256: string }>;
      textFile?: string;
    };
    expect(meta.messageId).to.equal(messageId);
    expect(meta.subject).to.equal('Klage 12 C 1000/26');
    expect(meta.verification.allValid).to.equal(true);
    expect(meta.verification.authors.map((a) => a.trusted)).to.deep.equal([true]);
    expect(meta.verification.authors[0]?.subject).to.match(/CN=ag-lemgo/);
    expect(meta.attachments.map((a) => `${a.contentId}:${a.size}:${a.sha256}`)).to.have.members(files.map((f) => `${f.name}:${f.data.length}:${sha256(f.data)}`));
    for (const a of meta.attachments) expect(sha256(readFileSync(join(folder, a.name))), a.name).to.equal(a.sha256);
    expect(readFileSync(join(folder, meta.textFile ?? 'text.txt'), 'utf8')).to.contain(TEXT);
    expect(readdirSync(clientTmp).filter((f) => !f.startsWith('tsx-'))).to.deep.equal([]);

    // Reception was acknowledged: nothing is waiting any more.
    const again = cli(['fetch', '--as', 'stadt-lemgo', '--out', inbox]);
    expect(again.code, again.err).to.equal(0);
    expect((JSON.parse(again.out) as { fetched: unknown[] }).fetched).to.deep.equal([]);
  });

  it('process-card --json: the sender sees Creation unchanged and Reception after the fetch', () => {
    const r = cli(['process-card', '--as', 'ag-lemgo', '--message-id', messageId]);
    expect(r.code, r.err).to.equal(0);
    const card = JSON.parse(r.out) as CardJson;
    expect(card.messageId).to.equal(messageId);
    expect(card.subject).to.equal('Klage 12 C 1000/26');
    expect(card.creation).to.equal(sentCard.creation);
    expect(Date.parse(card.reception ?? '')).to.be.within(Date.parse(sentCard.creation ?? ''), Date.now() + 1000);
    for (const i of card.inspections) expect(i, i.subject).to.include({ math: 'ok', offline: 'valid' });

    // A MessageId that is not the caller's (or unknown) has no card: exit 1 with the table's code.
    const foreign = cli(['process-card', '--as', 'kreis-lippe', '--message-id', messageId]);
    expect(foreign.code, foreign.out).to.equal(1);
    expect(foreign.err).to.match(/ERR_PROCESS_CARD_NOT_FOUND/);
  });
});
