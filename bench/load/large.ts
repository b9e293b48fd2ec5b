/**
 * The 200 MB delivery, in its own load-generator process (so that its peak RSS is the client's of this scenario
 * alone): sealed once for the addressee (untimed), then sent with OsciClient.storeDelivery and fetched with
 * OsciDialog.fetchDelivery, everything streamed. The fetched part must have the stored bytes' SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { sealContent, type SealedContent } from '../../protocol/envelope/index.ts';
import { writeAttachment } from '../scenarios/large-message.ts';
import { ownCpuSecondsSince, peakRssMb, resetPeakRss } from '../sys.ts';
import type { LoadContext } from './common.ts';

export interface LargeStep {
  wall_s: number;
  ok: boolean;
  detail?: string;
  /** Peak RSS of this process since the step began (MiB). */
  client_peak_rss_mb?: number;
  /** CPU seconds (user + system, all threads) this process spent in the step. */
  client_cpu_s: number;
  client_peak_reset: boolean;
}

export class LargeLoad {
  private sealed: SealedContent | undefined;
  private sealedSha = '';
  private sealedSize = 0;
  private messageId = '';
  private plainPath = '';
  constructor(private readonly ctx: LoadContext) {}

  async prepare(sizeBytes: number): Promise<{ prepare_s: number; wire_part_bytes: number }> {
    const t0 = performance.now();
    this.plainPath = join(this.ctx.tmpDir, 'large.bin');
    await writeAttachment(this.plainPath, sizeBytes);
    const path = this.plainPath;
    this.sealed = await sealContent({
      author: this.ctx.sender.signature,
      readers: [this.ctx.addressee.cipher.cert],
      contents: [{ base64Content: Buffer.from('Schriftsatz mit großer Anlage') }, { attachment: { contentId: 'anlage.bin', size: sizeBytes, open: () => createReadStream(path) } }],
      tmpDir: this.ctx.tmpDir,
    });
    rmSync(this.plainPath, { force: true });
    const part = this.sealed.attachments[0];
    if (!part) throw new Error('sealed content without attachment');
    const h = createHash('sha256');
    for await (const c of part.open()) h.update(c as Buffer);
    this.sealedSha = h.digest('hex');
    this.sealedSize = part.size;
    return { prepare_s: (performance.now() - t0) / 1000, wire_part_bytes: part.size };
  }

  async store(): Promise<LargeStep> {
    const sealed = this.sealed;
    if (!sealed) throw new Error('prepare first');
    // A new MessageId per round; fetch() fetches the one stored last.
    this.messageId = Buffer.from(`bench-large-${randomBytes(9).toString('base64url')}`).toString('base64');
    const reset = resetPeakRss(process.pid);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const receipt = await this.ctx.senderClient.storeDelivery({
      messageId: this.messageId,
      addresseeCipher: this.ctx.addressee.cipher.cert,
      subject: 'bench 200 MB',
      contentPackage: sealed.contentPackage,
      certificates: sealed.certificates,
      attachments: sealed.attachments,
    });
    const wall = (performance.now() - t0) / 1000;
    const cpu = ownCpuSecondsSince(c0);
    const ok = receipt.feedback[0]?.code === '0800' && receipt.processCardBundle?.messageId === this.messageId;
    return { wall_s: wall, ok, ...(ok ? {} : { detail: `feedback ${receipt.feedback[0]?.code ?? '-'}` }), client_peak_rss_mb: peakRssMb(process.pid), client_cpu_s: cpu, client_peak_reset: reset };
  }

  async fetch(): Promise<LargeStep> {
    const reset = resetPeakRss(process.pid);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const dialog = await this.ctx.addresseeClient.openDialog();
    let ok = false;
    let detail: string | undefined;
    try {
      const got = await dialog.fetchDelivery({ by: 'messageId', messageId: this.messageId });
      if (!got) detail = 'not found';
      else {
        const part = got.decoded.attachments.find((a) => a.contentId === 'anlage.bin');
        ok = part !== undefined && part.size === this.sealedSize && part.sha256.toString('hex') === this.sealedSha;
        if (!ok) detail = `part ${part ? `${part.size} bytes, sha256 differs` : 'missing'}`;
        await got.decoded.dispose();
      }
    } finally {
      await dialog.close();
    }
    const wall = (performance.now() - t0) / 1000;
    return { wall_s: wall, ok, ...(detail ? { detail } : {}), client_peak_rss_mb: peakRssMb(process.pid), client_cpu_s: ownCpuSecondsSince(c0), client_peak_reset: reset };
  }

  /**
   * The platform floor's ingest (bench/floor/server.ts): the sealed attachment's bytes streamed from their file in
   * one POST, nothing encoded on the way (the lightest possible sender); ok when the floor took every byte.
   */
  async floor(target: string): Promise<LargeStep> {
    const part = this.sealed?.attachments[0];
    if (!part) throw new Error('prepare first');
    const reset = resetPeakRss(process.pid);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(target, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(part.size) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${String(res.statusCode)}: ${text}`))));
        res.on('error', reject);
      });
      req.on('error', reject);
      pipeline(part.open(), req).catch(reject);
    });
    const wall = (performance.now() - t0) / 1000;
    const ok = Number(answer) === part.size;
    return { wall_s: wall, ok, ...(ok ? {} : { detail: `floor took ${answer} of ${part.size} bytes` }), client_peak_rss_mb: peakRssMb(process.pid), client_cpu_s: ownCpuSecondsSince(c0), client_peak_reset: reset };
  }

  async dispose(): Promise<void> {
    await this.sealed?.dispose();
    rmSync(this.plainPath, { force: true });
  }
}
