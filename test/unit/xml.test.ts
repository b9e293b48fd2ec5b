import { expect } from 'chai';
import { CryptoError } from '../../crypto/errors.ts';
import { parseXml } from '../../crypto/xml.ts';

function failure(xml: string): CryptoError {
  try {
    parseXml(xml);
  } catch (e) {
    expect(e).to.be.instanceOf(CryptoError);
    return e as CryptoError;
  }
  throw new Error('parsed');
}

describe('crypto/xml: parseXml', () => {
  it('names what broke and where (line, column) for a document that is not well-formed', () => {
    const e = failure('<a>\n  <b></c>\n</a>');
    expect(e.code).to.equal('ERR_XML_MALFORMED');
    expect(e.message).to.equal('XML fatalError: Opening and ending tag mismatch: "b" != "c" (line 2, column 3)');
    expect(failure('<a x="1" x="2"/>').message).to.equal('XML fatalError: Attribute x redefined (line 1, column 1)');
    // A recoverable error is fatal too (dependencies-and-security.md §2): an undeclared entity is never skipped.
    expect(failure('<r>\n<a>&foo;</a></r>').message).to.match(/^XML error: entity not found:&foo; \(line 2, column \d+\)$/);
  });

  it('parses a good document without positions on its nodes (the locator runs only after a failure)', () => {
    const doc = parseXml('<a>\n  <b c="1"/>\n</a>');
    const b = doc.documentElement?.getElementsByTagName('b')[0] as unknown as { lineNumber?: number };
    expect(b).to.not.equal(undefined);
    expect(b.lineNumber).to.equal(undefined);
  });
});
