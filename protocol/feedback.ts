/**
 * OSCI 1.2 Feedback codes (osci-protocol.md §8): `Feedback/Entry@xml:lang{Code, Text}`.
 * Codes and texts transcribed from the Governikus OSCI-Bibliothek resources
 * (.NET 2.0.1 `Resources/Language/Text_{de,en}.properties`, identical in Java 2.4.1).
 * 0xxx success, 3xxx warning, 9xxx error; 9000–9503 are message-level errors (answered with soap:Fault),
 * the rest are order-level (carried in the response's Feedback).
 */

export type FeedbackLang = 'de' | 'en';

export const FEEDBACK_CODES = Object.freeze({
  '0800': { de: 'Auftrag ausgeführt, Dialog beendet', en: 'Request executed, dialog closed' },
  '0801': { de: 'Auftrag ausgeführt, Dialog weiterhin geöffnet', en: 'Request executed, dialog continues to be open' },
  '3500': { de: 'Chiffrierzertifikat des Clients ist zeitlich ungültig', en: 'Encryption certificate of the client is invalid with regard to time' },
  '3501': { de: 'Prüfung des Chiffrierzertifikats des Clients konnte nicht vollständig durchgeführt werden', en: "Check of the client's encryption certificate could not be performed completely" },
  '3700': { de: 'Signierzertifikat des Clients ist zeitlich ungültig', en: 'Signature certificate of the client is invalid with regard to time' },
  '3701': { de: 'Signierzertifikat eines Autors ist zeitlich ungültig', en: 'Signature certificate of one of the authors is invalid with regard to time' },
  '3702': { de: 'Signatur über das Signierzertifikat eines Autors ist fehlerhaft', en: 'Signature over the signature certificate of one of the authors is invalid' },
  '3703': { de: 'Signierzertifikat eines Autors ist widerrufen', en: 'Signature certificate of one of the authors has been revoked' },
  '3704': { de: 'Chiffrierzertifikat eines Autors ist zeitlich ungültig', en: 'Encryption certificate of one of the authors is invalid with regard to time' },
  '3705': { de: 'Chiffrierzertifikat des Empfängers ist zeitlich ungültig', en: 'Encryption certificate of the recipient is invalid with regard to time' },
  '3706': { de: 'Chiffrierzertifikat eines Lesers ist zeitlich ungültig', en: 'Encryption certificate of one of the readers is invalid with regard to time' },
  '3707': { de: 'Zertifikatsprüfung konnte nicht vollständig durchgeführt werden', en: 'Certificate check could not be performed completely' },
  '3708': { de: 'Signierzertifikat des Empfängers ist zeitlich ungültig', en: 'Signature certificate of the recipient is invalid with regard to time' },
  '3800': { de: 'Es liegen weitere Zustellungen für diesen Client vor', en: 'There are further deliveries present for this client' },
  '3801': { de: 'Zu den im Auftrag angegebenen Kriterien liegen weitere Laufzettel vor', en: 'There are further process cards present that meet the criteria given in the request' },
  '3802': { de: 'Signatur des Empfängers über die Annahme- bzw. Bearbeitungsantwort fehlt', en: 'Signature of the recipient over the acceptance response or processing response is missing' },
  '3803': { de: 'Der Empfänger hat eine unverschlüsselte Auftragsantwort gesendet', en: 'Recipient has sent an unencrypted response message' },
  '3950': { de: 'Rückmeldungen für die Verarbeitung der Gesamtnachricht vorhanden', en: 'There is inside feedback for the processed inner message' },
  '3951': { de: 'Maximale Wartezeit für die Verarbeitung der Gesamtnachricht überschritten', en: 'Reached maximum processing time of the inner message' },
  '3952': { de: 'Innere Nachricht befindet sich noch in Verarbeitung', en: 'Inner message is still in processing' },
  '9000': { de: 'Interner Fehler beim Supplier', en: "Internal error at the supplier's" },
  '9100': { de: 'Empfangene Nachricht stellt keine gültige OSCI-Nachricht dar', en: 'Received message is no valid OSCI message' },
  '9200': { de: 'Supplier verfügt nicht über den privaten Schlüssel zum Chiffrierzertifikat auf Nachrichtenebene', en: 'Supplier does not have the private key for the encryption certificate on the message level at his disposal' },
  '9201': { de: 'Chiffrierzertifikat auf Nachrichtenebene ist widerrufen', en: 'Encryption certificate on the message level has been revoked' },
  '9202': { de: 'Auftragsdaten konnten nicht entschlüsselt werden', en: 'Request data could not be decrypted' },
  '9300': { de: 'Auftragsdaten stellen keinen gültigen Auftrag dar', en: 'Request data do not represent a valid request' },
  '9400': { de: 'ConversationId oder SequenceNumber oder Response nicht korrekt', en: 'ConversationId or SequenceNumber or response value are not correct' },
  '9500': { de: 'Chiffrierzertifikat des Clients ist nicht in den Auftragsdaten enthalten', en: 'Encryption certificate of the client is not included in the request data' },
  '9501': { de: 'Signatur über das Chiffrierzertifikat des Clients ist fehlerhaft', en: 'Signature on the encryption certificate of the client is invalid' },
  '9502': { de: 'Chiffrierzertifikat des Clients ist widerrufen', en: 'Encryption certificate of the client has been revoked' },
  '9503': { de: 'Interner Fehler des Suppliers beim Ermitteln oder Prüfen des Chiffrierzertifikats', en: "Internal error at the supplier's when determining or checking the encryption certificate" },
  '9600': { de: 'Auftrag ist nicht signiert, obwohl dieser Supplier für diesen Auftragstyp eine Signatur verlangt', en: 'Request has not been signed, although this supplier demands signature for this request type' },
  '9601': { de: 'Signatur über Auftrag ist fehlerhaft', en: 'Signature for request is invalid' },
  '9602': { de: 'Es sind nicht alle geforderten Elemente des Auftrags signiert', en: 'Not all of the required elements of the request have been signed.' },
  '9603': { de: 'Interner Fehler des Suppliers beim Prüfen der Signatur', en: "Internal error at the supplier's when checking the signature" },
  '9700': { de: 'Signatur über das Signierzertifikat des Clients ist fehlerhaft', en: 'Signature over the signature certificate of the client is invalid' },
  '9701': { de: 'Signierzertifikat des Clients ist widerrufen', en: 'Signature certificate of the client has been revoked' },
  '9704': { de: 'Signatur über das Chiffrierzertifikat eines Autors ist fehlerhaft', en: 'Signature over the encryption certificate of one of the authors is invalid' },
  '9705': { de: 'Chiffrierzertifikat eines Autors ist widerrufen', en: 'Encryption certificate of one of the authors has been revoked' },
  '9706': { de: 'Signatur über das Chiffrierzertifikat des Empfängers ist fehlerhaft', en: 'Signature over the encryption certificate of the recipient is invalid' },
  '9707': { de: 'Chiffrierzertifikat des Empfängers ist widerrufen', en: 'Encryption certificate of the recipient has been revoked' },
  '9708': { de: 'Signatur über das Chiffrierzertifikat eines Lesers ist fehlerhaft', en: 'Signature over the encryption certificate of one of the readers is invalid' },
  '9709': { de: 'Chiffrierzertifikat eines Lesers ist widerrufen', en: 'Encryption certificate of one of the readers has been revoked' },
  '9710': { de: 'Interner Fehler des Suppliers bei der Zertifikatsprüfung', en: "Internal error at the supplier's when performing the certificate check" },
  '9711': { de: 'Signatur über das Signierzertifikat des Empfängers ist fehlerhaft', en: 'Signature over the signature certificate of the recipient is invalid' },
  '9712': { de: 'Signierzertifikat des Empfängers ist widerrufen', en: 'Signature certificate of the recipient has been revoked' },
  '9800': { de: 'Annahme der Zustellung ohne MessageId verweigert', en: 'Acceptance of delivery without MessageId rejected' },
  '9801': { de: 'Illegale MessageId (MessageId wurde nicht von diesem Supplier erzeugt oder MessageId wurde schon einmal verwendet)', en: 'Illegal MessageId (MessageId was not generated by this supplier or MessageId has already been used)' },
  '9802': { de: 'Auftrag nicht innerhalb eines expliziten Dialogs gesendet, obwohl dies für diesen Auftragstyp gefordert ist', en: 'Request has not been sent within an explicit dialog, although this is demanded for this request type' },
  '9803': { de: 'Zu den im Auftrag angegebenen Kriterien ist keine Zustellung vorhanden', en: 'There is no delivery present that meets the criteria given in the request' },
  '9804': { de: 'Zu den im Auftrag angegebenen Kriterien ist kein Laufzettel vorhanden', en: 'There is no process card present that meets the criteria given in the request' },
  '9805': { de: 'Empfänger hat Zustellung des Senders nicht angenommen', en: 'Delivery of the sender has not been accepted by the recipient' },
  '9806': { de: 'Empfänger hat Zustellung des Senders angenommen, seine Auftragsantwort enthält aber keine Zustellung an den Sender', en: 'Delivery of the sender has been accepted by the recipient, but his response does not contain any delivery to the sender' },
  '9807': { de: 'Signatur des Empfängers über die Annahme- bzw. Bearbeitungsantwort fehlerhaft', en: 'Signature of the recipient over the acceptance response or processing response is invalid' },
  '9808': { de: 'Interner Fehler des Empfängers', en: "Internal error at the recipient's" },
  '9809': { de: 'Interner Fehler des Intermediärs bei Weiterleitungs- oder Abwicklungsauftrag, Zustellung hat den Empfänger nicht erreicht', en: "Internal error at the intermediary's during forwarding or mediate delivery request. Delivery has not reached the recipient." },
  '9810': { de: 'Interner Fehler des Intermediärs bei Weiterleitungs- oder Abwicklungsauftrag, Zustellung hat den Empfänger erreicht', en: "Internal error at the intermediary's during forwarding or mediate delivery request. Delivery has reached the recipient." },
  '9811': { de: 'Interner Fehler des Suppliers bei der Ausführung des Auftrags', en: "Internal error at the supplier's when executing the request" },
  '9900': { de: 'Nachrichten-Chunk doppelt eingereicht', en: 'Chunk already exists' },
  '9901': { de: 'Falsche Chunk-Nummer', en: 'Wrong chunk number' },
  '9902': { de: 'Maximale Chunk-Größe überschritten', en: 'Maximum chunk size exceeded' },
  '9903': { de: 'Minimale Chunk-Größe unterschritten', en: 'Minimum chunk size not reached' },
  '9904': { de: 'Maximale Nachrichtengröße überschritten', en: 'Maximum message size exceeded' },
  '9905': { de: 'Falsche Chunk-Informationen', en: 'Wrong chunk information' },
} as const satisfies Record<string, { de: string; en: string }>);

export type FeedbackCode = keyof typeof FEEDBACK_CODES;

export interface FeedbackEntry {
  code: FeedbackCode;
  lang: FeedbackLang;
  text: string;
}

export function isFeedbackCode(code: string): code is FeedbackCode {
  return Object.prototype.hasOwnProperty.call(FEEDBACK_CODES, code);
}

/** One `Feedback/Entry` in the given language. Unknown codes are refused (never invent a text). */
export function feedbackEntry(code: FeedbackCode, lang: FeedbackLang = 'de'): FeedbackEntry {
  const texts = FEEDBACK_CODES[code];
  if (texts === undefined) throw new RangeError(`unknown OSCI feedback code ${String(code)}`);
  return { code, lang, text: texts[lang] };
}

/**
 * Picks the response language from `DesiredLanguages@LanguagesList` (space-separated xsd:language
 * values, most preferred first). German is the default of OSCI 1.2.
 */
export function pickLanguage(desired: readonly string[] | string | undefined): FeedbackLang {
  const list = typeof desired === 'string' ? desired.split(/\s+/) : (desired ?? []);
  for (const tag of list) {
    const primary = tag.trim().toLowerCase().split('-')[0];
    if (primary === 'de' || primary === 'en') return primary;
  }
  return 'de';
}

export type FeedbackSeverity = 'success' | 'warning' | 'error';

export function feedbackSeverity(code: FeedbackCode): FeedbackSeverity {
  if (code.startsWith('0')) return 'success';
  if (code.startsWith('3')) return 'warning';
  return 'error';
}

/**
 * 'message': errors on the message level (9000–9503: not a valid OSCI message, cannot decrypt,
 * ControlBlock, client cipher certificate); the supplier answers with a soap:Fault.
 * 'order': everything else; carried as Feedback inside the regular response.
 */
export function feedbackLevel(code: FeedbackCode): 'message' | 'order' {
  const n = Number(code);
  return n >= 9000 && n <= 9503 ? 'message' : 'order';
}
