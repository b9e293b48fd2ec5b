/**
 * A 200 MB attachment (osci-protocol.md §13: the EGVP limit) through the CLI: `amtsbote send` and `amtsbote fetch`
 * as separate processes against `amtsbote serve --workers 1`. Memory, not timing: the peak RSS of the send
 * process, of the fetch process and of the server process each stays under 256 MiB (the whole payload is never
 * held in memory), and the fetched file is byte-identical to the original.
 *
 * Peak RSS of a CLI process: a preload module prints its VmHWM (/proc/self/status) when the process exits. Not
 * process.resourceUsage().maxRSS: Linux keeps the highest RSS across fork and exec, so a child would report this
 * test runner's RSS at spawn time. Peak RSS of the server: VmHWM in /proc/<pid>/status, read before it is stopped.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { testPki } from '../helpers/devpki.ts';
import { REPO_ROOT } from '../helpers/env.ts';
import { devServerConfig, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');
const SIZE = 200 * 1000 * 1000;
const MiB = 1024 * 1024;
const BUDGET_MIB = 256;
const RSS_LINE = /^AMTSBOTE_TEST_MAX_RSS_KB=(\d+)$/m;

async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* blocks() {
    for (let left = size; left > 0; left -= MiB) {
      const b = randomBytes(Math.min(MiB, left));
      hash.update(b);
      yield b;
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(path));
  return hash.digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Peak resident set of a live process in MiB (Linux VmHWM). */
function peakRssOfPid(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) / 1024;
}

describe('amtsbote send and fetch of a 200 MB attachment: bounded memory in every process', function () {
  this.timeout(1_200_000);
  let root: string;
  let pkiDir: string;
  let preload: string;
  let server: ServerProcess;

  /** A CLI process whose peak RSS (MiB) is printed by the preload at exit. */
  function cli(args: string[]): Promise<{ code: number | null; out: string; err: string; peakRssMib: number }> {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', pathToFileURL(preload).href, CLI, ...args, '--server', server.url, '--identity-root', pkiDir, '--json'], {
        cwd: root,
        env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent', TMPDIR: join(root, 'tmp') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      p.once('error', reject);
      p.once('close', (code) => {
        const m = RSS_LINE.exec(err);
        resolve({ code, out, err, peakRssMib: m ? Number(m[1]) / 1024 : Number.NaN });
      });
    });
  }

  before(async function () {
    if (process.platform !== 'linux') this.skip();
    root = mkdtempSync(join(tmpdir(), 'amtsbote-cli-large-'));
    mkdirSync(join(root, 'tmp'));
    preload = join(root, 'report-rss.mjs');
    writeFileSync(
      preload,
      "import { readFileSync } from 'node:fs';\n" +
        "process.once('exit', () => process.stderr.write(`\\nAMTSBOTE_TEST_MAX_RSS_KB=${/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]}\\n`));\n",
    );
    pkiDir = (await testPki()).dir;
    server = await startServerProcess(writeServerConfig(root, devServerConfig(pkiDir, join(root, 'data'))), { args: ['--workers', '1'] });
  });
  after(async () => {
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('send, fetch and the server each stay under 256 MiB peak RSS; the fetched file is byte-identical', async () => {
    const original = join(root, 'grosse_anlage.bin');
    const originalSha = await writeRandomFile(original, SIZE);

    const sent = await cli(['send', '--as', 'ag-lemgo', '--to', 'stadt-lemgo', '--subject', 'Akte mit 200 MB Anlage', '--attach', original]);
    expect(sent.code, sent.err).to.equal(0);
    const receipt = JSON.parse(sent.out) as { messageId: string; feedback: Array<{ code: string }> };
    expect(receipt.feedback[0]?.code).to.equal('0800');
    rmSync(original);

    const inbox = join(root, 'inbox');
    const fetched = await cli(['fetch', '--as', 'stadt-lemgo', '--out', inbox]);
    expect(fetched.code, fetched.err).to.equal(0);
    const j = JSON.parse(fetched.out) as { fetched: Array<{ messageId: string; folder: string; verified: boolean; attachments: number }> };
    expect(j.fetched).to.have.length(1);
    expect(j.fetched[0]).to.include({ messageId: receipt.messageId, verified: true, attachments: 1 });
    const meta = JSON.parse(readFileSync(join(j.fetched[0]?.folder as string, 'message.json'), 'utf8')) as { attachments: Array<{ name: string; size: number; sha256: string }> };
    expect(meta.attachments.map((a) => `${a.name}:${a.size}:${a.sha256}`)).to.deep.equal([`grosse_anlage.bin:${SIZE}:${originalSha}`]);
    expect(await sha256File(join(j.fetched[0]?.folder as string, 'grosse_anlage.bin'))).to.equal(originalSha);

    const serverPeak = peakRssOfPid(server.pid);
    const report = `send ${sent.peakRssMib.toFixed(0)} MiB, fetch ${fetched.peakRssMib.toFixed(0)} MiB, server ${serverPeak.toFixed(0)} MiB`;
    console.log(`      peak RSS: ${report}`);
    expect(sent.peakRssMib, report).to.be.below(BUDGET_MIB);
    expect(fetched.peakRssMib, report).to.be.below(BUDGET_MIB);
    expect(serverPeak, report).to.be.below(BUDGET_MIB);
  });
});
