/** The HTTP intake for outgoing mail (adapters/http/intake.ts): authentication, refusals, limits, idempotency, no leftovers. */
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIntake, type RunningIntake } from '../../adapters/http/intake.ts';
import { silentLogger } from '../../gateway/log.ts';

const TOKEN = 'unit-intake-token-0123456789abcdef012345';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('HTTP intake for outgoing mail (adapters/http/intake.ts)', () => {
  let tmp: string;
  let out: string;
  let intake: RunningIntake;

  const form = (order: unknown, files: Array<[string, string | Buffer]>) => {
    const f = new FormData();
    if (order !== undefined) f.append('order', typeof order === 'string' ? order : JSON.stringify(order));
    for (const [name, data] of files) f.append('file', new Blob([data]), name);
    return f;
  };
  const post = (key: string | undefined, body: FormData | string, headers: Record<string, string> = auth) =>
    fetch(`${intake.url}/outgoing/stadt-lemgo`, { method: 'POST', headers: { ...headers, ...(key ? { 'idempotency-key': key } : {}) }, body });
  const leftovers = () => readdirSync(out).filter((n) => n.startsWith('.'));

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-intake-'));
    out = join(tmp, 'ausgang');
    mkdirSync(out);
    mkdirSync(join(out, '.intake-crashed-0123'), { recursive: true }); // left by a crash mid-upload
    intake = await startIntake({ host: '127.0.0.1', port: 0, token: TOKEN, mailboxes: new Map([['stadt-lemgo', out]]), log: silentLogger });
  });

  after(async () => {
    await intake?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('removes staging folders a crash left behind when it starts', () => {
    expect(leftovers()).to.deep.equal([]);
  });

  it('accepts an order with files as a complete outgoing folder (send.json listing the files) and reports it queued', async () => {
    const r = await post('k1', form({ to: 'ag-lemgo', subject: 'Antwort', text: 'Hallo' }, [['a.pdf', 'AAA'], ['b.pdf', Buffer.alloc(100_000, 7)]]));
    expect(r.status).to.equal(202);
    expect(await r.json()).to.deep.equal({ mailbox: 'stadt-lemgo', id: 'k1', status: 'queued', result: '/outgoing/stadt-lemgo/k1' });
    expect(JSON.parse(readFileSync(join(out, 'k1', 'send.json'), 'utf8'))).to.deep.equal({ to: 'ag-lemgo', subject: 'Antwort', text: 'Hallo', files: ['a.pdf', 'b.pdf'] });
    expect(readFileSync(join(out, 'k1', 'b.pdf')).length).to.equal(100_000);
    const s = await fetch(`${intake.url}/outgoing/stadt-lemgo/k1`, { headers: auth });
    expect(await s.json()).to.deep.equal({ mailbox: 'stadt-lemgo', id: 'k1', status: 'queued' });
    const again = await post('k1', form({ to: 'ag-lemgo', subject: 'anders' }, [['c.pdf', 'C']]));
    expect(again.status).to.equal(200);
    expect(readdirSync(join(out, 'k1')).sort()).to.deep.equal(['a.pdf', 'b.pdf', 'send.json']);
  });

  it('refuses without the token, for unknown mailboxes and messages, and without a usable Idempotency-Key', async () => {
    expect((await post('k2', form({ to: 'x', subject: 'y' }, []), {})).status).to.equal(401);
    expect((await fetch(`${intake.url}/outgoing/kreis-lippe`, { method: 'POST', headers: { ...auth, 'idempotency-key': 'k2' }, body: form({}, []) })).status).to.equal(404);
    expect((await fetch(`${intake.url}/outgoing/stadt-lemgo/nope`, { headers: auth })).status).to.equal(404);
    expect((await post(undefined, form({ to: 'x', subject: 'y' }, []))).status).to.equal(400);
    expect((await post('../etc', form({ to: 'x', subject: 'y' }, []))).status).to.equal(400);
    expect((await post('k2', 'plain text', { ...auth, 'content-type': 'text/plain' })).status).to.equal(415);
  });

  it('refuses bad orders and names with the reason and leaves nothing behind', async () => {
    const cases: Array<[FormData, number, RegExp]> = [
      [form(undefined, [['a.pdf', 'A']]), 400, /missing field "order"/],
      [form('{not json', []), 400, /not JSON/],
      [form({ to: 'ag-lemgo' }, [['a.pdf', 'A']]), 422, /subject/],
      [form({ to: 'ag-lemgo', subject: 'x', pin: '1234' }, [['a.pdf', 'A']]), 422, /unknown key "pin"/],
      [form({ to: 'ag-lemgo', subject: 'x' }, [['Bescheid ä.pdf', 'A']]), 400, /would be refused by courts/],
      [form({ to: 'ag-lemgo', subject: 'x' }, [['a.pdf', 'A'], ['A.pdf', 'B']]), 400, /sent twice/],
      [form({ to: 'ag-lemgo', subject: 'x' }, [['send.json', '{}']]), 400, /reserved name/],
      [form({ to: 'ag-lemgo', subject: 'x' }, []), 422, /nothing to send/],
    ];
    for (const [i, [body, status, why]] of cases.entries()) {
      const r = await post(`bad-${i}`, body);
      expect(r.status, `case ${i}`).to.equal(status);
      expect(((await r.json()) as { error: string }).error, `case ${i}`).to.match(why);
      expect(existsSync(join(out, `bad-${i}`)), `case ${i}`).to.equal(false);
    }
    expect(leftovers()).to.deep.equal([]);
  });

  it('more files than a court accepts: 413 (the client still gets the answer), no staging folder remains', async () => {
    const files: Array<[string, string]> = Array.from({ length: 1001 }, (_, i) => [`f${i}.txt`, 'x']);
    const r = await post('many', form({ to: 'ag-lemgo', subject: 'x' }, files));
    expect(r.status).to.equal(413);
    expect(existsSync(join(out, 'many'))).to.equal(false);
    expect(leftovers()).to.deep.equal([]);
  });
});
