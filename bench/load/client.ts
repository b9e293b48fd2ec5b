/**
 * Load-generator process (forked by bench/run.ts with an IPC channel): receives { id, cmd, args } and answers
 * { id, ok, result } or { id, ok: false, error }. Holds a StoreLoad, a FetchLoad and a LargeLoad.
 */
import { rmSync } from 'node:fs';
import { loadContext, type LoadContext, type LoadInit } from './common.ts';
import { FetchLoad } from './fetch.ts';
import { LargeLoad } from './large.ts';
import { StoreLoad } from './store.ts';

let ctx: LoadContext | undefined;
let store: StoreLoad | undefined;
let fetch: FetchLoad | undefined;
let large: LargeLoad | undefined;

function need<T>(v: T | undefined): T {
  if (v === undefined) throw new Error('init first');
  return v;
}

const handlers: Record<string, (a: never) => Promise<unknown>> = {
  init: async (a: LoadInit) => {
    ctx = loadContext(a);
    store = new StoreLoad(ctx);
    fetch = new FetchLoad(ctx);
    large = new LargeLoad(ctx);
    return { pid: process.pid };
  },
  storePrepare: (a: { tag: string; count: number; distinct?: number }) => need(store).prepare(a.tag, a.count, a.distinct),
  storeGo: (a: { tag: string; concurrency: number; startAt: number; secs: number; target?: string }) => need(store).go(a.tag, a.concurrency, a.startAt, a.secs, a.target),
  storeVerify: (a: { tag: string; statusOnly?: boolean }) => need(store).verify(a.tag, a.statusOnly),
  fetchOpen: (a: { dialogs: number }) => need(fetch).open(a.dialogs),
  fetchGo: (a: { ids: string[][]; startAt: number; secs: number }) => need(fetch).go(a.ids, a.startAt, a.secs),
  fetchClose: () => need(fetch).close(),
  largePrepare: (a: { sizeBytes: number }) => need(large).prepare(a.sizeBytes),
  largeStore: () => need(large).store(),
  largeFetch: () => need(large).fetch(),
  largeFloor: (a: { target: string }) => need(large).floor(a.target),
  exit: async () => {
    await large?.dispose();
    if (ctx) rmSync(ctx.tmpDir, { recursive: true, force: true });
    setImmediate(() => process.exit(0));
    return null;
  },
};

process.on('message', (m: { id: number; cmd: string; args: unknown }) => {
  const h = handlers[m.cmd];
  const p = h ? h(m.args as never) : Promise.reject(new Error(`unknown command ${m.cmd}`));
  p.then(
    (result) => process.send?.({ id: m.id, ok: true, result }),
    (e: unknown) => process.send?.({ id: m.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
  );
});
