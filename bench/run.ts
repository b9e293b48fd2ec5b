/**
 * `npm run bench [-- --quick] [-- --json FILE] [-- SCENARIO...]`: every scenario is reported as a ratio to the
 * hardware bound measured in the same run. Results go to bench/results/latest.json (BENCHMARKS.md explains them).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { measureBounds } from './bounds.ts';
import { runCrypto } from './scenarios/crypto.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const jsonIdx = argv.indexOf('--json');
const jsonFile = jsonIdx >= 0 ? argv[jsonIdx + 1] : undefined;
const ALL = ['crypto'] as const;
const wanted = argv.filter((a, i) => !a.startsWith('--') && !(jsonIdx >= 0 && i === jsonIdx + 1));
for (const w of wanted) {
  if (!(ALL as readonly string[]).includes(w)) {
    console.error(`unknown scenario ${w}; known: ${ALL.join(', ')}`);
    process.exit(2);
  }
}
const run = (name: string) => wanted.length === 0 || wanted.includes(name);

const key = generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}${quick ? ', quick' : ''}`);
const bounds = measureBounds({ quick, rsaKey: key });
console.log(`bound: RSA-${bounds.rsa_bits} private ops/s ${bounds.rsa_private_ops_per_s}, AES-256-GCM ${bounds.aes_gcm_mb_per_s} MB/s, SHA-256 ${bounds.sha256_mb_per_s} MB/s`);

const scenarios: Record<string, unknown> = {};
const ratios: Record<string, number> = {};

if (run('crypto')) {
  const c = await runCrypto({ quick, key });
  scenarios.crypto = c;
  ratios.sign_verify_vs_xml_crypto = Math.round((c.ours_sign_verify_per_s / c.xml_crypto_sign_verify_per_s) * 100) / 100;
  // One sign + one verify needs one private op; the bound is the RSA private rate.
  ratios.crypto_sign_vs_rsa_bound = Math.round((c.ours_sign_per_s / bounds.rsa_private_ops_per_s) * 100) / 100;
  console.table({
    'amtsbote crypto/': { sign: c.ours_sign_per_s, verify: c.ours_verify_per_s, 'sign+verify': c.ours_sign_verify_per_s },
    'xml-crypto 6.3.2': { sign: c.xml_crypto_sign_per_s, verify: c.xml_crypto_verify_per_s, 'sign+verify': c.xml_crypto_sign_verify_per_s },
  });
  console.log(`sign+verify of a ${c.doc_bytes}-byte document: ${ratios.sign_verify_vs_xml_crypto}× xml-crypto; signing at ${Math.round(ratios.crypto_sign_vs_rsa_bound * 100)} % of the RSA bound`);
}

const result = { date: new Date().toISOString(), quick, machine: { cpus: cpus().length, node: process.version }, bounds, scenarios, ratios };
const out = jsonFile ?? join(ROOT, 'bench', 'results', 'latest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`results written to ${out}`);
