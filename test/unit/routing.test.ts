/**
 * Routing of received messages (adapters/routing.ts, adapters/xjustiz.ts): rules by recipient mailbox, subject
 * and the XJustiz fields of xjustiz_nachricht.xml (type code, recipient court, file number), first match wins,
 * everything else to the default route; configuration errors are refused at load time.
 */
import { expect } from 'chai';
import { parseAgentConfig } from '../../adapters/config.ts';
import type { MessageMeta } from '../../adapters/inbox.ts';
import { factsOf, Router, type RouteRule } from '../../adapters/routing.ts';
import { readXJustiz } from '../../adapters/xjustiz.ts';

/** An XJustiz 3.x message 0005005 as courts send it (header with recipient court code and file numbers). */
function xjustiz0005005(o: { court: string; aktenzeichen: string; type?: string }): string {
  const type = o.type ?? 'nachricht.gds.uebermittlungSchriftgutobjekte.0005005';
  return `<?xml version="1.0" encoding="UTF-8"?>
<tns:${type} xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <tns:nachrichtenkopf xjustizVersion="3.4.1">
    <tns:aktenzeichen.empfaenger>${o.aktenzeichen}</tns:aktenzeichen.empfaenger>
    <tns:erstellungszeitpunkt>2026-03-02T10:15:00+01:00</tns:erstellungszeitpunkt>
    <tns:auswahl_absender>
      <tns:absender.gericht listVersionID="3.3"><code>F1410</code></tns:absender.gericht>
    </tns:auswahl_absender>
    <tns:auswahl_empfaenger>
      <tns:empfaenger.gericht listVersionID="3.3"><code>${o.court}</code></tns:empfaenger.gericht>
    </tns:auswahl_empfaenger>
    <tns:eigeneNachrichtenID>6f1c1f1e-4d4e-4c55-9f1d-2a7a3c7f0001</tns:eigeneNachrichtenID>
  </tns:nachrichtenkopf>
  <tns:grunddaten xjustizVersion="3.4.1">
    <tns:verfahrensdaten>
      <tns:instanzdaten>
        <tns:aktenzeichen>
          <tns:auswahl_aktenzeichen><tns:aktenzeichen.freitext>12 C 1000/26</tns:aktenzeichen.freitext></tns:auswahl_aktenzeichen>
        </tns:aktenzeichen>
      </tns:instanzdaten>
    </tns:verfahrensdaten>
  </tns:grunddaten>
  <tns:schriftgutobjekte/>
</tns:${type}>`;
}

function meta(o: Partial<MessageMeta> & { xml?: string }): MessageMeta {
  const m: MessageMeta = {
    messageId: 'bWlk',
    subject: o.subject,
    from: [],
    fetchedAt: new Date(0).toISOString(),
    verification: { allValid: true, containers: [], authors: [] },
    attachments: [],
  };
  if (o.xml) m.xjustiz = { file: 'xjustiz_nachricht.xml', ...readXJustiz(o.xml) };
  return m;
}

describe('XJustiz routing fields (adapters/xjustiz.ts)', () => {
  it('reads type code, recipient and sender court, version and every file number of a 0005005 record', () => {
    const f = readXJustiz(xjustiz0005005({ court: 'R3201', aktenzeichen: '32 OWi 77/26' }));
    expect(f.messageName).to.equal('nachricht.gds.uebermittlungSchriftgutobjekte.0005005');
    expect(f.messageType).to.equal('0005005');
    expect(f.recipientCourt).to.equal('R3201');
    expect(f.senderCourt).to.equal('F1410');
    expect(f.version).to.equal('3.4.1');
    expect(f.fileNumbers).to.deep.equal(['32 OWi 77/26', '12 C 1000/26']);
    expect(f.senderMessageId).to.equal('6f1c1f1e-4d4e-4c55-9f1d-2a7a3c7f0001');
  });

  it('reads the eEB return type and a plain-text court code of older records', () => {
    const xml = `<nachricht.eeb.zuruecklaufend.2200007 xmlns="http://www.xjustiz.de"><nachrichtenkopf><auswahl_empfaenger><empfaenger.gericht>K1101</empfaenger.gericht></auswahl_empfaenger></nachrichtenkopf></nachricht.eeb.zuruecklaufend.2200007>`;
    const f = readXJustiz(xml);
    expect(f.messageType).to.equal('2200007');
    expect(f.recipientCourt).to.equal('K1101');
    expect(f.fileNumbers).to.deep.equal([]);
  });

  it('refuses DOCTYPE/entities, malformed XML and records outside the XJustiz namespace', () => {
    expect(() => readXJustiz('<!DOCTYPE x [<!ENTITY a "b">]><x/>')).to.throw().with.property('code', 'ERR_XML_DOCTYPE');
    expect(() => readXJustiz('<a><b></a>')).to.throw().with.property('code', 'ERR_XML_MALFORMED');
    expect(() => readXJustiz('<nachricht xmlns="urn:other"/>')).to.throw().with.property('code', 'ERR_XML_MALFORMED');
  });
});

describe('routing rules (adapters/routing.ts)', () => {
  const rules: RouteRule[] = [
    { name: 'eeb', match: { messageType: '2200007' }, to: ['eeb-folder'] },
    { name: 'bussgeld', match: { mailbox: 'stadt-lemgo', fileNumber: '\\bOWi\\b' }, to: ['dms', 'mail-ordnungsamt'] },
    { name: 'amtsgericht', match: { court: ['F1234', 'F1235'], messageType: '0005005' }, to: ['dms'] },
    { name: 'bauamt', match: { mailbox: ['stadt-lemgo', 'kreis-lippe'], subject: '^bau(antrag|genehmigung)' }, to: ['mail-bauamt'] },
    { name: 'kreis', match: { mailbox: 'kreis-lippe' }, to: ['archiv-kreis'] },
  ];
  const adapters = new Set(['eeb-folder', 'dms', 'mail-ordnungsamt', 'mail-bauamt', 'archiv-kreis', 'archiv']);
  const router = new Router({ rules, default: ['archiv'] }, adapters);
  const route = (mailbox: string, m: MessageMeta) => router.route(factsOf(mailbox, m));

  it('routes by XJustiz file number within the mailbox', () => {
    const d = route('stadt-lemgo', meta({ subject: 'Anhörung', xml: xjustiz0005005({ court: 'X9999', aktenzeichen: '32 OWi 77/26' }) }));
    expect(d).to.deep.equal({ rule: 'bussgeld', adapters: ['dms', 'mail-ordnungsamt'], isDefault: false });
    // Same record for another mailbox: the file-number rule is restricted to stadt-lemgo.
    expect(route('kreis-lippe', meta({ xml: xjustiz0005005({ court: 'X9999', aktenzeichen: '32 OWi 77/26' }) })).rule).to.equal('kreis');
  });

  it('routes by recipient court code and message type, all conditions of a rule must hold', () => {
    expect(route('stadt-lemgo', meta({ xml: xjustiz0005005({ court: 'F1235', aktenzeichen: '3 C 5/26' }) })).rule).to.equal('amtsgericht');
    // Right court, wrong type: no match.
    const other = xjustiz0005005({ court: 'F1235', aktenzeichen: '3 C 5/26', type: 'nachricht.gds.basisnachricht.0005006' });
    expect(route('stadt-lemgo', meta({ xml: other })).isDefault).to.equal(true);
  });

  it('routes by XJustiz type code before anything else (first match wins)', () => {
    const eeb = `<tns:nachricht.eeb.zuruecklaufend.2200007 xmlns:tns="http://www.xjustiz.de"><tns:nachrichtenkopf><tns:aktenzeichen.empfaenger>32 OWi 77/26</tns:aktenzeichen.empfaenger></tns:nachrichtenkopf></tns:nachricht.eeb.zuruecklaufend.2200007>`;
    expect(route('stadt-lemgo', meta({ xml: eeb })).adapters).to.deep.equal(['eeb-folder']);
  });

  it('routes by subject pattern (case-insensitive) and mailbox list', () => {
    expect(route('kreis-lippe', meta({ subject: 'Bauantrag Hauptstraße 5' })).rule).to.equal('bauamt');
    expect(route('stadt-lemgo', meta({ subject: 'BAUGENEHMIGUNG 2026/17' })).rule).to.equal('bauamt');
    expect(route('stadt-lemgo', meta({ subject: 'Antrag zum Bau' })).isDefault).to.equal(true);
  });

  it('sends what matches no rule to the default route, never nowhere', () => {
    const d = route('stadt-lemgo', meta({ subject: 'Allgemeine Anfrage' }));
    expect(d).to.deep.equal({ rule: 'default', adapters: ['archiv'], isDefault: true });
    expect(route('unknown-mailbox', meta({})).adapters).to.deep.equal(['archiv']);
  });

  it('a mailbox’s own view: only the rules it names, and its own default route', () => {
    const m = meta({ subject: 'Bauantrag', xml: xjustiz0005005({ court: 'F1234', aktenzeichen: '32 OWi 77/26' }) });
    expect(router.route(factsOf('stadt-lemgo', m)).rule).to.equal('bussgeld');
    expect(router.route(factsOf('stadt-lemgo', m), { rules: ['amtsgericht', 'bauamt'] }).rule).to.equal('amtsgericht');
    expect(router.route(factsOf('stadt-lemgo', m), { rules: [], default: ['dms'] })).to.deep.equal({ rule: 'default', adapters: ['dms'], isDefault: true });
  });

  it('refuses unknown adapters, unknown conditions, bad regular expressions and an empty default route', () => {
    expect(() => new Router({ rules: [{ match: {}, to: ['nope'] }], default: ['archiv'] }, adapters)).to.throw(/unknown adapter "nope"/);
    expect(() => new Router({ rules: [{ match: { sender: 'x' } as never, to: ['dms'] }], default: ['archiv'] }, adapters)).to.throw(/unknown condition "sender"/);
    expect(() => new Router({ rules: [{ match: { subject: '(' }, to: ['dms'] }], default: ['archiv'] }, adapters)).to.throw(/not a valid regular expression/);
    expect(() => new Router({ rules: [], default: [] }, adapters)).to.throw(/defaultRoute must list at least one adapter/);
  });
});

describe('agent configuration (adapters/config.ts)', () => {
  const base = {
    server: 'http://127.0.0.1:8080',
    mailboxes: [{ id: 'stadt-lemgo', identity: 'ids/stadt-lemgo', outgoing: 'out' }],
    adapters: {
      archiv: { type: 'hotfolder', dir: 'dms/in' },
      dms: { type: 'http', url: 'https://dms.example/import', secretEnv: 'DMS_SECRET', timeoutSeconds: 5 },
      staff: { type: 'smtp', host: '127.0.0.1', port: 2525, from: 'amtsbote@stadt-lemgo.example', to: ['posteingang@stadt-lemgo.example'] },
    },
    routes: [{ name: 'x', match: { messageType: '0005005' }, to: ['dms', 'staff'] }],
    defaultRoute: ['archiv'],
  };

  it('resolves relative paths against the configuration folder and fills defaults', () => {
    const c = parseAgentConfig(base, '/etc/amtsbote');
    expect(c.dataDir).to.equal('/etc/amtsbote/agent-data');
    expect(c.mailboxes[0]).to.deep.equal({ id: 'stadt-lemgo', identity: '/etc/amtsbote/ids/stadt-lemgo', outgoing: '/etc/amtsbote/out' });
    expect(c.adapters.archiv).to.deep.equal({ type: 'hotfolder', dir: '/etc/amtsbote/dms/in' });
    expect(c.retry.maxAttempts).to.equal(8);
    expect(c.adapters.staff).to.include({ security: 'starttls', includeText: false });
  });

  it('refuses typos, secrets in the file, bad addresses and routes to unknown adapters', () => {
    expect(() => parseAgentConfig({ ...base, pollInterval: 5 }, '/x')).to.throw(/unknown key "pollInterval"/);
    expect(() => parseAgentConfig({ ...base, adapters: { ...base.adapters, dms: { type: 'http', url: 'https://d', secret: 'abc' } } }, '/x')).to.throw(/unknown key "secret"/);
    const badMail = { ...base, adapters: { ...base.adapters, staff: { ...base.adapters.staff, to: ['a@b.example, evil@x.example'] } } };
    expect(() => parseAgentConfig(badMail, '/x')).to.throw(/not a plain e-mail address/);
    expect(() => parseAgentConfig({ ...base, defaultRoute: ['missing'] }, '/x')).to.throw(/unknown adapter "missing"/);
    expect(() => parseAgentConfig({ ...base, retry: { maxAttempts: 0 } }, '/x')).to.throw(/maxAttempts/);
  });

  describe('mailboxes on other intermediaries', () => {
    const remote = {
      ...base,
      server: undefined,
      intermediaries: { zentral: { endpoint: 'https://osci.justiz.example/osci/', cipherCert: 'pins/zentral-cipher.pem', signatureCert: 'pins/zentral-signature.pem' } },
      recipients: { 'ag-lemgo': { cipherCert: 'pins/ag-lemgo.pem' } },
      mailboxes: [{ id: 'stadt-lemgo', intermediary: 'zentral', identity: 'ids/stadt-lemgo', pinFile: '/run/secrets/lemgo-pin', pollIntervalSeconds: 30, routes: ['x'], defaultRoute: ['dms'] }],
    };

    it('reads the pinned endpoint and certificates, recipients, PIN file, interval, routing view and tracking defaults', () => {
      const c = parseAgentConfig(remote, '/etc/amtsbote');
      expect(c.server).to.equal(undefined);
      expect(c.intermediaries.zentral).to.deep.equal({ endpoint: 'https://osci.justiz.example/osci', cipherCert: '/etc/amtsbote/pins/zentral-cipher.pem', signatureCert: '/etc/amtsbote/pins/zentral-signature.pem' });
      expect(c.recipients['ag-lemgo']).to.deep.equal({ cipherCert: '/etc/amtsbote/pins/ag-lemgo.pem' });
      expect(c.mailboxes[0]).to.deep.equal({ id: 'stadt-lemgo', identity: '/etc/amtsbote/ids/stadt-lemgo', pinFile: '/run/secrets/lemgo-pin', intermediary: 'zentral', pollIntervalSeconds: 30, routes: ['x'], defaultRoute: ['dms'] });
      expect(c.pollBackoffMaxSeconds).to.equal(900);
      expect(c.receptionTracking).to.deep.equal({ intervalSeconds: 300, maxDays: 14 });
    });

    it('refuses an unknown intermediary, a mailbox without one, both PIN sources, unknown rules and a PIN in the file', () => {
      const mb = remote.mailboxes[0]!;
      expect(() => parseAgentConfig({ ...remote, mailboxes: [{ ...mb, intermediary: 'nrw' }] }, '/x')).to.throw(/names "nrw", which intermediaries does not define/);
      expect(() => parseAgentConfig({ ...remote, mailboxes: [{ id: 'a', identity: 'ids/a' }] }, '/x')).to.throw(/needs "intermediary"/);
      expect(() => parseAgentConfig({ ...remote, mailboxes: [{ ...mb, pinEnv: 'PIN' }] }, '/x')).to.throw(/pinEnv and pinFile exclude each other/);
      expect(() => parseAgentConfig({ ...remote, mailboxes: [{ ...mb, routes: ['nope'] }] }, '/x')).to.throw(/unknown rule "nope"/);
      expect(() => parseAgentConfig({ ...remote, mailboxes: [{ ...mb, pin: '123456' }] }, '/x')).to.throw(/unknown key "pin"/);
      expect(() => parseAgentConfig({ ...remote, intermediaries: { zentral: { ...remote.intermediaries.zentral, endpoint: 'ftp://x' } } }, '/x')).to.throw(/endpoint must be an http\(s\) URL/);
      expect(() => parseAgentConfig({ ...remote, intermediaries: { zentral: { endpoint: 'https://x/osci', cipherCert: 'c.pem' } } }, '/x')).to.throw(/signatureCert must be a non-empty string/);
      expect(() => parseAgentConfig({ ...remote, recipients: { 'ag-lemgo': { cipherCert: 'a.pem', intermediary: 'bund' } } }, '/x')).to.throw(/recipients\.ag-lemgo\.intermediary names "bund"/);
      expect(parseAgentConfig({ ...remote, recipients: { 'ag-lemgo': { cipherCert: 'a.pem', intermediary: 'zentral' } } }, '/x').recipients['ag-lemgo']).to.deep.equal({ cipherCert: '/x/a.pem', intermediary: 'zentral' });
    });
  });
});
