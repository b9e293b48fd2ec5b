/**
 * The offline XSD validator (test/helpers/xsd.ts) against the reference captures: every SOAP part the
 * Java library produced validates against its soap<Type>.xsd / soapMessageEncrypted.xsd, the same
 * messages rebuilt by protocol/ validate too, and the validator rejects broken variants.
 */
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { TYPE_SPECS } from '../../protocol/messages/spec.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';
import { firstMimePart, generateCatalog, validateXsd } from '../helpers/xsd.ts';
import { CAPTURED_TYPES } from '../helpers/reference.ts';

const MESSAGES = shared('osci-reference', 'messages');

/** Type of each captured request (osci-reference/README.md "Captured messages"). */
const CAPTURED = CAPTURED_TYPES;

const soapPart = (file: string) => firstMimePart(readFileSync(`${MESSAGES}/${file}`));

describe('interop: XSD validation of OSCI envelopes (xmllint, offline catalog)', () => {
  before(function () {
    requireShared(this);
    requireTool(this, 'xmllint');
  });

  it('the capture set is the one described in the README', () => {
    const plain = readdirSync(MESSAGES).filter((f) => f.endsWith('.plain.mime')).map((f) => f.replace('.plain.mime', ''));
    expect(plain).to.have.members(Object.keys(CAPTURED));
  });

  it('generated catalog maps every remote schemaLocation of the shipped XSDs to a local file', () => {
    const cat = generateCatalog();
    for (const loc of [
      'http://schemas.xmlsoap.org/soap/envelope/',
      'http://www.w3.org/2001/xml.xsd',
      'http://www.w3.org/TR/2001/CR-xmldsig-core-20010419/xmldsig-core-schema.xsd',
      'http://www.w3.org/TR/xmlenc-core/xenc-schema.xsd',
      'https://www.w3.org/2008/xmlsec/Drafts/xmlenc-core-11/xenc-schema-11.xsd',
    ]) {
      expect(cat).to.match(new RegExp(`systemId="${loc.replace(/[.?]/g, '\\$&')}" uri="file://[^"]*/schema/extern/`));
    }
    expect(cat).to.not.match(/uri="https?:/);
  });

  for (const [name, type] of Object.entries(CAPTURED)) {
    it(`${name}.plain SOAP part is valid against ${TYPE_SPECS[type].xsd}`, () => {
      const xml = soapPart(`${name}.plain.mime`);
      expect(xml.toString('utf8')).to.contain(` ${TYPE_SPECS[type].xsd} `); // the library's own xsi:schemaLocation
      const r = validateXsd(xml, TYPE_SPECS[type].xsd);
      expect(r.errors, r.errors.join('\n')).to.deep.equal([]);
      expect(r.valid).to.equal(true);
    });

    const wireXsd = name.startsWith('06') ? TYPE_SPECS[type].xsd : 'soapMessageEncrypted.xsd';
    it(`${name}.wire SOAP part is valid against ${wireXsd}`, () => {
      const r = validateXsd(soapPart(`${name}.wire.mime`), wireXsd);
      expect(r.errors, r.errors.join('\n')).to.deep.equal([]);
    });

    it(`${name} rebuilt by protocol/ (parse → build) is valid against ${TYPE_SPECS[type].xsd}`, () => {
      const built = buildSoap(parseSoap(soapPart(`${name}.plain.mime`)).message);
      expect(built.xsd).to.equal(TYPE_SPECS[type].xsd);
      const r = validateXsd(built.xml(), built.xsd);
      expect(r.errors, r.errors.join('\n')).to.deep.equal([]);
    });
  }

  it('the HTTP capture of the official sample is a valid soapMessageEncrypted envelope', () => {
    const body = readFileSync(shared('osci-reference', 'http-capture-127.0.0.1', 'http-01.body.mime'));
    expect(validateXsd(firstMimePart(body), 'soapMessageEncrypted.xsd').valid).to.equal(true);
  });

  describe('rejects what the schema forbids', () => {
    const fetch = () => soapPart('04_fetchDelivery.plain.mime').toString('utf8');
    const invalid = (xml: string, xsd: string, pattern: RegExp) => {
      const r = validateXsd(xml, xsd);
      expect(r.valid).to.equal(false);
      expect(r.errors.join('\n')).to.match(pattern);
    };

    it('non-numeric ConversationId (osci:Number)', () => {
      invalid(fetch().replace('ConversationId="4711"', 'ConversationId="47a1"'), 'soapFetchDelivery.xsd', /ConversationId|pattern/);
    });

    it('header blocks out of order', () => {
      const xml = fetch();
      const dl = /<osci:DesiredLanguages[^>]*><\/osci:DesiredLanguages>/.exec(xml)![0];
      const swapped = xml.replace(dl, '').replace('</osci:fetchDelivery>', `</osci:fetchDelivery>${dl}`);
      invalid(swapped, 'soapFetchDelivery.xsd', /DesiredLanguages|not expected/);
    });

    it('missing required attributes: Body Id, DesiredLanguages LanguagesList', () => {
      invalid(fetch().replace(/ Id="body"/, ''), 'soapFetchDelivery.xsd', /Id/);
      invalid(fetch().replace(/ LanguagesList="en"/, ''), 'soapFetchDelivery.xsd', /LanguagesList/);
      // libxml2 does not enforce the fixed soap:actor of the *Certificates blocks; protocol/soap-parse does.
    });

    it('a message against another type\'s schema, and a Header in the transport envelope', () => {
      invalid(fetch(), 'soapStoreDelivery.xsd', /not expected|missing/);
      invalid(soapPart('06_initDialog_noTransportEncryption.wire.mime').toString('utf8'), 'soapMessageEncrypted.xsd', /Header/);
    });
  });
});
