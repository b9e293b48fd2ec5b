/**
 * Crash safety of the mailbox agent (adapters/README.md "Delivery guarantees"): the agent process is SIGKILLed
 * (1) after a message and its jobs were committed (before its one delivery attempt and the request that acknowledges it), (2) after a
 * delivery was fetched but before it was stored, (3) while the DMS is importing before the acknowledgement (the 2xx never reaches the
 * agent). After each restart — the last one with the real `amtsbote agent --once` — every message is in the
 * DMS exactly once (the DMS double counts imports per Idempotency-Key), nothing waits at the intermediary and
 * every reception is recorded.
 *
 * This file is also the child: with AMTSBOTE_OUTBOX_FAULT_CHILD set it runs one agent round whose hook stops
 * at the requested point until the parent's SIGKILL arrives.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig } from '../../adapters/config.ts';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER } from '../../adapters/http/dms.ts';
import { verifyDmsSignature } from '../../adapters/http/verify.ts';
import { SqliteJobStore } from '../../adapters/outbox/sqlite.ts';
import { buildAgent } from '../../gateway/cli/agent.ts';
import { resolveConfig } from '../../gateway/config.ts';
import { silentLogger } from '../../gateway/log.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { clientFor, testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { REPO_ROOT } from '../helpers/env.ts';

const SECRET = 'fault-dms-secret-0123456789abcdef';

interface ChildArgs {
  config: string;
  holdAt: 'fetch' | 'commit';
  nth: number;
}

async function child(a: ChildArgs): Promise<void> {
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const cfg = loadAgentConfig(a.config);
  let n = 0;
  const hook = async (event: 'fetch' | 'commit', mid: string) => {
    say(`${event.toUpperCase()} ${mid}`);
    if (event === a.holdAt && ++n === a.nth) {
      say(`HOLD ${mid}`);
      await sleep(600_000); // until the parent's SIGKILL
    }
  };
  const agent = await buildAgent(cfg, silentLogger, { hooks: { afterFetch: (m) => hook('fetch', m), afterCommit: (m) => hook('commit', m) } });
  await agent.recover();
  await agent.runOnce();
  say('DONE');
  await agent.close();
}

/** Starts a process, SIGKILLs it once `killWhen(line)` says so, resolves with its output lines. */
function runUntil(proc: ChildProcess, killWhen: (line: string) => boolean): Promise<{ lines: string[]; signal: NodeJS.Signals | null; stderr: string }> {
  const lines: string[] = [];
  let stderr = '';
  let buf = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      if (killWhen(line)) proc.kill('SIGKILL');
    }
  });
  return new Promise((resolve) => proc.on('exit', (_code, signal) => resolve({ lines, signal, stderr })));
}

function spawnChild(args: ChildArgs): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, AMTSBOTE_OUTBOX_FAULT_CHILD: JSON.stringify(args), DMS_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function spawnCli(...args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'gateway/cli/main.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, DMS_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function tests(): void {
  describe('mailbox agent killed between fetch and acknowledgement (SIGKILL): nothing lost, nothing twice', function () {
    this.timeout(240_000);
    let server: RunningServer;
    let tmp: string;
    let ag: TestIdentity;
    let stadt: TestIdentity;
    let dms: Server;
    let configFile: string;
    let dataDir: string;
    const imports = new Map<string, number>();
    const requests: string[] = [];
    /** When set, the next request is imported but never answered; the callback fires (the parent kills the agent then). */
    let holdNext: (() => void) | undefined;
    const held: ServerResponse[] = [];
    const mids: string[] = [];

    const client = (who: TestIdentity) => clientFor(server, who, tmp);

    before(async () => {
      const pki = await testPki();
      tmp = mkdtempSync(join(tmpdir(), 'amtsbote-agent-faults-'));
      server = await startServer(
        resolveConfig({ port: 0, dataDir: join(tmp, 'im'), identityDir: join(pki.dir, 'intermediary'), devPki: { enabled: true, dir: pki.dir, bits: 2048 }, logLevel: 'silent' }),
        { log: silentLogger },
      );
      [ag, stadt] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo')]);
      dms = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const key = req.headers[IDEMPOTENCY_HEADER] as string | undefined;
          if (!key || !verifyDmsSignature(Buffer.concat(chunks), req.headers[SIGNATURE_HEADER] as string | undefined, Buffer.from(SECRET))) return void res.writeHead(401).end();
          requests.push(key);
          const first = !imports.has(key);
          if (first) imports.set(key, 1);
          const hold = holdNext;
          if (hold) {
            holdNext = undefined;
            held.push(res);
            return hold();
          }
          res.writeHead(first ? 201 : 200).end();
        });
      });
      await new Promise<void>((r) => dms.listen(0, '127.0.0.1', r));
      dataDir = join(tmp, 'agent');
      configFile = join(tmp, 'agent.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          dataDir: 'agent',
          server: server.url,
          retry: { maxAttempts: 5, baseDelaySeconds: 0.2, maxDelaySeconds: 1, leaseSeconds: 0.5 },
          mailboxes: [{ id: 'stadt-lemgo', identity: join(pki.dir, 'stadt-lemgo') }],
          adapters: { dms: { type: 'http', url: `http://127.0.0.1:${(dms.address() as { port: number }).port}/import`, secretEnv: 'DMS_SECRET', timeoutSeconds: 30 } },
          routes: [],
          defaultRoute: ['dms'],
        }),
      );
      for (let i = 1; i <= 3; i++) {
        const s = await sealContent({ author: ag.signature, readers: [stadt.cipher.cert], tmpDir: tmp, contents: [{ base64Content: Buffer.from(`Schriftsatz ${i}`) }] });
        mids.push((await client(ag).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: `Sache ${i}`, contentPackage: s.contentPackage, certificates: s.certificates, attachments: s.attachments })).messageId);
        await s.dispose();
      }
    });

    after(async () => {
      for (const r of held) r.destroy();
      dms?.closeAllConnections();
      await new Promise<void>((r) => (dms ? dms.close(() => r()) : r()));
      await server?.stop();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('killed after the 2nd message was committed, before the request that acknowledges it', async () => {
      const run = await runUntil(spawnChild({ config: configFile, holdAt: 'commit', nth: 2 }), (l) => l.startsWith('HOLD '));
      expect(run.signal, run.stderr).to.equal('SIGKILL');
      expect(run.lines.filter((l) => l.startsWith('COMMIT ')).map((l) => l.slice(7))).to.deep.equal([mids[0], mids[1]]);
      // Each message is delivered once before the request that acknowledges it; the 2nd was killed right after its commit.
      expect(requests, 'only the 1st reached the DMS').to.deep.equal([mids[0]]);
    });

    it('killed again right after fetching the 3rd message, before storing it; the 2nd comes again and is not queued twice', async () => {
      const run = await runUntil(spawnChild({ config: configFile, holdAt: 'fetch', nth: 2 }), (l) => l.startsWith('HOLD '));
      expect(run.signal, run.stderr).to.equal('SIGKILL');
      // The unacknowledged 2nd message is delivered again by the intermediary, then the 3rd.
      expect(run.lines.filter((l) => l.startsWith('FETCH ')).map((l) => l.slice(6))).to.deep.equal([mids[1], mids[2]]);
      expect(run.lines.filter((l) => l.startsWith('COMMIT '))).to.deep.equal([]);
      const store = SqliteJobStore.open(dataDir);
      try {
        expect((await store.list()).map((j) => j.messageId)).to.deep.equal([mids[0], mids[1]]);
      } finally {
        await store.close();
      }
    });

    it('killed while the DMS imports the 3rd message (its 2xx is lost), before the acknowledgement', async () => {
      const cli = spawnCli('agent', '--config', configFile, '--once', '--json');
      holdNext = () => cli.kill('SIGKILL');
      const run = await runUntil(cli, () => false);
      expect(run.signal, run.stderr).to.equal('SIGKILL');
      expect(requests).to.deep.equal([mids[0], mids[2]]);
      expect(imports.get(mids[2]!)).to.equal(1);
    });

    it('after a restart every message is in the DMS exactly once, and the intermediary recorded every reception', async () => {
      // The 1st job was claimed by the killed process: it comes back when its lease has run out.
      const store = SqliteJobStore.open(dataDir);
      const due = Math.max(...(await store.list({ state: 'queued' })).map((j) => j.nextAt.getTime()));
      await store.close();
      if (due > Date.now()) await sleep(due - Date.now() + 50);
      const cli = spawnCli('agent', '--config', configFile, '--once', '--json');
      const run = await runUntil(cli, () => false);
      expect(run.signal, run.stderr).to.equal(null);
      const round = JSON.parse(run.lines.join('\n')) as { polls: Array<{ stored: string[]; duplicates: string[] }>; jobs: Array<{ messageId: string; outcome: string }> };
      // The unacknowledged 3rd comes again and is recognised; the 2nd (queued, never run) and the 3rd (its claim lapsed) are delivered.
      expect(round.polls[0]!.stored).to.deep.equal([]);
      expect(round.polls[0]!.duplicates).to.deep.equal([mids[2]]);
      expect(round.jobs.map((j) => [j.messageId, j.outcome])).to.deep.equal([
        [mids[1], 'ok'],
        [mids[2], 'ok'],
      ]);

      expect([...imports.entries()].sort()).to.deep.equal(mids.map((m) => [m, 1]).sort());
      expect(requests.filter((k) => k === mids[0])).to.have.length(1);
      expect(requests.filter((k) => k === mids[1])).to.have.length(1);
      expect(requests.filter((k) => k === mids[2]), 'the 3rd was posted again and deduplicated by its Idempotency-Key').to.have.length(2);

      const s2 = SqliteJobStore.open(dataDir);
      try {
        const jobs = await s2.list();
        expect(jobs.map((j) => [j.messageId, j.state])).to.deep.equal(mids.map((m) => [m, 'done']));
      } finally {
        await s2.close();
      }
      const d = await client(stadt).openDialog();
      expect(await d.fetchDelivery(), 'nothing waits any more').to.equal(undefined);
      await d.close();
      const a = await client(ag).openDialog();
      const cards = await a.fetchProcessCards({ by: 'messageId', messageIds: mids });
      await a.close();
      expect(cards).to.have.length(3);
      for (const c of cards) expect(c.processCard.reception, `reception of ${c.messageId}`).to.not.equal(undefined);
    });
  });
}

const childArgs = process.env.AMTSBOTE_OUTBOX_FAULT_CHILD;
if (childArgs) await child(JSON.parse(childArgs) as ChildArgs);
else tests();
