import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { once } from 'node:events';
import { Spill } from '../../protocol/envelope/spill.ts';

/** Counts fdatasync calls made through node:fs while `fn` runs (the named export follows the patched default). */
async function countingSyncs(fn: () => Promise<void>): Promise<number> {
  const original = fs.fdatasync;
  let n = 0;
  fs.fdatasync = ((fd: number, cb: fs.NoParamCallback) => {
    n++;
    original(fd, cb);
  }) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    fs.fdatasync = original;
    syncBuiltinESMExports();
  }
  return n;
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('protocol/envelope/spill', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'amtsbote-spill-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function spillBody(spill: Spill, body: Buffer, opts: { sync?: boolean } = {}): Promise<Buffer> {
    const sink = spill.sink('part', opts);
    for (let i = 0; i < body.length; i += 64 * 1024) {
      if (!sink.write(body.subarray(i, i + 64 * 1024))) await once(sink, 'drain');
    }
    sink.end();
    await finished(sink);
    expect(sink.path, 'outgrew the memory budget: a file').to.be.a('string');
    const back = await readAll(sink.open());
    await sink.drop();
    return back;
  }

  it('with syncEvery, a part file is written back while it is written, and its bytes stay exact', async function () {
    const body = randomBytes(6 * 1024 * 1024); // past the file stream's 1 MiB buffer: written while it arrives
    const spill = Spill.lazy(dir, { memoryLimit: 0, syncEvery: 128 * 1024 });
    let back: Buffer = Buffer.alloc(0);
    const syncs = await countingSyncs(async () => {
      back = await spillBody(spill, body);
    });
    await spill.dispose();
    expect(back.equals(body)).to.equal(true);
    expect(syncs).to.be.greaterThan(0);
  });

  it('without syncEvery, or for a sink that passes its body through (sync: false), nothing is flushed', async function () {
    const body = randomBytes(3 * 1024 * 1024);
    const plain = Spill.lazy(dir, { memoryLimit: 0 });
    const syncing = Spill.lazy(dir, { memoryLimit: 0, syncEvery: 128 * 1024 });
    const back: Buffer[] = [];
    const syncs = await countingSyncs(async () => {
      back.push(await spillBody(plain, body));
      back.push(await spillBody(syncing, body, { sync: false }));
    });
    await plain.dispose();
    await syncing.dispose();
    expect(back.every((b) => b.equals(body))).to.equal(true);
    expect(syncs).to.equal(0);
  });

  it('a sink destroyed midway, flushing after every chunk, leaves nothing behind', async function () {
    const spill = Spill.lazy(dir, { memoryLimit: 0, syncEvery: 1 });
    const sink = spill.sink();
    sink.on('error', () => undefined);
    for (let i = 0; i < 48; i++) {
      if (!sink.write(randomBytes(64 * 1024))) await once(sink, 'drain');
    }
    const file = sink.path;
    expect(file, 'the body went to a file').to.be.a('string');
    const closed = new Promise((r) => sink.once('close', r));
    sink.destroy(new Error('client went away'));
    await closed; // destroy completes once a flush in progress returned
    await sink.drop();
    expect(fs.existsSync(file as string), 'drop removes the file itself').to.equal(false);
    await spill.dispose();
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });
});
