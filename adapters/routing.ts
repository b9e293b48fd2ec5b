/**
 * Routing rules (configuration `routes` / `defaultRoute`): which adapters receive a message, decided by the
 * recipient mailbox, the subject and the XJustiz fields of its `xjustiz_nachricht.xml` (message type code,
 * recipient court code, file number). Rules are tried in order; the first whose conditions all hold wins.
 * A message no rule matches goes to the default route, which must name at least one adapter: nothing is dropped.
 */
import { OsciError } from '../protocol/errors.ts';
import type { MessageMeta } from './inbox.ts';

export interface RouteMatch {
  /** Recipient mailbox id(s). */
  mailbox?: string | string[];
  /** Regular expression on the subject (case-insensitive). */
  subject?: string;
  /** XJustiz message type code(s), e.g. "0005005". */
  messageType?: string | string[];
  /** Recipient court code(s) (nachrichtenkopf/auswahl_empfaenger/empfaenger.gericht/code). */
  court?: string | string[];
  /** Regular expression on any file number (Aktenzeichen) of the record (case-insensitive). */
  fileNumber?: string;
}

export interface RouteRule {
  name?: string;
  match: RouteMatch;
  /** Adapter names. */
  to: string[];
}

export interface RoutingConfig {
  rules: RouteRule[];
  default: string[];
}

/** What routing looks at. */
export interface MessageFacts {
  mailbox: string;
  subject?: string;
  messageType?: string;
  court?: string;
  fileNumbers: string[];
}

export interface RouteDecision {
  /** Rule name (or "#<index>"), "default" for the default route. */
  rule: string;
  adapters: string[];
  isDefault: boolean;
}

/** Long subjects/file numbers are cut before matching (bounded regex work on remote input). */
const MAX_MATCH_INPUT = 1000;

interface Compiled {
  name: string;
  mailbox?: Set<string>;
  subject?: RegExp;
  messageType?: Set<string>;
  court?: Set<string>;
  fileNumber?: RegExp;
  to: string[];
}

function bad(msg: string): never {
  throw new OsciError('ERR_USAGE', `routing: ${msg}`);
}

function set(v: string | string[] | undefined, what: string): Set<string> | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0 || list.some((x) => typeof x !== 'string' || x === '')) bad(`${what} must be a non-empty string or list of strings`);
  return new Set(list);
}

function regex(v: string | undefined, what: string): RegExp | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') bad(`${what} must be a non-empty regular expression`);
  try {
    return new RegExp(v, 'iu');
  } catch (e) {
    bad(`${what} is not a valid regular expression: ${(e as Error).message}`);
  }
}

function adapterList(to: unknown, what: string, known: ReadonlySet<string> | undefined): string[] {
  if (!Array.isArray(to) || to.length === 0 || to.some((x) => typeof x !== 'string')) bad(`${what} must list at least one adapter`);
  for (const a of to as string[]) if (known && !known.has(a)) bad(`${what} names the unknown adapter "${a}"`);
  return [...new Set(to as string[])];
}

const MATCH_KEYS = new Set(['mailbox', 'subject', 'messageType', 'court', 'fileNumber']);

export class Router {
  private readonly rules: Compiled[];
  private readonly fallback: string[];

  /** Validates the rules; `knownAdapters` (when given) must contain every adapter a rule names. */
  constructor(cfg: RoutingConfig, knownAdapters?: ReadonlySet<string>) {
    if (!Array.isArray(cfg.rules)) bad('routes must be a list');
    this.rules = cfg.rules.map((r, i) => {
      const name = r.name ?? `#${i + 1}`;
      if (typeof r.match !== 'object' || r.match === null || Array.isArray(r.match)) bad(`route ${name}: "match" must be an object`);
      for (const k of Object.keys(r.match)) if (!MATCH_KEYS.has(k)) bad(`route ${name}: unknown condition "${k}" (known: ${[...MATCH_KEYS].join(', ')})`);
      const c: Compiled = { name, to: adapterList(r.to, `route ${name}: "to"`, knownAdapters) };
      const m = r.match;
      const mb = set(m.mailbox, `route ${name}: mailbox`);
      if (mb) c.mailbox = mb;
      const s = regex(m.subject, `route ${name}: subject`);
      if (s) c.subject = s;
      const t = set(m.messageType, `route ${name}: messageType`);
      if (t) c.messageType = t;
      const co = set(m.court, `route ${name}: court`);
      if (co) c.court = co;
      const f = regex(m.fileNumber, `route ${name}: fileNumber`);
      if (f) c.fileNumber = f;
      return c;
    });
    this.fallback = adapterList(cfg.default, 'defaultRoute', knownAdapters);
  }

  /** `only`: a mailbox's own view (configuration `mailboxes[].routes` / `defaultRoute`): the rules it may take and its default. */
  route(f: MessageFacts, only?: { rules?: readonly string[]; default?: readonly string[] }): RouteDecision {
    const allowed = only?.rules ? new Set(only.rules) : undefined;
    for (const r of this.rules) if ((!allowed || allowed.has(r.name)) && matches(r, f)) return { rule: r.name, adapters: [...r.to], isDefault: false };
    return { rule: 'default', adapters: [...(only?.default ?? this.fallback)], isDefault: true };
  }
}

function matches(r: Compiled, f: MessageFacts): boolean {
  if (r.mailbox && !r.mailbox.has(f.mailbox)) return false;
  if (r.subject && !r.subject.test((f.subject ?? '').slice(0, MAX_MATCH_INPUT))) return false;
  if (r.messageType && (f.messageType === undefined || !r.messageType.has(f.messageType))) return false;
  if (r.court && (f.court === undefined || !r.court.has(f.court))) return false;
  if (r.fileNumber) {
    const re = r.fileNumber;
    if (!f.fileNumbers.some((n) => re.test(n.slice(0, MAX_MATCH_INPUT)))) return false;
  }
  return true;
}

/** The routing facts of a received message. */
export function factsOf(mailbox: string, meta: MessageMeta): MessageFacts {
  const x = meta.xjustiz;
  const f: MessageFacts = { mailbox, fileNumbers: x?.fileNumbers ?? [] };
  if (meta.subject !== undefined) f.subject = meta.subject;
  if (x?.messageType !== undefined) f.messageType = x.messageType;
  if (x?.recipientCourt !== undefined) f.court = x.recipientCourt;
  return f;
}
