/**
 * XML-DSig (https://www.w3.org/TR/xmldsig-core1/) restricted to the OSCI profile (osci-protocol.md §6, §9):
 * same-document `#id` and MIME `cid:` references only, C14N / enveloped-signature / base64 transforms only,
 * RSA PKCS#1 v1.5 and RSASSA-PSS on node:crypto. Verification takes its key from the caller's trust, never from
 * KeyInfo, and checks in this order (dependencies-and-security.md §2):
 *   A. layout: one SignedInfo, schema order of children, text-only DigestValue/SignatureValue (CVE-2025-29774/29775);
 *   B. algorithms through the closed registry and the call's policy;
 *   C. reference targets: `#id` or `cid:` only, the caller's expectations, Ids resolved in a duplicate-free index;
 *   D. SignatureValue over canonical SignedInfo with the trusted key;
 *   E. every reference digest.
 * Nothing from a reference is returned unless all of A–E passed.
 */
import { constants, KeyObject, X509Certificate, createPublicKey, sign as cryptoSign, verify as cryptoVerify, timingSafeEqual } from 'node:crypto';
import {
  C14NS,
  DEFAULT_POLICY,
  NS,
  resolveC14n,
  resolveDigest,
  resolveSignature,
  resolveTransform,
  type C14nAlg,
  type CryptoPolicy,
  type DigestAlg,
  type HashName,
  type SignatureAlg,
} from './algorithms.ts';
import { canonicalize } from './c14n.ts';
import { Base64Decoder, digestSource, digestString, type ByteSource } from './digest.ts';
import { CryptoError } from './errors.ts';
import {
  CDATA_SECTION_NODE,
  COMMENT_NODE,
  ELEMENT_NODE,
  PROCESSING_INSTRUCTION_NODE,
  TEXT_NODE,
  indexIds,
  parseXml,
  serializeXml,
  strictText,
  type Document,
  type Element,
  type Node,
} from './xml.ts';

export type { ByteSource };

export const EXC_C14N_NS = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const DEFAULT_ID_ATTRS: readonly string[] = Object.freeze(['Id', 'ID', 'id']);

export type SignReference =
  | { id: string; transforms?: readonly string[] }
  | {
      uri: string;
      data: ByteSource;
      transforms?: readonly string[];
      /** SHA-256 of `data` as the caller wrote it: used instead of reading `data` for a SHA-256 digest without transforms. */
      sha256?: Buffer;
    };

export type KeyInfoSpec = { retrievalMethod: { uri: string; type?: string } } | { x509Certificate: Buffer };

export interface SignOptions {
  /** Private RSA key. */
  key: KeyObject;
  /** Default rsa-sha256. */
  signatureAlgorithm?: string;
  /** For SignedInfo; default inclusive C14N 1.0 (OSCI). */
  c14nAlgorithm?: string;
  /** Default xmlenc#sha256. */
  digestAlgorithm?: string;
  references: readonly SignReference[];
  keyInfo?: KeyInfoSpec;
  /** Id attribute names (unqualified); default Id, ID, id. */
  idAttrs?: readonly string[];
  /** A pre-built Id index of `doc` (see indexIds). */
  ids?: Map<string, Element>;
  policy?: CryptoPolicy;
  /** Prefix of the ds elements; '' puts them in the default namespace. Default 'ds'. */
  prefix?: string;
  /**
   * Id references without explicit transforms carry the SignedInfo c14n algorithm as their one Transform, as OSCI
   * does (osci-protocol.md §6). Default true; false leaves them without Transforms (implicit inclusive C14N).
   */
  c14nTransformPerReference?: boolean;
  /** Add the enveloped-signature transform to Id references whose element contains the signature. */
  enveloped?: boolean;
}

export interface VerifyOptions {
  /** The caller's trust: a certificate, a public key, or a resolver that picks one (it may consult KeyInfo). */
  trust: X509Certificate | KeyObject | ((signature: Element) => Promise<X509Certificate | KeyObject>);
  policy?: CryptoPolicy;
  idAttrs?: readonly string[];
  /** Raw bytes of the MIME part with this Content-ID (the URI after `cid:`, RFC 2392 percent-decoded). */
  resolveCid?: (cid: string) => Promise<Buffer | AsyncIterable<Buffer> | undefined>;
  /**
   * SHA-256 of a MIME part's raw bytes that the caller computed itself while receiving it (never a value taken from
   * the message); used for a SHA-256 `cid:` reference without transforms instead of reading the part again.
   */
  cidSha256?: (cid: string) => Buffer | undefined;
  /** References the caller expects; any other is ERR_SIG_STRUCTURE. With exact, each listed one must be present. */
  expectedReferences?: { ids?: readonly string[]; cids?: readonly string[]; exact?: boolean };
  /** A pre-built Id index of `doc` (see indexIds). */
  ids?: Map<string, Element>;
}

export interface VerifiedReference {
  uri: string;
  kind: 'id' | 'cid';
  digestAlgorithm: string;
  transforms: string[];
  /** The element digested (kind 'id'). */
  element?: Element;
}

export interface VerifiedSignature {
  signatureAlgorithm: string;
  c14nAlgorithm: string;
  references: VerifiedReference[];
  /** Id → the element whose digest was verified; read signed data only from these. */
  signedElements: Map<string, Element>;
  /** The trusted certificate when trust was (or resolved to) a certificate. */
  signer: X509Certificate | undefined;
  publicKey: KeyObject;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces

function structure(msg: string): CryptoError {
  return new CryptoError('ERR_SIG_STRUCTURE', msg);
}

function isDs(n: Node, localName: string): boolean {
  return n.nodeType === ELEMENT_NODE && n.namespaceURI === NS.ds && n.localName === localName;
}

function isAncestorOrSelf(anc: Node, n: Node | null): boolean {
  for (; n; n = n.parentNode) if (n === anc) return true;
  return false;
}

const B64_STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** base64Binary content of DigestValue/SignatureValue: whitespace allowed, nothing else outside the alphabet. */
function strictBase64(el: Element): Buffer {
  const text = strictText(el, 'ERR_SIG_STRUCTURE').replace(/[ \t\r\n]+/g, '');
  if (!text || !B64_STRICT.test(text)) throw structure(`${el.localName} is not valid base64`);
  return Buffer.from(text, 'base64');
}

/**
 * Element children of `parent` must be the given ds elements in this order, each within its [min, max] count;
 * text between them must be whitespace (comments and PIs are ignored). Returns the children by local name.
 */
function layout(parent: Element, spec: ReadonlyArray<readonly [string, number, number]>): Map<string, Element[]> {
  const found = new Map<string, Element[]>(spec.map(([name]) => [name, []]));
  let slot = 0;
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) {
      if (/[^ \t\r\n]/.test((n as unknown as { data: string }).data)) throw structure(`text content inside ${parent.localName}`);
      continue;
    }
    if (n.nodeType === COMMENT_NODE || n.nodeType === PROCESSING_INSTRUCTION_NODE) continue;
    if (n.nodeType !== ELEMENT_NODE) throw structure(`unexpected node inside ${parent.localName}`);
    while (slot < spec.length && !isDs(n, (spec[slot] as readonly [string, number, number])[0])) slot++;
    const entry = spec[slot];
    if (!entry) throw structure(`unexpected element ${n.nodeName} inside ${parent.localName}`);
    const list = found.get(entry[0]) as Element[];
    list.push(n as Element);
    if (list.length > entry[2]) throw structure(`more than ${entry[2]} ${entry[0]} inside ${parent.localName}`);
  }
  for (const [name, min] of spec) {
    if ((found.get(name) as Element[]).length < min) throw structure(`${parent.localName} lacks ${name}`);
  }
  return found;
}

function noElementChildren(el: Element): void {
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === ELEMENT_NODE) throw structure(`unexpected element ${n.nodeName} inside ${el.localName}`);
  }
}

/** Exclusive C14N's InclusiveNamespaces PrefixList child, if any (the only child a c14n algorithm element may have). */
function c14nParams(el: Element, alg: Readonly<C14nAlg>): string[] | undefined {
  let prefixes: string[] | undefined;
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType !== ELEMENT_NODE) continue;
    const child = n as Element;
    if (!alg.exclusive || child.namespaceURI !== EXC_C14N_NS || child.localName !== 'InclusiveNamespaces' || prefixes) {
      throw structure(`unexpected element ${child.nodeName} inside ${el.localName}`);
    }
    prefixes = (child.getAttribute('PrefixList') ?? '').split(/[ \t\r\n]+/).filter(Boolean);
  }
  return prefixes;
}

interface ResolvedTransform {
  uri: string;
  c14n?: Readonly<C14nAlg>;
  prefixes?: string[];
  name?: 'enveloped-signature' | 'base64';
}

function resolveOneTransform(policy: CryptoPolicy, uri: string | null, el: Element | undefined): ResolvedTransform {
  if (uri && C14NS.has(uri)) {
    const c14n = resolveC14n(policy, uri);
    const prefixes = el ? c14nParams(el, c14n) : undefined;
    return prefixes ? { uri, c14n, prefixes } : { uri, c14n };
  }
  const t = resolveTransform(policy, uri);
  if (el) noElementChildren(el);
  return { uri: t.uri, name: t.name };
}

/** What a reference's transform chain amounts to. Allowed chains (same-document): enveloped? then (c14n | base64)?;
 * (cid:): base64?. Anything else is refused rather than guessed. */
interface TransformPlan {
  enveloped: boolean;
  base64: boolean;
  c14n?: Readonly<C14nAlg>;
  prefixes?: string[];
}

function planTransforms(list: readonly ResolvedTransform[], kind: 'id' | 'cid', uri: string): TransformPlan {
  const plan: TransformPlan = { enveloped: false, base64: false };
  let stage = 0;
  for (const t of list) {
    if (t.name === 'enveloped-signature' && kind === 'id' && stage === 0) {
      plan.enveloped = true;
      stage = 1;
    } else if (t.c14n && kind === 'id' && stage < 2) {
      plan.c14n = t.c14n;
      if (t.prefixes) plan.prefixes = t.prefixes;
      stage = 2;
    } else if (t.name === 'base64' && stage < 2) {
      plan.base64 = true;
      stage = 2;
    } else {
      throw structure(`transform chain of reference ${uri} is not supported (${list.map((x) => x.uri).join(', ')})`);
    }
  }
  return plan;
}

/** Text of the node-set (XPath string value) minus an excluded subtree, for the base64 transform. */
function nodeSetText(el: Element, exclude: Node | undefined): string {
  let s = '';
  const stack: Node[] = [el];
  while (stack.length) {
    const n = stack.pop() as Node;
    if (n === exclude) continue;
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) s += (n as unknown as { data: string }).data;
    else if (n.nodeType === ELEMENT_NODE) for (let c = n.lastChild; c; c = c.previousSibling) stack.push(c);
  }
  return s;
}

/** Digest of a same-document reference. `#id` dereferencing drops comments (XML-DSig §4.4.3.3), so every c14n
 * here runs without comments; no transform (or only enveloped) means inclusive C14N 1.0. */
function digestElement(el: Element, plan: TransformPlan, signature: Element, hash: HashName): Buffer {
  const exclude = plan.enveloped ? signature : undefined;
  if (plan.base64) {
    const decoder = new Base64Decoder();
    const bytes = decoder.push(nodeSetText(el, exclude));
    decoder.end();
    return digestString(hash, bytes);
  }
  const c14n = plan.c14n;
  const text = canonicalize(el, {
    exclusive: c14n?.exclusive ?? false,
    withComments: false,
    ...(plan.prefixes ? { inclusivePrefixes: plan.prefixes } : {}),
    ...(exclude ? { excludeNode: exclude } : {}),
  });
  return digestString(hash, text);
}

// ---------------------------------------------------------------------------------------------------------------
// Keys and signature values

function checkRsaKey(key: KeyObject, policy: CryptoPolicy): void {
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'rsa-pss') throw new CryptoError('ERR_KEY_INVALID', `key type ${type ?? key.type} is not RSA`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < policy.minRsaBits) {
    throw new CryptoError('ERR_KEY_TOO_SMALL', `RSA key of ${bits} bits is below the policy minimum of ${policy.minRsaBits}`);
  }
}

/** node:crypto parameters: PKCS#1 v1.5, or PSS with MGF1 over the same hash and the registry's salt length (RFC 6931). */
function keyParams(alg: Readonly<SignatureAlg>, key: KeyObject) {
  return alg.padding === 'pss'
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 0 }
    : { key, padding: constants.RSA_PKCS1_PADDING };
}

function rsaSign(alg: Readonly<SignatureAlg>, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    cryptoSign(alg.hash, data, keyParams(alg, key), (err, sig) => {
      if (err) reject(new CryptoError('ERR_KEY_INVALID', `signing with ${alg.uri} failed: ${err.message}`, { cause: err }));
      else resolve(sig);
    });
  });
}

function rsaVerify(alg: Readonly<SignatureAlg>, data: Buffer, key: KeyObject, sig: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      cryptoVerify(alg.hash, data, keyParams(alg, key), sig, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

async function trustedKey(trust: VerifyOptions['trust'], signature: Element): Promise<{ key: KeyObject; cert: X509Certificate | undefined }> {
  const t = typeof trust === 'function' ? await trust(signature) : trust;
  if (t instanceof X509Certificate) return { key: t.publicKey, cert: t };
  if (t instanceof KeyObject) {
    if (t.type === 'secret') throw new CryptoError('ERR_KEY_INVALID', 'a secret key cannot verify an RSA signature');
    return { key: t.type === 'private' ? createPublicKey(t) : t, cert: undefined };
  }
  throw new CryptoError('ERR_KEY_INVALID', 'trust must be an X509Certificate or a KeyObject');
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

interface ParsedReference {
  el: Element;
  transformEls: Element[];
  digestMethod: Element;
  digestValue: Buffer;
}

/** All ds:Signature elements of the document, in document order. Callers expecting one must refuse several. */
export function findSignatures(doc: Document | Element): Element[] {
  return Array.from(doc.getElementsByTagNameNS(NS.ds, 'Signature'));
}

function parseUri(ref: Element): { kind: 'id' | 'cid'; uri: string; target: string } {
  const attr = ref.getAttributeNode('URI');
  if (!attr) throw structure('a Reference without URI is refused');
  const uri = attr.value;
  if (uri === '') throw structure('Reference URI="" (the whole document) is refused');
  if (uri.startsWith('#')) {
    const id = uri.slice(1);
    if (id.startsWith('xpointer(') || !/^[^\s#()'"<>&:/]+$/.test(id)) throw structure(`Reference URI ${uri} is refused: only #id`);
    return { kind: 'id', uri, target: id };
  }
  if (uri.startsWith('cid:') && uri.length > 4) {
    let cid: string;
    try {
      cid = decodeURIComponent(uri.slice(4));
    } catch {
      throw structure(`Reference URI ${uri} is not a valid cid: URL`);
    }
    return { kind: 'cid', uri, target: cid };
  }
  throw structure(`Reference URI ${uri} is refused: only same-document #id and cid: references`);
}

export async function verifyXml(doc: Document, signature: Element, opts: VerifyOptions): Promise<VerifiedSignature> {
  const policy = opts.policy ?? DEFAULT_POLICY;
  if (!isDs(signature, 'Signature')) throw structure('not a ds:Signature element');
  if (signature.ownerDocument !== doc) throw structure('the signature does not belong to this document');
  // Duplicate Ids anywhere make the document unusable (signature wrapping); build the index first.
  const ids = opts.ids ?? indexIds(doc, opts.idAttrs ?? DEFAULT_ID_ATTRS);

  // A. layout
  const sigParts = layout(signature, [['SignedInfo', 1, 1], ['SignatureValue', 1, 1], ['KeyInfo', 0, 1], ['Object', 0, Infinity]]);
  const signedInfo = (sigParts.get('SignedInfo') as Element[])[0] as Element;
  const signatureValue = strictBase64((sigParts.get('SignatureValue') as Element[])[0] as Element);
  const siParts = layout(signedInfo, [['CanonicalizationMethod', 1, 1], ['SignatureMethod', 1, 1], ['Reference', 1, Infinity]]);
  const parsed: ParsedReference[] = (siParts.get('Reference') as Element[]).map((el) => {
    const parts = layout(el, [['Transforms', 0, 1], ['DigestMethod', 1, 1], ['DigestValue', 1, 1]]);
    const transformsEl = (parts.get('Transforms') as Element[])[0];
    const transformEls = transformsEl ? (layout(transformsEl, [['Transform', 1, Infinity]]).get('Transform') as Element[]) : [];
    return {
      el,
      transformEls,
      digestMethod: (parts.get('DigestMethod') as Element[])[0] as Element,
      digestValue: strictBase64((parts.get('DigestValue') as Element[])[0] as Element),
    };
  });

  // B. algorithms
  const cmEl = (siParts.get('CanonicalizationMethod') as Element[])[0] as Element;
  const c14n = resolveC14n(policy, cmEl.getAttribute('Algorithm'));
  const siPrefixes = c14nParams(cmEl, c14n);
  const smEl = (siParts.get('SignatureMethod') as Element[])[0] as Element;
  const sigAlg = resolveSignature(policy, smEl.getAttribute('Algorithm'));
  noElementChildren(smEl);
  const withAlgs = parsed.map((r) => {
    const transforms = r.transformEls.map((t) => resolveOneTransform(policy, t.getAttribute('Algorithm'), t));
    const digest: Readonly<DigestAlg> = resolveDigest(policy, r.digestMethod.getAttribute('Algorithm'));
    noElementChildren(r.digestMethod);
    return { ...r, transforms, digest };
  });

  // C. reference targets
  const seen = new Set<string>();
  const expected = opts.expectedReferences;
  const refs = withAlgs.map((r) => {
    const { kind, uri, target } = parseUri(r.el);
    if (seen.has(uri)) throw structure(`Reference ${uri} appears twice`);
    seen.add(uri);
    if (expected) {
      const allowed = kind === 'id' ? expected.ids : expected.cids;
      if (!allowed?.includes(target)) throw structure(`Reference ${uri} is not among the expected references`);
    }
    const plan = planTransforms(r.transforms, kind, uri);
    let element: Element | undefined;
    if (kind === 'id') {
      element = ids.get(target);
      if (!element) throw new CryptoError('ERR_XML_ID_NOT_FOUND', `Reference ${uri} points to no element`);
      if (element.ownerDocument !== doc) throw structure(`Reference ${uri} resolves outside this document`);
    }
    return { ...r, kind, uri, target, plan, element };
  });
  if (expected?.exact) {
    for (const id of expected.ids ?? []) if (!seen.has('#' + id)) throw structure(`expected reference #${id} is missing`);
    for (const cid of expected.cids ?? []) {
      if (!refs.some((r) => r.kind === 'cid' && r.target === cid)) throw structure(`expected reference cid:${cid} is missing`);
    }
  }

  // D. SignatureValue with the caller's key
  const { key, cert } = await trustedKey(opts.trust, signature);
  checkRsaKey(key, policy);
  const canonicalSignedInfo = canonicalize(signedInfo, {
    exclusive: c14n.exclusive,
    withComments: c14n.withComments,
    ...(siPrefixes ? { inclusivePrefixes: siPrefixes } : {}),
  });
  if (!(await rsaVerify(sigAlg, Buffer.from(canonicalSignedInfo, 'utf8'), key, signatureValue))) {
    throw new CryptoError('ERR_SIG_INVALID', 'SignatureValue does not verify with the trusted key');
  }

  // E. reference digests
  const signedElements = new Map<string, Element>();
  const references: VerifiedReference[] = [];
  for (const r of refs) {
    let actual: Buffer;
    if (r.kind === 'id') {
      actual = digestElement(r.element as Element, r.plan, signature, r.digest.hash);
    } else {
      const given = r.digest.hash === 'sha256' && !r.plan.base64 ? opts.cidSha256?.(r.target) : undefined;
      const known = given?.length === 32 ? given : undefined;
      if (known) actual = known;
      else {
        const data = opts.resolveCid ? await opts.resolveCid(r.target) : undefined;
        if (!data) throw new CryptoError('ERR_CID_NOT_FOUND', `Reference ${r.uri}: no MIME part with Content-ID <${r.target}>`);
        actual = await digestSource(r.digest.hash, data, { base64Decode: r.plan.base64 });
      }
    }
    if (actual.length !== r.digestValue.length || !timingSafeEqual(actual, r.digestValue)) {
      throw new CryptoError('ERR_SIG_DIGEST', `Reference ${r.uri}: digest mismatch`);
    }
    const ref: VerifiedReference = { uri: r.uri, kind: r.kind, digestAlgorithm: r.digest.uri, transforms: r.transforms.map((t) => t.uri) };
    if (r.element) {
      ref.element = r.element;
      signedElements.set(r.target, r.element);
    }
    references.push(ref);
  }
  return { signatureAlgorithm: sigAlg.uri, c14nAlgorithm: c14n.uri, references, signedElements, signer: cert, publicKey: key };
}

/** Parse strictly, require exactly one ds:Signature anywhere, verify it. */
export async function verifyXmlString(xml: string | Buffer, opts: VerifyOptions): Promise<VerifiedSignature & { doc: Document }> {
  const doc = parseXml(xml);
  const sigs = findSignatures(doc);
  if (sigs.length !== 1) throw structure(`expected exactly one ds:Signature, found ${sigs.length}`);
  return { ...(await verifyXml(doc, sigs[0] as Element, opts)), doc };
}

// ---------------------------------------------------------------------------------------------------------------
// Signing

export async function signXml(doc: Document, parent: Element, opts: SignOptions): Promise<Element> {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const sigAlg = resolveSignature(policy, opts.signatureAlgorithm ?? 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
  const c14n = resolveC14n(policy, opts.c14nAlgorithm ?? 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315');
  const digest = resolveDigest(policy, opts.digestAlgorithm ?? 'http://www.w3.org/2001/04/xmlenc#sha256');
  if (!(opts.key instanceof KeyObject) || opts.key.type !== 'private') throw new CryptoError('ERR_KEY_INVALID', 'signing needs a private KeyObject');
  checkRsaKey(opts.key, policy);
  if (parent.ownerDocument !== doc) throw structure('the parent element does not belong to this document');
  if (!opts.references.length) throw structure('a signature needs at least one reference');
  const ids = opts.ids ?? indexIds(doc, opts.idAttrs ?? DEFAULT_ID_ATTRS);

  const prefix = opts.prefix ?? 'ds';
  const q = (local: string): string => (prefix ? `${prefix}:${local}` : local);
  const make = (local: string, attrs: Record<string, string> = {}, text?: string): Element => {
    const el = doc.createElementNS(NS.ds, q(local));
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.appendChild(doc.createTextNode(text));
    return el;
  };

  const signature = make('Signature');
  signature.setAttributeNS(NS.xmlns, prefix ? `xmlns:${prefix}` : 'xmlns', NS.ds);
  const signedInfo = make('SignedInfo');
  signature.appendChild(signedInfo);
  signedInfo.appendChild(make('CanonicalizationMethod', { Algorithm: c14n.uri }));
  signedInfo.appendChild(make('SignatureMethod', { Algorithm: sigAlg.uri }));

  parent.appendChild(signature);
  try {
    for (const spec of opts.references) {
      let uri: string;
      let transformUris: string[];
      let digestValue: Buffer;
      if ('id' in spec) {
        uri = '#' + spec.id;
        const element = ids.get(spec.id);
        if (!element) throw new CryptoError('ERR_XML_ID_NOT_FOUND', `no element with Id "${spec.id}"`);
        if (element.ownerDocument !== doc) throw structure(`element #${spec.id} is not in this document`);
        const envelops = isAncestorOrSelf(element, parent);
        if (spec.transforms) transformUris = [...spec.transforms];
        else {
          transformUris = [];
          if (envelops && opts.enveloped) transformUris.push(ENVELOPED);
          if (opts.c14nTransformPerReference !== false) transformUris.push(c14n.uri);
        }
        const plan = planTransforms(transformUris.map((t) => resolveOneTransform(policy, t, undefined)), 'id', uri);
        if (envelops && !plan.enveloped) throw structure(`element #${spec.id} contains the signature but its reference lacks the enveloped-signature transform`);
        digestValue = digestElement(element, plan, signature, digest.hash);
      } else {
        uri = spec.uri;
        if (!uri.startsWith('cid:') || uri.length <= 4) throw structure(`reference URI ${uri} must be a cid: URL`);
        transformUris = spec.transforms ? [...spec.transforms] : [];
        const plan = planTransforms(transformUris.map((t) => resolveOneTransform(policy, t, undefined)), 'cid', uri);
        const known = digest.hash === 'sha256' && transformUris.length === 0 && spec.sha256?.length === 32 ? spec.sha256 : undefined;
        digestValue = known ?? (await digestSource(digest.hash, spec.data, { base64Decode: plan.base64 }));
      }
      const ref = make('Reference', { URI: uri });
      if (transformUris.length) {
        const transforms = make('Transforms');
        for (const t of transformUris) transforms.appendChild(make('Transform', { Algorithm: t }));
        ref.appendChild(transforms);
      }
      ref.appendChild(make('DigestMethod', { Algorithm: digest.uri }));
      ref.appendChild(make('DigestValue', {}, digestValue.toString('base64')));
      signedInfo.appendChild(ref);
    }

    const canonicalSignedInfo = canonicalize(signedInfo, { exclusive: c14n.exclusive, withComments: c14n.withComments });
    const value = await rsaSign(sigAlg, Buffer.from(canonicalSignedInfo, 'utf8'), opts.key);
    signature.appendChild(make('SignatureValue', {}, value.toString('base64')));

    if (opts.keyInfo) {
      const keyInfo = make('KeyInfo');
      if ('retrievalMethod' in opts.keyInfo) {
        const rm = opts.keyInfo.retrievalMethod;
        keyInfo.appendChild(make('RetrievalMethod', rm.type ? { URI: rm.uri, Type: rm.type } : { URI: rm.uri }));
      } else {
        const x509Data = make('X509Data');
        x509Data.appendChild(make('X509Certificate', {}, opts.keyInfo.x509Certificate.toString('base64')));
        keyInfo.appendChild(x509Data);
      }
      signature.appendChild(keyInfo);
    }
  } catch (e) {
    parent.removeChild(signature);
    throw e;
  }
  return signature;
}

/** Parse strictly, sign (into the element with Id `parentId`, else the document element), serialize. */
export async function signXmlString(xml: string | Buffer, opts: SignOptions & { parentId?: string }): Promise<string> {
  const doc = parseXml(xml);
  const ids = opts.ids ?? indexIds(doc, opts.idAttrs ?? DEFAULT_ID_ATTRS);
  const parent = opts.parentId === undefined ? doc.documentElement : ids.get(opts.parentId);
  if (!parent) throw new CryptoError('ERR_XML_ID_NOT_FOUND', `no element with Id "${opts.parentId}"`);
  await signXml(doc, parent, { ...opts, ids });
  return serializeXml(doc);
}
