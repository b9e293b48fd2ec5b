/**
 * Encoding an OSCI message for the wire (osci-protocol.md §4–6, §11): SOAP envelope, Client/SupplierSignature
 * over every header block, the Body and every attachment, MIME multipart/related with the entity headers at the
 * start of the body (as the reference library writes it), optionally wrapped in transport encryption (§5).
 * Attachments are streamed twice (digest, then output), never held in memory.
 */
import { OsciError, toOsciError } from '../errors.ts';
import { binaryPartHeaders, soapPartHeaders, writeMultipart, type MultipartPartInput } from '../mime.ts';
import type { OsciMessage } from '../model.ts';
import { buildSoap } from '../soap-build.ts';
import { assertContentId, signEnvelope, withSignerCertificate } from './signatures.ts';
import { encryptTransport, OSCI_ENC_CID } from './transport.ts';
import { encodedFrom, type EncodedMessage, type EncodeOptions } from './types.ts';

const RESERVED_CIDS = new Set(['osci@message', OSCI_ENC_CID]);

/**
 * A soap:Fault is never signed (soapMessageFault.xsd has no header): `signer` is ignored for it. Every other
 * message type is signed when `signer` is given, with the signer's certificate added to the message's
 * certificate list under the signer's role when it is missing.
 */
export async function encodeMessage(msg: OsciMessage, opts: EncodeOptions): Promise<EncodedMessage> {
  try {
    const attachments = opts.attachments ?? [];
    const seen = new Set<string>();
    for (const a of attachments) {
      if (RESERVED_CIDS.has(a.contentId) || seen.has(a.contentId)) {
        throw new OsciError('ERR_USAGE', `attachment Content-ID "${a.contentId}" is reserved or given twice`);
      }
      assertContentId(a.contentId);
      if (!Number.isSafeInteger(a.size) || a.size < 0) throw new OsciError('ERR_USAGE', `attachment ${a.contentId}: invalid size`);
      seen.add(a.contentId);
    }
    if (msg.type === 'soapMessageEncrypted') throw new OsciError('ERR_USAGE', 'encode the inner message; transport encryption is encryptFor');

    const sign = opts.signer && msg.type !== 'fault' ? opts.signer : undefined;
    let model: OsciMessage = msg;
    let certId: string | undefined;
    if (sign) ({ message: model, certId } = withSignerCertificate(msg, sign.cert));
    const built = buildSoap(model, { attachments: attachments.map((a) => a.contentId), signaturePlaceholder: sign !== undefined });
    if (sign && certId !== undefined) {
      await signEnvelope(built, {
        key: sign.key,
        certId,
        ...(opts.signatureAlgorithm !== undefined ? { signatureAlgorithm: opts.signatureAlgorithm } : {}),
        ...(opts.policy ? { policy: opts.policy } : {}),
        attachments,
      });
    }
    const soap = Buffer.from(built.xml(), 'utf8');
    const parts: MultipartPartInput[] = [
      { headers: soapPartHeaders(), body: soap },
      ...attachments.map((a) => ({ headers: binaryPartHeaders(a.contentId, a.size, a.contentType), body: () => a.open() })),
    ];
    if (opts.encryptFor) return encryptTransport(parts, { recipient: opts.encryptFor, ...(opts.policy ? { policy: opts.policy } : {}) });
    return encodedFrom(writeMultipart(parts, { includeTopHeaders: true }));
  } catch (e) {
    throw toOsciError(e);
  }
}
