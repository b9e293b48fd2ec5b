/**
 * Where tests find ../shared and external tools. Outside CI a missing item skips the test with a clear
 * message; with CI=true it fails instead (CI must never skip for a missing tool).
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_DIR = resolve(process.env.AMTSBOTE_SHARED ?? join(REPO_ROOT, '..', 'shared'));
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Absolute path inside ../shared (or $AMTSBOTE_SHARED). */
export function shared(...parts: string[]): string {
  return join(SHARED_DIR, ...parts);
}

function skipOrFail(ctx: Mocha.Context, what: string): void {
  if (IN_CI) throw new Error(`${what} is required in CI`);
  console.warn(`      skipped: ${what} is not available`);
  ctx.skip();
}

/** Call in before()/it() of tests that read ../shared material. */
export function requireShared(ctx: Mocha.Context): void {
  if (!existsSync(SHARED_DIR)) skipOrFail(ctx, `shared reference material at ${SHARED_DIR} (set AMTSBOTE_SHARED)`);
}

const toolCache = new Map<string, boolean>();
export function hasTool(cmd: string): boolean {
  let ok = toolCache.get(cmd);
  if (ok === undefined) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      ok = true;
    } catch {
      ok = false;
    }
    toolCache.set(cmd, ok);
  }
  return ok;
}

/** Call in before()/it() of tests that run an external tool (xmlsec1, xmllint, java). */
export function requireTool(ctx: Mocha.Context, cmd: string): void {
  if (!hasTool(cmd)) skipOrFail(ctx, `the tool ${cmd}`);
}

/** Classpath for the Santuario-based oracles in ../shared/tools/xmlsec-oracle (Debian libxml-security-java). */
export const SANTUARIO_CP = ['xmlsec.jar', 'commons-codec.jar', 'slf4j-api.jar', 'slf4j-nop.jar']
  .map((j) => `/usr/share/java/${j}`)
  .join(':');

export function requireSantuario(ctx: Mocha.Context): void {
  requireTool(ctx, 'java');
  if (!existsSync('/usr/share/java/xmlsec.jar')) skipOrFail(ctx, 'Apache Santuario (/usr/share/java/xmlsec.jar, Debian libxml-security-java)');
}
