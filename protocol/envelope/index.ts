/**
 * The OSCI envelope codec (osci-protocol.md §4–6, §11): signatures, double envelope (transport and content
 * encryption), streaming MIME. Entry points: decodeMessage / encodeMessage (SOAP + signature + transport) and
 * sealContent / openContent (end-to-end content containers).
 */
export { decodeMessage, openMessage, responseCipherCertificate, type OpenedMessage, type OpenOptions } from './decode.ts';
export { encodeMessage } from './encode.ts';
export {
  contentPackageElement,
  openContent,
  sealContent,
  type ContainerSignature,
  type ContentInput,
  type OpenContentOptions,
  type OpenedContainer,
  type OpenedContent,
  type OpenedContentItem,
  type SealContentOptions,
  type SealedContent,
} from './content.ts';
export { carriedSignerCertificate, envelopeSignatures, signerSlot, verifyEnvelope, withSignerCertificate } from './signatures.ts';
export { decryptTransportPayload, encryptTransport, GCM_OVERHEAD, OSCI_ENC_CID, transportEncryptedData } from './transport.ts';
export type {
  DecodedAttachment,
  DecodedMessage,
  DecodeLimits,
  DecodeOptions,
  EncodedAttachment,
  EncodedMessage,
  EncodeOptions,
  SignatureInfo,
  SignatureSide,
  TransportKey,
} from './types.ts';
