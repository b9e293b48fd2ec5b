/** What every load-generator process shares: identities, the server's certificates, one sealed 10 KB content. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OsciClient } from '../../adapters/osci/client.ts';
import { sealContent, type SealedContent } from '../../protocol/envelope/index.ts';
import { benchIdentity, type BenchIdentity } from '../pki.ts';

/** Payload of the small-message scenarios: 10 KB of text, sealed (signed and encrypted) for the addressee. */
export const SMALL_CONTENT_BYTES = 10 * 1024;

export interface LoadInit {
  pkiDir: string;
  osciUrl: string;
}

export interface LoadContext {
  osciUrl: string;
  sender: BenchIdentity;
  addressee: BenchIdentity;
  intermediary: BenchIdentity;
  tmpDir: string;
  /** The sender's OsciClient (ag-lemgo → the intermediary). */
  senderClient: OsciClient;
  /** The addressee's OsciClient (stadt-lemgo fetches). */
  addresseeClient: OsciClient;
  small(): Promise<SealedContent>;
}

export function clientFor(ctx: { osciUrl: string; intermediary: BenchIdentity; tmpDir: string }, who: BenchIdentity): OsciClient {
  return new OsciClient({
    endpoint: ctx.osciUrl,
    intermediary: { cipher: ctx.intermediary.cipher.cert, signature: ctx.intermediary.signature.cert },
    signer: who.signature,
    cipher: who.cipher,
    tmpDir: ctx.tmpDir,
  });
}

export function loadContext(init: LoadInit): LoadContext {
  const sender = benchIdentity('ag-lemgo', init.pkiDir);
  const addressee = benchIdentity('stadt-lemgo', init.pkiDir);
  const intermediary = benchIdentity('intermediary', init.pkiDir);
  const tmpDir = mkdtempSync(join(tmpdir(), 'amtsbote-bench-client-'));
  const base = { osciUrl: init.osciUrl, intermediary, tmpDir };
  let sealed: Promise<SealedContent> | undefined;
  return {
    ...base,
    sender,
    addressee,
    senderClient: clientFor(base, sender),
    addresseeClient: clientFor(base, addressee),
    // The intermediary never opens the content (end-to-end), so one sealed content serves every message.
    small: () =>
      (sealed ??= sealContent({
        author: sender.signature,
        readers: [addressee.cipher.cert],
        contents: [{ base64Content: Buffer.from(randomBytes(SMALL_CONTENT_BYTES / 2).toString('hex')) }],
        tmpDir,
      })),
  };
}

/** Milliseconds since the epoch with sub-millisecond resolution (comparable across processes). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export async function waitUntil(epoch: number): Promise<void> {
  const d = epoch - epochMs();
  if (d > 0) await new Promise((r) => setTimeout(r, d));
}
