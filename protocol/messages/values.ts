/** XSD lexical checks for the OSCI simple types (order.xsd); failures are ERR_SOAP_MALFORMED unless told otherwise. */
import { OsciError } from '../errors.ts';

type ValueErrorCode = 'ERR_SOAP_MALFORMED' | 'ERR_CONTROLBLOCK';

function bad(what: string, v: string, code: ValueErrorCode = 'ERR_SOAP_MALFORMED'): never {
  throw new OsciError(code, `${what}: invalid value "${v.length > 60 ? `${v.slice(0, 60)}…` : v}"`);
}

/** osci:Number = NMTOKEN with pattern \d+ (ConversationId, SequenceNumber, Feedback Code). */
export function numberToken(v: string, what: string, code: ValueErrorCode = 'ERR_SOAP_MALFORMED'): string {
  const t = v.trim();
  if (!/^\d+$/.test(t)) bad(what, v, code);
  return t;
}

/** osci:Number that must fit a JS safe integer (SequenceNumber). */
export function numberValue(v: string, what: string, code: ValueErrorCode = 'ERR_SOAP_MALFORMED'): number {
  const n = Number(numberToken(v, what, code));
  if (!Number.isSafeInteger(n)) bad(what, v, code);
  return n;
}

/** xsd:positiveInteger as a safe integer (Quantity@Limit, FeatureDescription sizes). */
export function positiveInteger(v: string, what: string): number {
  const t = v.trim();
  if (!/^\+?\d+$/.test(t)) bad(what, v);
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < 1) bad(what, v);
  return n;
}

/** xsd:integer kept as a decimal string (X509SerialNumber may exceed 2^53). */
export function integerString(v: string, what: string): string {
  const t = v.trim();
  if (!/^[+-]?\d+$/.test(t)) bad(what, v);
  return t;
}

/** xsd:base64Binary (whitespace removed); `nonEmpty` for MessageIds. */
export function base64(v: string, what: string, nonEmpty = false): string {
  const t = v.replace(/[\t\n\r ]+/g, '');
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) bad(what, v);
  if (nonEmpty && t.length === 0) bad(what, v);
  return t;
}

const DATE_TIME = /^-?\d{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?$/;

/** xsd:dateTime, kept in its lexical form. */
export function dateTime(v: string, what: string): string {
  const t = v.trim();
  if (!DATE_TIME.test(t)) bad(what, v);
  return t;
}

/** xsd:boolean. */
export function boolean(v: string, what: string): boolean {
  const t = v.trim();
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  return bad(what, v);
}

/** xsd:language (RFC 3066 shape). */
export function language(v: string, what: string): string {
  if (!/^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$/.test(v)) bad(what, v);
  return v;
}

/** One value out of a closed enumeration. */
export function oneOf<T extends string>(v: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(v)) bad(what, v);
  return v as T;
}

/** xsd:anyURI, kept as given (no whitespace inside). */
export function anyUri(v: string, what: string): string {
  const t = v.trim();
  if (/\s/.test(t)) bad(what, v);
  return t;
}
