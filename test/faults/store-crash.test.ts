/**
 * Crash safety of gateway/store (types.ts durability contract): a child process stores messages in a
 * loop and prints each MessageId right after `commit` resolved; the test SIGKILLs it (once while a large
 * part is half written, and at random moments) and then reopens the store. Every printed message must be
 * complete and byte-identical, nothing uncommitted may be visible, and recovery must leave no orphans.
 *
 * This file is also the child: run with AMTSBOTE_STORE_CRASH_CHILD set, it runs `child()` instead of
 * defining tests.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import { openStore } from '../../gateway/store/index.ts';
import type { Store } from '../../gateway/store/types.ts';
import { IN_CI } from '../helpers/env.ts';

const PG_URL = process.env.AMTSBOTE_TEST_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const CHILD_APP = 'amtsbote_crash_child';
const LARGE = 6 * 1024 * 1024;
const BLOCK = 64 * 1024;

interface ChildArgs {
  url: string;
  prefix: string;
  /** Index of the message whose large part stalls half-written (the parent kills then); -1: never. */
  stallAt: number;
}

/** Deterministic payload of part `part` of message `id` (AES-256-CTR keystream), so both processes know it. */
function* content(id: string, part: number, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(`${id}/${part}`).digest();
  const ctr = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(BLOCK);
  for (let off = 0; off < size; off += BLOCK) yield ctr.update(zeros.subarray(0, Math.min(BLOCK, size - off)));
}

const partSizes = (i: number): number[] => [10_000 + 37 * i, LARGE + i];

function expectedSha(id: string, part: number, size: number): string {
  const h = createHash('sha256');
  for (const c of content(id, part, size)) h.update(c);
  return h.digest('hex');
}

async function child(args: ChildArgs): Promise<void> {
  const say = (line: string): void => void process.stdout.write(`${line}\n`); // pipes are synchronous on Linux
  const store = await openStore(args.url);
  for (let i = 0; i < 200; i++) {
    const id = `${args.prefix}-${i}`;
    say(`BEGIN ${id}`);
    const w = await store.beginMessage(id);
    for (const [part, size] of partSizes(i).entries()) {
      const stall = i === args.stallAt && part === 1;
      await w.addPart(
        { contentId: `p${part}@crash`, contentType: 'application/octet-stream' },
        (async function* () {
          let off = 0;
          for (const c of content(id, part, size)) {
            yield c;
            off += c.length;
            if (stall && off >= size / 2) {
              say(`MIDWRITE ${id}`);
              // The part stays open here until the parent's SIGKILL arrives.
              await sleep(60_000);
            }
          }
        })(),
      );
    }
    await w.commit(
      { originatorId: 'crash-alice', addresseeId: 'crash-bob', soapXml: Buffer.from(`<order id="${id}"/>`) },
      { creation: new Date(), subject: id, inspections: [{ i }] },
    );
    say(`COMMITTED ${id}`);
  }
  await store.close();
}

interface ChildRun {
  committed: string[];
  begun: string[];
  midWrite: string | undefined;
}

/** Runs the child until `killWhen` says so, SIGKILLs it and returns what it printed. */
async function runAndKill(args: ChildArgs, killWhen: (run: ChildRun) => Promise<boolean> | boolean): Promise<ChildRun> {
  const self = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, ['--import', 'tsx', self], {
    env: { ...process.env, AMTSBOTE_STORE_CRASH_CHILD: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: ChildRun = { committed: [], begun: [], midWrite: undefined };
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let killing = false;
  let buffered = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const [what, id] = buffered.slice(0, nl).split(' ');
      buffered = buffered.slice(nl + 1);
      if (id === undefined) continue;
      if (what === 'COMMITTED') run.committed.push(id);
      if (what === 'BEGIN') run.begun.push(id);
      if (what === 'MIDWRITE') run.midWrite = id;
      if (!killing) {
        void Promise.resolve(killWhen(run)).then((kill) => {
          if (kill && !killing) {
            killing = true;
            proc.kill('SIGKILL');
          }
        });
      }
    }
  });
  const { code, signal } = await exited;
  if (signal !== 'SIGKILL') throw new Error(`child ended by itself (code ${String(code)}): ${stderr}`);
  return run;
}

async function verifyAfterCrash(store: Store, run: ChildRun, prefix: string): Promise<void> {
  const visible = (await store.listProcessCards('crash-alice', {})).filter((m) => m.messageId.startsWith(`${prefix}-`));
  const visibleIds = new Set(visible.map((m) => m.messageId));
  // Every acknowledged (printed) message survived.
  for (const id of run.committed) expect(visibleIds.has(id), `committed ${id} lost`).to.equal(true);
  // Nothing else is visible, except the one in flight whose commit may have resolved just before the kill.
  const inFlight = run.begun[run.begun.length - 1];
  for (const id of visibleIds) expect(run.committed.includes(id) || id === inFlight, `uncommitted ${id} visible`).to.equal(true);
  if (run.midWrite !== undefined) expect(visibleIds.has(run.midWrite), `half-written ${run.midWrite} visible`).to.equal(false);
  // Every visible message is complete and byte-identical.
  for (const m of visible) {
    const i = Number(m.messageId.slice(prefix.length + 1));
    const sizes = partSizes(i);
    expect(m.parts.map((p) => p.size)).to.deep.equal(sizes);
    for (const [part, size] of sizes.entries()) {
      const want = expectedSha(m.messageId, part, size);
      expect(m.parts[part]?.sha256Hex).to.equal(want);
      const h = createHash('sha256');
      for await (const c of await store.openPart(m.messageId, part)) h.update(c as Buffer);
      expect(h.digest('hex'), `${m.messageId} part ${part}`).to.equal(want);
    }
    expect((await store.getMessage(m.messageId))?.soapXml.toString()).to.equal(`<order id="${m.messageId}"/>`);
  }
  // The interrupted MessageId is free again: nothing of it was kept.
  if (inFlight !== undefined && !visibleIds.has(inFlight)) {
    const w = await store.beginMessage(inFlight);
    await w.abort();
  }
}

interface Backend {
  url: string;
  /** The child's URL (PostgreSQL: tagged with an application_name to see its sessions end). */
  childUrl: string;
  /** Waits until nothing of the killed child is left running on the server side. */
  childGone(): Promise<void>;
  /** After recovery: no tmp files, no payload rows or files without a committed message. */
  checkNoOrphans(store: Store): Promise<void>;
  destroy(): Promise<void>;
}

function crashSuite(name: string, makeBackend: (ctx: Mocha.Context) => Promise<Backend | null>): void {
  describe(`store crash safety: ${name}`, function () {
    this.timeout(180_000);
    let b: Backend | null = null;

    before(async function () {
      b = await makeBackend(this);
      if (b === null) return;
      const store = await openStore(b.url);
      await store.migrate();
      await store.upsertParticipant({ id: 'crash-alice' });
      await store.upsertParticipant({ id: 'crash-bob' });
      await store.close();
    });

    after(async function () {
      await b?.destroy();
    });

    async function afterCrash(run: ChildRun, prefix: string): Promise<void> {
      const backend = b as Backend;
      await backend.childGone();
      const store = await openStore(backend.url);
      try {
        await store.migrate(); // runs recovery
        await backend.checkNoOrphans(store);
        await verifyAfterCrash(store, run, prefix);
      } finally {
        await store.close();
      }
    }

    it('loses no committed message when killed while a large part is half written', async function () {
      const backend = b as Backend;
      const prefix = `mid${randomBytes(3).toString('hex')}`;
      const run = await runAndKill({ url: backend.childUrl, prefix, stallAt: 4 }, (r) => r.midWrite !== undefined);
          expect(run.committed).to.have.length(4);
      expect(run.midWrite).to.equal(`${prefix}-4`);
      await afterCrash(run, prefix);
    });

    it('loses no committed message when killed at random moments', async function () {
      const backend = b as Backend;
      for (let round = 0; round < 3; round++) {
        const prefix = `rnd${round}${randomBytes(3).toString('hex')}`;
        const after = randomInt(1, 4);
        let armed = false;
        const run = await runAndKill({ url: backend.childUrl, prefix, stallAt: -1 }, async (r) => {
          if (armed || r.committed.length < after) return false;
          armed = true;
          await sleep(randomInt(0, 400));
          return true;
        });
        await afterCrash(run, prefix);
      }
    });
  });
}

async function sqliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'amtsbote-crash-'));
  return {
    url: `sqlite:${dir}`,
    childUrl: `sqlite:${dir}`,
    childGone: async () => undefined,
    checkNoOrphans: async (store) => {
          const payloads = join(dir, 'payloads');
      expect(await readdir(join(payloads, 'tmp')), 'tmp files left').to.deep.equal([]);
      const dirs = (await readdir(payloads)).filter((n) => n !== 'tmp');
      const messages = await store.listProcessCards('crash-alice', {});
      expect(dirs.length, 'payload dirs without a committed message').to.equal(messages.length);
    },
    destroy: () => rm(dir, { recursive: true, force: true }),
  };
}

async function pgBackend(ctx: Mocha.Context): Promise<Backend | null> {
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    await admin.end().catch(() => undefined);
    if (IN_CI) throw new Error(`PostgreSQL at ${PG_URL} is required in CI: ${String(err)}`);
    console.warn(`      skipped: PostgreSQL at ${PG_URL} is not reachable (set AMTSBOTE_TEST_PG_URL)`);
    ctx.skip();
    return null;
  }
  const schema = `amtsbote_test_${randomBytes(6).toString('hex')}`;
  const sep = PG_URL.includes('?') ? '&' : '?';
  const app = `${CHILD_APP}_${schema}`.slice(0, 63);
  return {
    url: `${PG_URL}${sep}schema=${schema}`,
    childUrl: `${PG_URL}${sep}schema=${schema}&application_name=${app}`,
    childGone: async () => {
      // The killed child's sessions end (rolling back) as soon as the server sees the closed socket.
      for (let i = 0; i < 400; i++) {
        const r = await admin.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [app]);
        if (r.rows[0]?.n === '0') return;
        await sleep(50);
      }
      throw new Error('sessions of the killed child did not end');
    },
    checkNoOrphans: async () => {
      const orphans = await admin.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM "${schema}".message_part_chunks c WHERE NOT EXISTS (SELECT 1 FROM "${schema}".messages m WHERE m.message_id = c.message_id))
              + (SELECT count(*) FROM "${schema}".message_parts p WHERE NOT EXISTS (SELECT 1 FROM "${schema}".messages m WHERE m.message_id = p.message_id)) AS n`,
      );
      expect(orphans.rows[0]?.n, 'chunk or part rows without a message').to.equal('0');
    },
    destroy: async () => {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

const childArgs = process.env.AMTSBOTE_STORE_CRASH_CHILD;
if (childArgs !== undefined) {
  await child(JSON.parse(childArgs) as ChildArgs);
} else {
  crashSuite('sqlite', sqliteBackend);
  crashSuite('postgres', pgBackend);
}
