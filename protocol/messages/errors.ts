/**
 * Errors of the SOAP message model. Narrow local type until protocol/errors.ts (OsciError) exists;
 * codes are stable and meant to move there unchanged.
 */
export const SOAP_ERROR_CODES = [
  'ERR_SOAP_STRUCTURE', // element order, cardinality, missing/wrong required attribute, stray text
  'ERR_SOAP_UNKNOWN_TYPE', // Header/Body match no OSCI 1.2 message type
  'ERR_SOAP_VALUE', // a value outside its XSD lexical space (Number, base64Binary, dateTime, enumeration)
  'ERR_SOAP_MODEL', // buildSoap was handed a model the message type does not admit
] as const;

export type SoapErrorCode = (typeof SOAP_ERROR_CODES)[number];

export class SoapError extends Error {
  override readonly name = 'SoapError';
  constructor(
    readonly code: SoapErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isSoapError(e: unknown): e is SoapError {
  return e instanceof SoapError;
}
