/**
 * Typed OSCI 1.2 message model (osci-protocol.md §1–8; element shapes from osci-reference/schema).
 * One discriminated union `OsciMessage` over every message type; `type` is the discriminant.
 * Values are kept in their XSD lexical form where a round trip must be exact (dateTime, base64, codes).
 */
import type { ProcessCardBundle } from './processcard.ts';

export type {
  Inspection,
  OnlineResult,
  ProcessCard,
  ProcessCardBundle,
  ProcessCardProfile,
  Timestamp,
} from './processcard.ts';

export type Presence = 'required' | 'optional' | 'prohibited';

export const REQUEST_TYPES = [
  'initDialog',
  'exitDialog',
  'getMessageId',
  'storeDelivery',
  'fetchDelivery',
  'fetchProcessCard',
  'forwardDelivery',
  'acceptDelivery',
  'mediateDelivery',
  'processDelivery',
] as const;

export const RESPONSE_TYPES = [
  'responseToInitDialog',
  'responseToExitDialog',
  'responseToGetMessageId',
  'responseToStoreDelivery',
  'responseToFetchDelivery',
  'responseToFetchProcessCard',
  'responseToForwardDelivery',
  'responseToAcceptDelivery',
  'responseToMediateDelivery',
  'responseToProcessDelivery',
] as const;

export type RequestType = (typeof REQUEST_TYPES)[number];
export type ResponseType = (typeof RESPONSE_TYPES)[number];
/** Order and response types plus the two header-less envelopes. */
export type MessageType = RequestType | ResponseType | 'fault' | 'soapMessageEncrypted';

/** osci:ControlBlock (§2). Which fields are required/prohibited depends on the message type (<Type>.xsd). */
export interface ControlBlock {
  /** osci:Number (\d+), assigned by the supplier; kept as string (opaque, may exceed 2^53). */
  conversationId?: string;
  sequenceNumber?: number;
  response?: string;
  challenge?: string;
}

export type TimestampQuality = 'plain' | 'cryptographic';

/** The two QualityOfTimestamp header blocks, keyed by their @Service. */
export interface QualityOfTimestamp {
  creation: TimestampQuality;
  reception: TimestampQuality;
}

export const CERTIFICATE_ROLES = ['originator', 'addressee', 'otherAuthor', 'otherReader', 'intermediary'] as const;
export type CertificateRole = (typeof CERTIFICATE_ROLES)[number];
export type CertificateUsage = 'cipher' | 'signature';

/**
 * One {Cipher|Signature}Certificate{Originator|…} element of the (Non)IntermediaryCertificates blocks.
 * `id` is its Id attribute; the reference library uses `<role>_<usage>_<hex SHA-256 of der>` (see certificateId()).
 * Certificates here are data only; trust comes from the caller's configuration, never from the message.
 */
export interface Certificate {
  role: CertificateRole;
  usage: CertificateUsage;
  der: Buffer;
  id: string;
}

/** osci:Feedback/osci:Entry (§8). `code` keeps leading zeros ("0800"). */
export interface FeedbackEntry {
  lang?: string;
  code: string;
  text: string;
}

/** osci2017:FeatureDescription (EFFI.xsd) the reference library appends to every header. */
export interface FeatureDescription {
  features: { key: string; version: string }[];
  maxChunkSize?: number;
  maxMessageSize?: number;
  minChunkSize?: number;
  chunkMessageTimeOut?: number;
}

/**
 * osci:ContentPackage: the end-to-end content, opaque to the intermediary. Each entry is one serialized,
 * namespace-complete element (`xenc:EncryptedData` resp. `osci:ContentContainer`), in document order.
 * The live DOM element is in ParsedSoap.contentPackage for decryption and signature checks.
 */
export interface ContentPackage {
  encryptedData: string[];
  contentContainers: string[];
}

/**
 * Foreign header blocks relayed end to end (e.g. XTA/OSCI-2 MessageMetaData): soap<Type>.xsd closes every Header
 * with `xsd:any namespace="##other" processContents="lax"`. Each entry is one serialized, namespace-complete
 * element with an unqualified Id (the Client/SupplierSignature references it), in document order; never an
 * element of the osci, osci2017, soap, ds or xenc namespaces, never mustUnderstand="1".
 */
export interface ExtraHeaders {
  extraHeaders?: string[];
}

/** fetchDelivery SelectionRule (order.xsd SelectionRule). */
export type DeliverySelection = { by: 'messageId'; messageId: string } | { by: 'receptionOfDelivery'; dateTime: string };

/** fetchProcessCard SelectionRule (FetchProcessCard.xsd). */
export type ProcessCardSelection =
  | { by: 'messageId'; messageIds: string[] }
  | {
      by: 'receptionOfDelivery' | 'recentModification';
      dateTime: string;
      noReception?: boolean;
      role?: 'Addressee' | 'Originator';
    };

interface RequestBase {
  controlBlock: ControlBlock;
  /** DesiredLanguages@LanguagesList (xsd:language list, at least one). */
  desiredLanguages: string[];
  /**
   * Both *Certificates blocks in one list, in template order (IntermediaryCertificates: cipher, signature;
   * NonIntermediaryCertificates: cipher originator, other authors, addressee, other readers, then signature
   * originator, other authors, addressee). The builder writes that order; the parser returns it.
   */
  certificates: Certificate[];
  featureDescription?: FeatureDescription;
}

interface ResponseBase {
  controlBlock: ControlBlock;
  certificates: Certificate[];
  featureDescription?: FeatureDescription;
}

export interface InitDialog extends RequestBase { type: 'initDialog' }
export interface ExitDialog extends RequestBase { type: 'exitDialog' }
export interface GetMessageId extends RequestBase { type: 'getMessageId' }

export interface StoreDelivery extends RequestBase, ExtraHeaders {
  type: 'storeDelivery';
  qualityOfTimestamp: QualityOfTimestamp;
  messageId: string;
  subject?: string;
  contentPackage: ContentPackage;
}

/** osci:fetchDelivery is a header block; the Body is empty. */
export interface FetchDelivery extends RequestBase {
  type: 'fetchDelivery';
  selection?: DeliverySelection;
}

export interface FetchProcessCard extends RequestBase {
  type: 'fetchProcessCard';
  selection?: ProcessCardSelection;
  /** Quantity@Limit (positiveInteger). */
  quantityLimit?: number;
}

export interface ForwardDelivery extends RequestBase, ExtraHeaders {
  type: 'forwardDelivery';
  qualityOfTimestamp: QualityOfTimestamp;
  /** ContentReceiver@URI of the passive recipient. */
  contentReceiver: string;
  messageId: string;
  subject?: string;
  contentPackage: ContentPackage;
}

export interface MediateDelivery extends RequestBase, ExtraHeaders {
  type: 'mediateDelivery';
  qualityOfTimestamp: Partial<QualityOfTimestamp>;
  contentReceiver: string;
  messageId?: string;
  /** Only together with messageId (MediateDelivery.xsd). */
  subject?: string;
  contentPackage: ContentPackage;
}

/** Intermediary → passive recipient (§1). */
export interface AcceptDelivery extends RequestBase, ExtraHeaders {
  type: 'acceptDelivery';
  processCardBundle: ProcessCardBundle;
  contentPackage: ContentPackage;
}

export interface ProcessDelivery extends RequestBase, ExtraHeaders {
  type: 'processDelivery';
  messageIdResponse?: string;
  processCardBundle?: ProcessCardBundle;
  contentPackage: ContentPackage;
}

export interface ResponseToInitDialog extends ResponseBase { type: 'responseToInitDialog'; feedback: FeedbackEntry[] }
export interface ResponseToExitDialog extends ResponseBase { type: 'responseToExitDialog'; feedback: FeedbackEntry[] }

export interface ResponseToGetMessageId extends ResponseBase {
  type: 'responseToGetMessageId';
  feedback: FeedbackEntry[];
  messageId?: string;
}

export interface ResponseToStoreDelivery extends ResponseBase {
  type: 'responseToStoreDelivery';
  feedback: FeedbackEntry[];
  processCardBundle?: ProcessCardBundle;
}

export interface ResponseToFetchDelivery extends ResponseBase, ExtraHeaders {
  type: 'responseToFetchDelivery';
  feedback: FeedbackEntry[];
  /** Echo of the request's SelectionRule (responseToFetchDelivery/fetchDelivery). */
  selection?: DeliverySelection;
  processCardBundle?: ProcessCardBundle;
  contentPackage?: ContentPackage;
}

export interface ResponseToFetchProcessCard extends ResponseBase {
  type: 'responseToFetchProcessCard';
  feedback: FeedbackEntry[];
  /** Echo of the request's SelectionRule and Quantity (responseToFetchProcessCard/fetchProcessCard). */
  selection?: ProcessCardSelection;
  quantityLimit?: number;
  processCardBundles: ProcessCardBundle[];
}

export interface ResponseToForwardDelivery extends ResponseBase {
  type: 'responseToForwardDelivery';
  feedback: FeedbackEntry[];
  processCardBundle?: ProcessCardBundle;
}

export interface ResponseToAcceptDelivery extends ResponseBase {
  type: 'responseToAcceptDelivery';
  feedback: FeedbackEntry[];
}

export interface ResponseToMediateDelivery extends ResponseBase, ExtraHeaders {
  type: 'responseToMediateDelivery';
  feedback: FeedbackEntry[];
  requestProcessCardBundle?: ProcessCardBundle;
  /** Only together with requestProcessCardBundle. */
  replyProcessCardBundle?: ProcessCardBundle;
  contentPackage?: ContentPackage;
}

export interface ResponseToProcessDelivery extends ResponseBase, ExtraHeaders {
  type: 'responseToProcessDelivery';
  qualityOfTimestamp: Partial<QualityOfTimestamp>;
  feedback: FeedbackEntry[];
  messageId?: string;
  /** Only together with messageId. */
  subject?: string;
  contentPackage?: ContentPackage;
}

export const FAULT_CODES = ['Client', 'Server', 'VersionMismatch', 'MustUnderstand'] as const;

/** soap:Fault carrying an osci:Code in detail ([J] SOAPFault.java; soapMessageFault.xsd). */
export interface SoapFault {
  type: 'fault';
  /** Local part of faultcode in the SOAP namespace: 9000/9503 are Server, the rest Client. */
  faultCode: (typeof FAULT_CODES)[number];
  faultString: string;
  faultActor?: string;
  /** osci:Code (Number) from detail. */
  oscicode?: string;
}

/** Transport wrapper (§5): header-less envelope with one xenc:EncryptedData, serialized namespace-complete. */
export interface SoapMessageEncrypted {
  type: 'soapMessageEncrypted';
  encryptedData: string;
}

export type OsciMessage =
  | InitDialog
  | ExitDialog
  | GetMessageId
  | StoreDelivery
  | FetchDelivery
  | FetchProcessCard
  | ForwardDelivery
  | AcceptDelivery
  | MediateDelivery
  | ProcessDelivery
  | ResponseToInitDialog
  | ResponseToExitDialog
  | ResponseToGetMessageId
  | ResponseToStoreDelivery
  | ResponseToFetchDelivery
  | ResponseToFetchProcessCard
  | ResponseToForwardDelivery
  | ResponseToAcceptDelivery
  | ResponseToMediateDelivery
  | ResponseToProcessDelivery
  | SoapFault
  | SoapMessageEncrypted;

export type OsciMessageOf<T extends MessageType> = Extract<OsciMessage, { type: T }>;
