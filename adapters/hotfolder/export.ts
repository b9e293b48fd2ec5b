/**
 * Hot folder export: one folder per message in the DMS's import folder. The folder is copied into a hidden
 * staging folder inside the export folder (same file system), every file and the folder are fsynced, and then
 * it is renamed into place: a DMS watching the export folder sees the complete folder or nothing.
 *
 * Exactly once: before the rename a marker `<staging>/<name>.ready` is written durably. A job that runs again
 * (crash, lost bookkeeping) finds the marker: with the staged folder still there it finishes the rename, without
 * it the folder was already handed over (and perhaps already consumed by the DMS), so nothing is exported twice.
 */
import { copyFile, lstat, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { OsciError } from '../../protocol/errors.ts';
import { DeliveryFailure, type DeliveryAdapter, type SpooledMessage } from '../delivery.ts';
import { fsyncPathAsync } from '../files.ts';

export interface HotFolderExportOptions {
  name: string;
  /** The DMS's import folder. */
  dir: string;
  /** Staging folder; must be on the export folder's file system. Default `<dir>/.amtsbote-staging`. */
  stagingDir?: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Copies a folder tree (regular files and folders only), fsyncing every file and folder. */
export async function copyTreeDurable(src: string, dst: string): Promise<void> {
  await mkdir(dst);
  for (const e of await readdir(src, { withFileTypes: true })) {
    const s = join(src, e.name);
    const d = join(dst, e.name);
    if (e.isDirectory()) await copyTreeDurable(s, d);
    else if (e.isFile()) {
      await copyFile(s, d);
      await fsyncPathAsync(d);
    }
  }
  await fsyncPathAsync(dst);
}

export class HotFolderExport implements DeliveryAdapter {
  readonly type = 'hotfolder';
  readonly name: string;
  private readonly dir: string;
  private readonly staging: string;

  constructor(o: HotFolderExportOptions) {
    if (!isAbsolute(o.dir)) throw new OsciError('ERR_USAGE', `hot folder ${o.name}: dir must be an absolute path`);
    this.name = o.name;
    this.dir = o.dir;
    this.staging = o.stagingDir ?? join(o.dir, '.amtsbote-staging');
  }

  location(msg: SpooledMessage): string {
    return join(this.dir, msg.folderName);
  }

  async deliver(msg: SpooledMessage): Promise<string> {
    const target = join(this.dir, msg.folderName);
    const staged = join(this.staging, msg.folderName);
    const marker = `${staged}.ready`;
    try {
      await stat(this.dir);
    } catch (e) {
      throw new DeliveryFailure('retry', `export folder ${this.dir} is not reachable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    await mkdir(this.staging, { recursive: true });
    if (await exists(marker)) {
      if (!(await exists(staged))) return `already exported to ${target}`;
      await this.publish(staged, target);
      return `exported to ${target} (completed an interrupted export)`;
    }
    if (await exists(target)) {
      throw new DeliveryFailure('park', `${target} exists but was not exported by this adapter; move it away and re-drive the job`, { code: 'ERR_USAGE' });
    }
    await rm(staged, { recursive: true, force: true });
    await copyTreeDurable(msg.dir, staged);
    // The marker is the commit point of the export (see above).
    await writeFile(marker, `${msg.meta.messageId}\n`);
    await fsyncPathAsync(marker);
    await fsyncPathAsync(this.staging);
    await this.publish(staged, target);
    return `exported to ${target}`;
  }

  private async publish(staged: string, target: string): Promise<void> {
    await rename(staged, target);
    await fsyncPathAsync(this.dir);
    await fsyncPathAsync(this.staging);
  }
}
