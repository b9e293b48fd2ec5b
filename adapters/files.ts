/**
 * File-system helpers shared by `amtsbote send/fetch` and the adapters: court-safe names (osci-protocol.md §13),
 * message folder names, durable writes (fsync file, then folder) and atomic folder publication (rename).
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Limits of the EGVP/justice infrastructure (osci-protocol.md §13): 200 MB, 1000 files, court-safe names. */
export const SEND_LIMITS = Object.freeze({ maxFiles: 1000, maxTotalBytes: 200 * 1024 * 1024, maxNameLength: 60 });

/** File names courts accept: ≤ 60 characters, ASCII letters, digits, '.', '_', '-', no leading dot (§13). */
export function courtSafeNameProblem(name: string): string | undefined {
  if (name.length > SEND_LIMITS.maxNameLength) return `longer than ${SEND_LIMITS.maxNameLength} characters`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return 'only A-Z, a-z, 0-9, ".", "_" and "-" are allowed (no umlauts, spaces or leading dot)';
  if (/\.\./.test(name)) return 'contains ".."';
  return undefined;
}

/** Folder name of a message: its MessageId decoded when printable, else hex of it; always filesystem-safe. */
export function messageFolderName(messageId: string): string {
  const decoded = Buffer.from(messageId, 'base64').toString('utf8');
  return /^[\w.-]{1,100}$/.test(decoded) && !decoded.startsWith('.') ? decoded : createHash('sha256').update(messageId).digest('hex').slice(0, 32);
}

/** Names the message folder writer uses itself; an attachment of that name is renamed. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'message.json',
  'process-card.xml',
  'process-card.json',
  'inspection-report.json',
  'text.txt',
  'xjustiz_nachricht.xml',
]);

/** Unique safe names for attachments (the OVG receiver's rule: fix invalid, long and duplicate names). */
export function safeUniqueName(wanted: string, taken: Set<string>, reserved: ReadonlySet<string> = RESERVED_NAMES): string {
  let base =
    wanted
      .normalize('NFKD')
      .replace(/[^\w.-]+/g, '_')
      .replace(/^\.+/, '')
      .slice(0, 60) || 'attachment';
  if (reserved.has(base.toLowerCase())) base = `_${base}`;
  let name = base;
  for (let i = 2; taken.has(name.toLowerCase()); i++) {
    const dot = base.lastIndexOf('.');
    name = dot > 0 ? `${base.slice(0, dot)}_${i}${base.slice(dot)}` : `${base}_${i}`;
  }
  taken.add(name.toLowerCase());
  return name;
}

/** Writes a file and flushes it to disk. */
export function writeDurable(path: string, data: Buffer | string): void {
  writeFileSync(path, data);
  fsyncPath(path);
}

/** fsync of a file or folder (a folder's fsync makes the names in it durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const fsyncDir = fsyncPath;

export async function fsyncPathAsync(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Writes `data` under a temporary name beside `path`, flushes it and renames it into place (readers see all or nothing). */
export function writeFileAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeDurable(tmp, data);
  renameSync(tmp, path);
  const slash = path.lastIndexOf('/');
  fsyncPath(slash > 0 ? path.slice(0, slash) : '.');
}
