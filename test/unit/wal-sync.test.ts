/**
 * Group commit of the SQLite store (gateway/store/wal-sync.ts): a write resolves only after an fdatasync of the
 * WAL that started after its commit, and concurrent commits share flushes.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { WalSync } from '../../gateway/store/wal-sync.ts';

/** A WalSync whose flushes the test finishes by hand. */
class ManualSync extends WalSync {
  readonly pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  constructor() {
    super('/nonexistent');
  }
  protected override flush(): Promise<void> {
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function settled(p: Promise<unknown>): { done: boolean; error?: unknown } {
  const s: { done: boolean; error?: unknown } = { done: false };
  p.then(
    () => (s.done = true),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

describe('WalSync (group commit)', function () {
  it('starts a flush at once when none is in flight', async function () {
    const w = new ManualSync();
    const a = settled(w.sync());
    expect(w.pending).to.have.length(1);
    w.pending[0]?.resolve();
    await tick();
    expect(a.done).to.equal(true);
  });

  it('lets callers that came during a flush wait for the next one, which they share', async function () {
    const w = new ManualSync();
    const first = settled(w.sync());
    const second = settled(w.sync());
    const third = settled(w.sync());
    expect(w.pending).to.have.length(1);
    w.pending[0]?.resolve();
    await tick();
    // The first flush may have started before the later callers' commits: it does not release them.
    expect(first.done).to.equal(true);
    expect(second.done).to.equal(false);
    expect(third.done).to.equal(false);
    expect(w.pending).to.have.length(2);
    w.pending[1]?.resolve();
    await tick();
    expect(second.done && third.done).to.equal(true);
    expect(w.flushes).to.equal(2);
  });

  it('rejects the callers of a failed flush; the next sync flushes anew', async function () {
    const w = new ManualSync();
    const a = settled(w.sync());
    const b = settled(w.sync());
    w.pending[0]?.reject(new Error('EIO'));
    await tick();
    expect(a.error).to.be.instanceOf(Error);
    expect(w.pending).to.have.length(2);
    w.pending[1]?.reject(new Error('EIO again'));
    await tick();
    expect(b.error).to.be.instanceOf(Error);
    const c = settled(w.sync());
    w.pending[2]?.resolve();
    await tick();
    expect(c).to.deep.equal({ done: true });
  });

  it('flushes a real file', async function () {
    const dir = await mkdtemp(join(tmpdir(), 'amtsbote-wal-'));
    try {
      await writeFile(join(dir, 'x-wal'), 'frames');
      const w = new WalSync(join(dir, 'x-wal'));
      await Promise.all([w.sync(), w.sync(), w.sync()]);
      // The first call flushes at once, the other two share the next flush.
      expect(w.flushes).to.equal(2);
      await w.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: every write waits for a WAL flush', function () {
  let dir: string;
  let store: SqliteStore;
  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'amtsbote-wal-store-'));
    store = await SqliteStore.open(dir);
    await store.migrate();
  });
  afterEach(async function () {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The flushes `write` started: at least one must have started after its commit. */
  async function flushesOf(write: () => Promise<unknown>): Promise<number> {
    const before = store.walFlushes;
    await write();
    return store.walFlushes - before;
  }

  it('for message commits, dialogs, MessageIds, receptions, forwarding and certificates', async function () {
    const now = new Date();
    expect(await flushesOf(() => store.upsertParticipant({ id: 'bob' }))).to.be.at.least(1);
    const w = await store.beginMessage('m-1');
    await w.addPart({ contentId: 'a', contentType: 'text/plain' }, Readable.from([randomBytes(100)]));
    expect(await flushesOf(() => w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: now, inspections: null }))).to.be.at.least(1);
    const dialog = { clientFingerprint: 'ab'.repeat(32), sequenceNumber: 0, challenge: 'c', open: true, created: now, lastActivity: now, pendingReceptions: [], data: {} };
    let id = '';
    expect(await flushesOf(async () => (id = await store.createDialog(dialog)))).to.be.at.least(1);
    expect(await flushesOf(() => store.updateDialog(id, (d) => ({ next: { ...d, sequenceNumber: 1 }, result: undefined })))).to.be.at.least(1);
    expect(await flushesOf(() => store.issueMessageId('m-2', 'ab'.repeat(32), now))).to.be.at.least(1);
    expect(await flushesOf(() => store.consumeMessageId('m-2', 'ab'.repeat(32)))).to.be.at.least(1);
    expect(await flushesOf(() => store.recordForwarding('m-1', now))).to.be.at.least(1);
    expect(await flushesOf(() => store.recordReception(['m-1'], now))).to.be.at.least(1);
    expect(await flushesOf(() => store.pruneDialogs(new Date(0)))).to.be.at.least(1);
  });

  it('shares flushes between concurrent commits', async function () {
    const writers = await Promise.all(Array.from({ length: 16 }, (_, i) => store.beginMessage(`c-${i}`)));
    const before = store.walFlushes;
    await Promise.all(writers.map((w) => w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: new Date(), inspections: null })));
    // All 16 commits run in one tick before the first flush returns: the first flush and one shared by the rest.
    expect(store.walFlushes - before).to.equal(2);
  });
});
