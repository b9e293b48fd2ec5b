/**
 * Per-message-type envelope rules, transcribed from osci-reference/schema soap<Type>.xsd and <Type>.xsd
 * (osci-protocol.md §4). Header order for every order/response:
 *   ControlBlock, Client|SupplierSignature?, DesiredLanguages (orders only), QualityOfTimestamp*,
 *   type header block?, IntermediaryCertificates?, NonIntermediaryCertificates?, ##other*.
 */
import type { CertificateRole, CertificateUsage, Presence, RequestType, ResponseType } from '../model.ts';
import { PROCESS_CARD_PROFILES } from '../processcard.ts';

export type SlotKey = `${CertificateUsage}:${CertificateRole}`;

export interface CertSlot {
  usage: CertificateUsage;
  role: CertificateRole;
  /** Element local name, e.g. CipherCertificateOriginator. */
  name: string;
  max: number;
}

function slot(usage: CertificateUsage, role: CertificateRole, max = 1): CertSlot {
  const r = role[0]!.toUpperCase() + role.slice(1);
  return { usage, role, max, name: `${usage === 'cipher' ? 'Cipher' : 'Signature'}Certificate${r}` };
}

/** order.xsd NonIntermediaryCertificatesTemplate, in sequence order. */
export const NON_INTERMEDIARY_SLOTS: readonly CertSlot[] = [
  slot('cipher', 'originator'),
  slot('cipher', 'otherAuthor', Infinity),
  slot('cipher', 'addressee'),
  slot('cipher', 'otherReader', Infinity),
  slot('signature', 'originator'),
  slot('signature', 'otherAuthor', Infinity),
  slot('signature', 'addressee'),
];

/** order.xsd IntermediaryCertificatesTemplate, in sequence order. */
export const INTERMEDIARY_SLOTS: readonly CertSlot[] = [slot('cipher', 'intermediary'), slot('signature', 'intermediary')];

export interface CertBlockSpec {
  block: 'required' | 'optional';
  allowed: readonly SlotKey[];
  required?: readonly SlotKey[];
}

export interface ControlBlockSpec {
  conversationId: Presence;
  sequenceNumber: Presence;
  response: Presence;
  challenge: Presence;
}

export interface TypeSpec {
  xsd: string;
  kind: 'request' | 'response';
  controlBlock: ControlBlockSpec;
  qualityOfTimestamp: 'none' | 'both' | 'upToTwo';
  /** Type element carried as a SOAP header block (e.g. osci:storeDelivery). */
  headerBlock?: string;
  /** Type element carried as the Body's only child (e.g. osci:initDialog). */
  bodyBlock?: string;
  /** osci:ContentPackage in the Body. */
  content?: 'required' | 'optional';
  intermediaryCertificates?: CertBlockSpec;
  nonIntermediaryCertificates?: CertBlockSpec;
}

const ALL_NON_INTERMEDIARY: readonly SlotKey[] = NON_INTERMEDIARY_SLOTS.map((s) => `${s.usage}:${s.role}` as SlotKey);
const SIG_INTERMEDIARY: CertBlockSpec = { block: 'optional', allowed: ['signature:intermediary'] };
const FULL_NIC: CertBlockSpec = { block: 'optional', allowed: ALL_NON_INTERMEDIARY };

const R: Presence = 'required';
const O: Presence = 'optional';
const P: Presence = 'prohibited';
const cb = (conversationId: Presence, sequenceNumber: Presence, response: Presence, challenge: Presence): ControlBlockSpec => ({
  conversationId,
  sequenceNumber,
  response,
  challenge,
});

export const TYPE_SPECS: Readonly<Record<RequestType | ResponseType, TypeSpec>> = Object.freeze({
  initDialog: {
    xsd: 'soapInitDialog.xsd',
    kind: 'request',
    controlBlock: cb(P, P, P, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'initDialog',
    nonIntermediaryCertificates: { block: 'required', allowed: ['cipher:originator', 'signature:originator'], required: ['cipher:originator'] },
  },
  exitDialog: {
    xsd: 'soapExitDialog.xsd',
    kind: 'request',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'exitDialog',
    nonIntermediaryCertificates: { block: 'optional', allowed: ['signature:originator'] },
  },
  getMessageId: {
    xsd: 'soapGetMessageId.xsd',
    kind: 'request',
    controlBlock: cb(O, R, O, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'getMessageId',
    nonIntermediaryCertificates: { block: 'optional', allowed: ['cipher:originator', 'signature:originator'] },
  },
  storeDelivery: {
    xsd: 'soapStoreDelivery.xsd',
    kind: 'request',
    controlBlock: cb(O, R, O, R),
    qualityOfTimestamp: 'both',
    headerBlock: 'storeDelivery',
    content: 'required',
    nonIntermediaryCertificates: {
      block: 'required',
      allowed: ['cipher:originator', 'cipher:otherAuthor', 'cipher:addressee', 'cipher:otherReader', 'signature:originator', 'signature:otherAuthor'],
      required: ['cipher:addressee'],
    },
  },
  fetchDelivery: {
    xsd: 'soapFetchDelivery.xsd',
    kind: 'request',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    headerBlock: 'fetchDelivery',
    nonIntermediaryCertificates: { block: 'optional', allowed: ['signature:originator'] },
  },
  fetchProcessCard: {
    xsd: 'soapFetchProcessCard.xsd',
    kind: 'request',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'fetchProcessCard',
    nonIntermediaryCertificates: { block: 'optional', allowed: ['signature:originator'] },
  },
  forwardDelivery: {
    xsd: 'soapForwardDelivery.xsd',
    kind: 'request',
    controlBlock: cb(O, R, O, R),
    qualityOfTimestamp: 'both',
    headerBlock: 'forwardDelivery',
    content: 'required',
    nonIntermediaryCertificates: FULL_NIC,
  },
  mediateDelivery: {
    xsd: 'soapMediateDelivery.xsd',
    kind: 'request',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'upToTwo',
    headerBlock: 'mediateDelivery',
    content: 'required',
    nonIntermediaryCertificates: FULL_NIC,
  },
  acceptDelivery: {
    xsd: 'soapAcceptDelivery.xsd',
    kind: 'request',
    controlBlock: cb(P, P, P, R),
    qualityOfTimestamp: 'none',
    headerBlock: 'acceptDelivery',
    content: 'required',
    intermediaryCertificates: { block: 'optional', allowed: ['cipher:intermediary', 'signature:intermediary'] },
    nonIntermediaryCertificates: FULL_NIC,
  },
  processDelivery: {
    xsd: 'soapProcessDelivery.xsd',
    kind: 'request',
    controlBlock: cb(P, P, P, R),
    qualityOfTimestamp: 'none',
    headerBlock: 'processDelivery',
    content: 'required',
    intermediaryCertificates: { block: 'optional', allowed: ['cipher:intermediary', 'signature:intermediary'] },
    nonIntermediaryCertificates: FULL_NIC,
  },
  responseToInitDialog: {
    xsd: 'soapResponseToInitDialog.xsd',
    kind: 'response',
    controlBlock: cb(R, P, R, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'responseToInitDialog',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToExitDialog: {
    xsd: 'soapResponseToExitDialog.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, P),
    qualityOfTimestamp: 'none',
    bodyBlock: 'responseToExitDialog',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToGetMessageId: {
    xsd: 'soapResponseToGetMessageId.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, O),
    qualityOfTimestamp: 'none',
    bodyBlock: 'responseToGetMessageId',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToStoreDelivery: {
    xsd: 'soapResponseToStoreDelivery.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, O),
    qualityOfTimestamp: 'none',
    headerBlock: 'responseToStoreDelivery',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToFetchDelivery: {
    xsd: 'soapResponseToFetchDelivery.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    headerBlock: 'responseToFetchDelivery',
    content: 'optional',
    intermediaryCertificates: SIG_INTERMEDIARY,
    nonIntermediaryCertificates: FULL_NIC,
  },
  responseToFetchProcessCard: {
    xsd: 'soapResponseToFetchProcessCard.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    bodyBlock: 'responseToFetchProcessCard',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToForwardDelivery: {
    xsd: 'soapResponseToForwardDelivery.xsd',
    kind: 'response',
    controlBlock: cb(O, O, R, O),
    qualityOfTimestamp: 'none',
    headerBlock: 'responseToForwardDelivery',
    intermediaryCertificates: SIG_INTERMEDIARY,
  },
  responseToAcceptDelivery: {
    xsd: 'soapResponseToAcceptDelivery.xsd',
    kind: 'response',
    controlBlock: cb(P, P, R, P),
    qualityOfTimestamp: 'none',
    headerBlock: 'responseToAcceptDelivery',
    nonIntermediaryCertificates: { block: 'optional', allowed: ['signature:addressee'] },
  },
  responseToMediateDelivery: {
    xsd: 'soapResponseToMediateDelivery.xsd',
    kind: 'response',
    controlBlock: cb(R, R, R, R),
    qualityOfTimestamp: 'none',
    headerBlock: 'responseToMediateDelivery',
    content: 'optional',
    intermediaryCertificates: SIG_INTERMEDIARY,
    nonIntermediaryCertificates: FULL_NIC,
  },
  responseToProcessDelivery: {
    xsd: 'soapResponseToProcessDelivery.xsd',
    kind: 'response',
    controlBlock: cb(P, P, R, P),
    qualityOfTimestamp: 'upToTwo',
    headerBlock: 'responseToProcessDelivery',
    content: 'optional',
    nonIntermediaryCertificates: FULL_NIC,
  },
});

export const FAULT_XSD = 'soapMessageFault.xsd';
export const ENCRYPTED_XSD = 'soapMessageEncrypted.xsd';

/** ProcessCard restrictions per message type (see processcard.ts). */
export const CARD_PROFILE = Object.freeze({
  acceptDelivery: PROCESS_CARD_PROFILES.delivered,
  processDelivery: PROCESS_CARD_PROFILES.delivered,
  responseToStoreDelivery: PROCESS_CARD_PROFILES.stored,
  responseToFetchDelivery: PROCESS_CARD_PROFILES.delivered,
  responseToFetchProcessCard: PROCESS_CARD_PROFILES.any,
  responseToForwardDelivery: PROCESS_CARD_PROFILES.any,
  responseToMediateDeliveryRequest: PROCESS_CARD_PROFILES.received,
  responseToMediateDeliveryReply: PROCESS_CARD_PROFILES.delivered,
});

/** Fixed lower-case Ids of the reference library ([J] OsciH.getRefID = element name lower-cased). */
export const FIXED_IDS = Object.freeze({
  controlBlock: 'controlblock',
  clientSignature: 'clientsignature',
  supplierSignature: 'suppliersignature',
  desiredLanguages: 'desiredlanguages',
  qualityOfTimestampCreation: 'qualityoftimestamp_creation',
  qualityOfTimestampReception: 'qualityoftimestamp_reception',
  intermediaryCertificates: 'intermediarycertificates',
  nonIntermediaryCertificates: 'nonintermediarycertificates',
  featureDescription: 'featuredescription',
  body: 'body',
});

/** xsi:schemaLocation the reference library writes and dispatches on ([J] OSCIEnvelopeBuilder). */
export function schemaLocation(xsd: string): string {
  return `http://schemas.xmlsoap.org/soap/envelope/ ${xsd} http://www.w3.org/2000/09/xmldsig# oscisig.xsd http://www.w3.org/2001/04/xmlenc# oscienc.xsd`;
}
