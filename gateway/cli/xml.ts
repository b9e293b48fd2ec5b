/** `amtsbote xml`: an xmlsec1-style tool for admins, and our interop surface. */
import type { Command } from 'commander';
import { ALIASES } from '../../crypto/algorithms.ts';
import { signXmlString, verifyXmlString } from '../../crypto/dsig.ts';
import { decryptInPlace, encryptElement } from '../../crypto/xenc.ts';
import { childElements, indexIds, parseXml, serializeXml, type Element } from '../../crypto/xml.ts';
import { NS } from '../../crypto/algorithms.ts';
import { loadCertificate, loadPrivateKey } from '../../crypto/keys.ts';
import { action, fail, pinFromEnv, printJson, readInput } from './run.ts';

const SIG_ALGS = ['rsa-sha256', 'rsa-sha512', 'rsa-pss-sha256', 'rsa-pss-sha512'] as const;

function alias(name: string, allowed: readonly string[], what: string): string {
  if (!allowed.includes(name)) fail(`unknown ${what} "${name}" (allowed: ${allowed.join(', ')})`);
  return ALIASES[name as keyof typeof ALIASES];
}

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerXml(program: Command): void {
  const xml = program.command('xml').description('sign, verify, encrypt and decrypt XML documents (OSCI crypto profile)');

  xml
    .command('sign')
    .description('append a ds:Signature to the root element, one Reference per --ref, and write the result to stdout')
    .requiredOption('--key <file>', 'private key: PEM, or PKCS#12 with --pin-env')
    .requiredOption('--cert <file>', 'signer certificate (PEM or DER), embedded as ds:X509Data')
    .requiredOption('--ref <id>', 'Id of an element to sign (repeatable)', collect, [])
    .option('--alg <alg>', `signature algorithm: ${SIG_ALGS.join('|')}`, 'rsa-sha256')
    .option('--c14n <mode>', 'canonicalization: inclusive|exclusive', 'inclusive')
    .option('--id-attr <name>', 'name of the Id attribute', 'Id')
    .option('--pin-env <var>', 'environment variable holding the PKCS#12 PIN')
    .argument('<file>', 'XML document ("-" for stdin)')
    .addHelpText('after', '\nExample:\n  amtsbote xml sign --key certs-dev/ag-lemgo/signature.key.pem --cert certs-dev/ag-lemgo/signature.cert.pem --ref body doc.xml > signed.xml')
    .action(
      action(async (file: string, o: { key: string; cert: string; ref: string[]; alg: string; c14n: string; idAttr: string; pinEnv?: string }) => {
        if (o.ref.length === 0) fail('at least one --ref is required');
        const key = loadPrivateKey(o.key, { pin: pinFromEnv(o.pinEnv) });
        const cert = loadCertificate(o.cert);
        const out = await signXmlString(readInput(file), {
          key,
          signatureAlgorithm: alias(o.alg, SIG_ALGS, 'signature algorithm'),
          c14nAlgorithm: alias(o.c14n, ['inclusive', 'exclusive'], 'canonicalization'),
          references: o.ref.map((id) => ({ id })),
          keyInfo: { x509Certificate: cert.raw },
          idAttrs: [o.idAttr],
        });
        process.stdout.write(out);
      }),
    );

  xml
    .command('verify')
    .description('verify the one ds:Signature of a document against a pinned certificate (KeyInfo is never trusted)')
    .requiredOption('--cert <file>', 'the trusted signer certificate (PEM or DER)')
    .option('--id-attr <name>', 'name of the Id attribute', 'Id')
    .option('--json', 'print the verified references, algorithms and signer as JSON')
    .argument('<file>', 'signed XML document ("-" for stdin)')
    .addHelpText('after', '\nExit status: 0 valid, 1 invalid, 2 unreadable input.\nExample:\n  amtsbote xml verify --cert certs-dev/ag-lemgo/signature.cert.pem --json signed.xml')
    .action(
      action(async (file: string, o: { cert: string; idAttr: string; json?: boolean }) => {
        const cert = loadCertificate(o.cert);
        const r = await verifyXmlString(readInput(file), { trust: cert, idAttrs: [o.idAttr] });
        const summary = {
          valid: true,
          signer: cert.subject.replace(/\n/g, ', '),
          signatureAlgorithm: r.signatureAlgorithm,
          c14nAlgorithm: r.c14nAlgorithm,
          references: r.references.map((ref) => ({ uri: ref.uri, digestAlgorithm: ref.digestAlgorithm, transforms: ref.transforms })),
        };
        if (o.json) printJson(summary);
        else process.stdout.write(`OK: ${r.references.length} reference(s) verified, signer ${cert.subject.replace(/\n/g, ', ')}\n`);
      }),
    );

  xml
    .command('encrypt')
    .description('encrypt one element (--node-id) or the whole document element (--whole) for a certificate; result to stdout')
    .requiredOption('--cert <file>', 'recipient cipher certificate (PEM or DER)')
    .option('--node-id <id>', 'Id of the element to encrypt')
    .option('--whole', 'encrypt the document element\'s content')
    .option('--key-transport <alg>', 'rsa-oaep (xmlenc11, SHA-256/MGF1-SHA256) | rsa-oaep-mgf1p (SHA-1)', 'rsa-oaep')
    .option('--cipher <alg>', 'aes256-gcm | aes128-gcm', 'aes256-gcm')
    .option('--id-attr <name>', 'name of the Id attribute', 'Id')
    .argument('<file>', 'XML document ("-" for stdin)')
    .addHelpText('after', '\nExample:\n  amtsbote xml encrypt --cert certs-dev/stadt-lemgo/cipher.cert.pem --node-id body doc.xml > enc.xml')
    .action(
      action(async (file: string, o: { cert: string; nodeId?: string; whole?: boolean; keyTransport: string; cipher: string; idAttr: string }) => {
        if (!o.nodeId === !o.whole) fail('give exactly one of --node-id ID or --whole');
        const cert = loadCertificate(o.cert);
        const keyTransport = alias(o.keyTransport, ['rsa-oaep', 'rsa-oaep-mgf1p'], 'key transport');
        const doc = parseXml(readInput(file));
        const ids = indexIds(doc, [o.idAttr]);
        let target: Element;
        if (o.nodeId) {
          const el = ids.get(o.nodeId);
          if (!el) fail(`no element with ${o.idAttr}="${o.nodeId}"`);
          target = el;
        } else target = doc.documentElement as Element;
        encryptElement(doc, target, {
          recipients: [{ key: cert, keyInfo: { x509Certificate: cert.raw } }],
          type: o.whole ? 'content' : 'element',
          cipher: alias(o.cipher, ['aes256-gcm', 'aes128-gcm'], 'cipher'),
          keyTransport,
          // rsa-oaep-mgf1p fixes MGF1-SHA1; SHA-1 as OAEP digest keeps it interoperable with xmlsec1 1.2.
          ...(keyTransport === ALIASES['rsa-oaep-mgf1p'] ? { digest: 'http://www.w3.org/2000/09/xmldsig#sha1' } : {}),
        });
        process.stdout.write(serializeXml(doc));
      }),
    );

  xml
    .command('decrypt')
    .description('decrypt every xenc:EncryptedData of a document in place with a private key; result to stdout')
    .requiredOption('--key <file>', 'private key: PEM, or PKCS#12 with --pin-env')
    .option('--pin-env <var>', 'environment variable holding the PKCS#12 PIN')
    .argument('<file>', 'encrypted XML document ("-" for stdin)')
    .addHelpText('after', '\nExample:\n  AMTSBOTE_PIN=123456 amtsbote xml decrypt --key bob_cipher_4096.p12 --pin-env AMTSBOTE_PIN enc.xml')
    .action(
      action(async (file: string, o: { key: string; pinEnv?: string }) => {
        const privateKey = loadPrivateKey(o.key, { pin: pinFromEnv(o.pinEnv) });
        const doc = parseXml(readInput(file));
        const all = (): Element[] => {
          const out: Element[] = [];
          const walk = (el: Element) => {
            for (const c of childElements(el)) {
              if (c.namespaceURI === NS.xenc && c.localName === 'EncryptedData') out.push(c);
              else walk(c);
            }
          };
          walk(doc.documentElement as Element);
          return out;
        };
        let found = all();
        if (found.length === 0) fail('the document holds no xenc:EncryptedData');
        // Decrypted element content may itself hold EncryptedData (nested); stop when none is left.
        while (found.length > 0) {
          for (const ed of found) await decryptInPlace(doc, ed, { privateKey });
          found = all();
        }
        process.stdout.write(serializeXml(doc));
      }),
    );
}
