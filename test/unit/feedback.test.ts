import { expect } from 'chai';
import { CRYPTO_ERROR_CODES, CryptoError } from '../../crypto/errors.ts';
import {
  ERROR_TABLE,
  OSCI_ERROR_CODES,
  OsciError,
  errorInfo,
  isErrorCode,
  toOsciError,
  type ErrorCode,
} from '../../protocol/errors.ts';
import {
  FEEDBACK_CODES,
  feedbackEntry,
  feedbackLevel,
  feedbackSeverity,
  isFeedbackCode,
  pickLanguage,
  type FeedbackCode,
} from '../../protocol/feedback.ts';

const codes = Object.keys(FEEDBACK_CODES) as FeedbackCode[];

describe('protocol/feedback', function () {
  it('holds the complete OSCI 1.2 table: 64 codes, German and English text each', function () {
    expect(codes).to.have.length(64);
    for (const c of codes) {
      expect(c).to.match(/^\d{4}$/);
      expect(FEEDBACK_CODES[c].de, c).to.be.a('string').and.not.equal('');
      expect(FEEDBACK_CODES[c].en, c).to.be.a('string').and.not.equal('');
    }
  });

  it('covers every range of osci-protocol.md §8', function () {
    const has = (from: number, to: number): FeedbackCode[] => codes.filter((c) => Number(c) >= from && Number(c) <= to);
    expect(has(800, 801)).to.deep.equal(['0800', '0801']);
    expect(has(3500, 3799)).to.have.length(11);
    expect(has(3800, 3803)).to.deep.equal(['3800', '3801', '3802', '3803']);
    expect(has(3950, 3952)).to.have.length(3);
    expect(has(9000, 9503)).to.deep.equal(['9000', '9100', '9200', '9201', '9202', '9300', '9400', '9500', '9501', '9502', '9503']);
    expect(has(9600, 9712)).to.have.length(15);
    expect(has(9800, 9811)).to.have.length(12);
    expect(has(9900, 9905)).to.have.length(6);
  });

  it('has the library texts verbatim', function () {
    expect(feedbackEntry('9400')).to.deep.equal({
      code: '9400',
      lang: 'de',
      text: 'ConversationId oder SequenceNumber oder Response nicht korrekt',
    });
    expect(feedbackEntry('9400', 'en').text).to.equal('ConversationId or SequenceNumber or response value are not correct');
    expect(feedbackEntry('9802', 'de').text).to.equal(
      'Auftrag nicht innerhalb eines expliziten Dialogs gesendet, obwohl dies für diesen Auftragstyp gefordert ist',
    );
    expect(feedbackEntry('0800', 'en').text).to.equal('Request executed, dialog closed');
    expect(feedbackEntry('0801', 'de').text).to.equal('Auftrag ausgeführt, Dialog weiterhin geöffnet');
    expect(feedbackEntry('9000', 'en').text).to.equal("Internal error at the supplier's");
  });

  it('refuses unknown codes instead of inventing a text', function () {
    expect(isFeedbackCode('9999')).to.equal(false);
    expect(isFeedbackCode('toString')).to.equal(false);
    expect(isFeedbackCode('9601')).to.equal(true);
    expect(() => feedbackEntry('9999' as FeedbackCode)).to.throw(RangeError);
  });

  it('classifies severity and level', function () {
    expect(feedbackSeverity('0801')).to.equal('success');
    expect(feedbackSeverity('3700')).to.equal('warning');
    expect(feedbackSeverity('9803')).to.equal('error');
    expect(feedbackLevel('9400')).to.equal('message');
    expect(feedbackLevel('9503')).to.equal('message');
    expect(feedbackLevel('9600')).to.equal('order');
    expect(feedbackLevel('0800')).to.equal('order');
  });

  it('picks the response language from DesiredLanguages, German by default', function () {
    expect(pickLanguage('en-GB de')).to.equal('en');
    expect(pickLanguage(['fr', 'de-AT', 'en'])).to.equal('de');
    expect(pickLanguage('fr it')).to.equal('de');
    expect(pickLanguage(undefined)).to.equal('de');
  });
});

describe('protocol/errors', function () {
  const all: ErrorCode[] = [...OSCI_ERROR_CODES, ...CRYPTO_ERROR_CODES];

  it('maps every code, ours and crypto/errors.ts, to a real feedback code, HTTP status, exit code and fault', function () {
    expect(Object.keys(ERROR_TABLE).sort()).to.deep.equal([...all].sort());
    for (const code of all) {
      const row = ERROR_TABLE[code];
      expect(isFeedbackCode(row.feedback), code).to.equal(true);
      expect(row.http, code).to.be.within(400, 599);
      expect(row.exit, code).to.be.within(1, 5);
      expect(['Client', 'Server']).to.include(row.fault);
      // Server faults are exactly the remote/internal failures
      expect(row.fault === 'Server', code).to.equal(row.exit === 3 || row.exit === 5);
      expect(isErrorCode(code)).to.equal(true);
    }
    expect(isErrorCode('ERR_NOPE')).to.equal(false);
  });

  it('maps the protocol checks to their OSCI codes', function () {
    const feedback = (c: ErrorCode): string => ERROR_TABLE[c].feedback;
    expect(feedback('ERR_CONTROLBLOCK')).to.equal('9400');
    expect(feedback('ERR_REPLAY')).to.equal('9400');
    expect(feedback('ERR_DIALOG_REQUIRED')).to.equal('9802');
    expect(feedback('ERR_MIME_MALFORMED')).to.equal('9100');
    expect(feedback('ERR_DECRYPT')).to.equal('9202');
    expect(feedback('ERR_SIG_INVALID')).to.equal('9601');
    expect(feedback('ERR_SIGNATURE_MISSING')).to.equal('9600');
    expect(feedback('ERR_MESSAGE_ID')).to.equal('9801');
    expect(feedback('ERR_NOT_FOUND')).to.equal('9803');
    expect(errorInfo('ERR_INTERNAL')).to.deep.equal({ feedback: '9000', http: 500, exit: 5, fault: 'Server' });
    expect(errorInfo('ERR_UNAUTHORISED').exit).to.equal(4);
  });

  it('OsciError exposes the table row; a context-specific feedback override must be a real code', function () {
    const e = new OsciError('ERR_DECRYPT', 'content part: tag mismatch', { feedback: '9300' });
    expect(e.feedback).to.equal('9300');
    expect(e.http).to.equal(400);
    expect(e.feedbackEntry('en').text).to.equal('Request data do not represent a valid request');
    expect(new OsciError('ERR_DECRYPT', 'x').feedback).to.equal('9202');
    expect(() => new OsciError('ERR_DECRYPT', 'x', { feedback: '1234' as FeedbackCode })).to.throw(RangeError);
  });

  it('toOsciError keeps OsciErrors, converts CryptoErrors, and hides everything else', function () {
    const o = new OsciError('ERR_SEQUENCE', 'seq');
    expect(toOsciError(o)).to.equal(o);
    const c = toOsciError(new CryptoError('ERR_SIG_DIGEST', 'reference #body digest mismatch'));
    expect([c.code, c.message, c.feedback]).to.deep.equal(['ERR_SIG_DIGEST', 'reference #body digest mismatch', '9601']);
    expect(c.cause).to.be.instanceOf(CryptoError);
    const secret = new Error('ENOENT: /var/lib/amtsbote/keys/intermediary.p12');
    const u = toOsciError(secret);
    expect(u.code).to.equal('ERR_INTERNAL');
    expect(u.message).to.equal('internal error');
    expect(u.feedbackEntry('de').text).to.equal('Interner Fehler beim Supplier');
    expect(u.cause).to.equal(secret);
    expect(toOsciError('a string').code).to.equal('ERR_INTERNAL');
    expect(toOsciError(undefined).code).to.equal('ERR_INTERNAL');
  });
});
