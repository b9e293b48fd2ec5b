/**
 * fetchDelivery load, in a load-generator process: the addressee's OsciClient, one explicit dialog per lane
 * (fetchDelivery needs one, §2), each lane fetching its own MessageIds by selection. Unlike storeDelivery this
 * cannot be prepared ahead: every request answers the Challenge of the previous response, so the client signs
 * and decrypts inside the window (two private-key operations per fetch, as many as the server).
 */
import type { OsciDialog } from '../../adapters/osci/client.ts';
import { epochMs, waitUntil, type LoadContext } from './common.ts';
import { ownCpuSecondsSince } from '../sys.ts';

export interface FetchGoResult {
  ends: number[];
  latencies: number[];
  fetched: string[];
  errors: number;
  errorSamples: string[];
  exhaustedAt?: number;
  cpu_s: number;
  wall_s: number;
}

export class FetchLoad {
  private dialogs: OsciDialog[] = [];
  constructor(private readonly ctx: LoadContext) {}

  /** Opens dialogs until `n` are open (levels reuse them: opening 32 dialogs is 32 extra round trips). */
  async open(n: number): Promise<void> {
    const more = await Promise.all(Array.from({ length: Math.max(0, n - this.dialogs.length) }, () => this.ctx.addresseeClient.openDialog()));
    this.dialogs.push(...more);
  }

  /** Lane i (dialog i) fetches ids[i] one after another from `startAt` until `startAt + secs`. */
  async go(ids: string[][], startAt: number, secs: number): Promise<FetchGoResult> {
    const r: FetchGoResult = { ends: [], latencies: [], fetched: [], errors: 0, errorSamples: [], cpu_s: 0, wall_s: 0 };
    const deadline = startAt + secs * 1000;
    await waitUntil(startAt);
    const cpu0 = process.cpuUsage();
    const t0 = epochMs();
    const lane = async (dialog: OsciDialog, mine: string[]) => {
      for (const messageId of mine) {
        if (epochMs() >= deadline) return;
        const s = epochMs();
        try {
          const got = await dialog.fetchDelivery({ by: 'messageId', messageId });
          if (!got) throw new Error('9803 no delivery');
          const id = got.response.processCardBundle?.messageId;
          await got.decoded.dispose();
          if (id !== messageId) throw new Error('delivery for another MessageId');
          r.fetched.push(messageId);
        } catch (e) {
          r.errors++;
          if (r.errorSamples.length < 5) r.errorSamples.push((e as Error).message);
        }
        const e = epochMs();
        r.ends.push(e);
        r.latencies.push(e - s);
      }
      r.exhaustedAt ??= epochMs();
    };
    await Promise.all(ids.map((mine, i) => lane(this.dialogs[i] as OsciDialog, mine)));
    r.cpu_s = ownCpuSecondsSince(cpu0);
    r.wall_s = (epochMs() - t0) / 1000;
    return r;
  }

  /** exitDialog for every lane (acknowledges the last fetched delivery, §2). */
  async close(): Promise<void> {
    await Promise.all(this.dialogs.map((d) => d.close().catch(() => undefined)));
    this.dialogs = [];
  }
}
