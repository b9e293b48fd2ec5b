/**
 * Disk full and unwritable folders: the intermediary's data folder (SQLite database, payloads, request spill) is a
 * small tmpfs, and further tmpfs mounts over its payload and spill folders make just those full or read-only. A
 * storeDelivery then gets the retryable fault 9000 with the standard text (never a receipt, never a 9100 that would
 * blame the sender), the log names the cause, nothing of it is stored or left behind; once space or write access
 * returns, the same order with the same MessageId is receipted and fetchable, without restarting the server.
 * Needs root for the mounts (CI runs as root); elsewhere it is skipped with a message.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { IN_CI } from '../helpers/env.ts';
import {
  cast,
  clientOf,
  craft,
  expectFault,
  expectOrderFeedback,
  post,
  spillLeft,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
  type Wire,
} from '../helpers/attack.ts';

const run = promisify(execFile);
const SIZE = '24m';

describe('fault: disk full or read-only data folder', function () {
  this.timeout(120_000);
  let mnt: string | undefined;
  let mounted = false;
  let srv: AttackServer;
  let c: Cast;
  const lines: string[] = [];

  before(async function () {
    if (process.getuid?.() !== 0) {
      if (IN_CI) throw new Error('the disk-full test needs root (tmpfs mount) in CI');
      console.warn('      skipped: mounting a small tmpfs needs root');
      this.skip();
    }
    mnt = mkdtempSync(join(tmpdir(), 'amtsbote-diskfull-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', mnt]);
      mounted = true;
    } catch (e) {
      if (IN_CI) throw e;
      console.warn(`      skipped: cannot mount a tmpfs here (${String(e)})`);
      this.skip();
    }
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString('utf8'));
        cb();
      },
    });
    [srv, c] = await Promise.all([startAttackServer({ config: { dataDir: join(mnt, 'data') }, log: pino({ level: 'warn' }, sink) }), cast()]);
  });
  after(async () => {
    await srv?.stop();
    if (mounted && mnt) {
      await run('mount', ['-o', 'remount,rw', mnt]).catch(() => undefined);
      await run('umount', [mnt]);
    }
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  });

  async function order(bytes: number): Promise<{ wire: Wire; messageId: string }> {
    const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, attachments: [{ contentId: 'schriftsatz.pdf', data: Buffer.alloc(bytes, 0x25) }] });
    await o.sealed.dispose();
    return { wire: await craft(o.message, { signer: c.ag.signature, attachments: o.attachments, encryptFor: srv.server.identity.ciphers[0]?.cert }), messageId: o.message.messageId };
  }

  /** Fills the file system holding `dir` to the last byte with one file. */
  function fill(dir: string): string {
    const path = join(dir, `filler-${Date.now()}`);
    const fd = openSync(path, 'w');
    const block = Buffer.alloc(64 * 1024, 0x46);
    try {
      for (;;) {
        try {
          writeSync(fd, block);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    } finally {
      closeSync(fd);
    }
    return path;
  }

  /** Mounts an empty tmpfs over `dir` (hiding its content, keeping the `tmp` subfolder the store expects) during `fn`. */
  async function over(dir: string, o: { size: string; readOnly?: boolean }, fn: () => Promise<void>): Promise<void> {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${o.size}`, 'tmpfs', dir]);
    mkdirSync(join(dir, 'tmp'));
    if (o.readOnly) await run('mount', ['-o', 'remount,ro', dir]);
    try {
      await fn();
    } finally {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    }
  }

  /** The order is refused with the retryable 9000, the log names `cause`, nothing of it is stored or left. */
  async function refused(o: { wire: Wire; messageId: string }, cause: RegExp) {
    lines.length = 0;
    await expectFault(srv, await post(srv.osci, o.wire), '9000');
    expect(lines.join(''), 'the log names the cause').to.match(cause);
    expect(await srv.server.store.getMessage(o.messageId), 'stored').to.equal(undefined);
    expect(spillLeft(srv), 'spill or half-written payload left').to.deep.equal([]);
  }

  /** The same order, the same MessageId: receipted now, and its addressee fetches it. */
  async function recovered(o: { wire: Wire; messageId: string }, bytes = 300_000) {
    await expectOrderFeedback(srv, await post(srv.osci, o.wire), c.ag, '0800');
    const d = await clientOf(srv, c.stadt).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId: o.messageId });
    expect(got?.decoded.attachments.map((a) => a.size)).to.deep.equal([bytes + 28]);
    await got?.decoded.dispose();
    await d.close();
  }

  it('no space left in the data folder → 9000, nothing stored; after space returns the same order is receipted', async () => {
    const o = await order(300_000);
    const filler = fill(mnt as string);
    await refused(o, /ENOSPC|no space/i);
    unlinkSync(filler);
    await recovered(o);
  });

  it('space for the request but none for its payload → 9000, nothing stored, no half-written part left', async () => {
    const o = await order(300_000);
    const payloads = join(mnt as string, 'data', 'payloads');
    await over(payloads, { size: '256k' }, async () => {
      fill(payloads);
      await refused(o, /ENOSPC|no space/i);
    });
    await recovered(o);
  });

  // Small messages are decoded in memory (spill.ts budget 4 MiB): the spill folder matters from 5 MB on.
  for (const [folder, bytes] of [['tmp', 5_000_000], ['payloads', 300_000]] as const) {
    it(`the ${folder === 'tmp' ? 'request spill' : 'payload'} folder read-only → 9000, nothing stored; writable again, the same order is receipted`, async () => {
      const o = await order(bytes);
      const dir = join(mnt as string, 'data', folder);
      await over(dir, { size: '64k', readOnly: true }, async () => {
        await refused(o, /EROFS|read-only/i);
      });
      await recovered(o, bytes);
    });
  }
});
