/**
 * SMTP notification adapter (nodemailer): tells the responsible staff address that a message arrived —
 * sender, subject, file number, reception time, where to find it. No message text and no attachments unless
 * `includeText` is configured (attachments never). Recipients are validated here (nodemailer's own address
 * parser has a history of misrouting advisories, dependencies-and-security.md §1); file and URL access of
 * nodemailer are disabled and no `raw` message is ever passed.
 *
 * At-least-once: a notification whose 250 answer is lost is sent again; it carries the same Message-ID
 * (derived from the OSCI MessageId), so mail clients show it once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { OsciError } from '../../protocol/errors.ts';
import { DeliveryFailure, type DeliveryAdapter, type DeliveryContext, type SpooledMessage } from '../delivery.ts';

export type SmtpSecurity = 'starttls' | 'tls' | 'none';

export interface SmtpNotifyOptions {
  name: string;
  host: string;
  port: number;
  /** starttls (default): STARTTLS required; tls: implicit TLS (port 465); none: plain (local relays only). */
  security?: SmtpSecurity;
  auth?: { user: string; pass: string };
  /** Extra trust anchors (PEM) for the server certificate; certificate checks are never switched off. */
  ca?: string[];
  from: string;
  to: string[];
  /** Put the message text (text.txt) into the notification. Default false: it may be confidential. */
  includeText?: boolean;
  /** Connection, greeting and socket timeouts (default 30 s). */
  timeoutMs?: number;
  /** Name used in EHLO. */
  clientName?: string;
}

const LOCAL = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*";
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const ADDRESS = new RegExp(`^${LOCAL}@${LABEL}(?:\\.${LABEL})+$`);

/** A bare addr-spec (RFC 5321 dot-atom@domain): no display name, comment, quotes, IP literal, list or line break. */
export function checkMailAddress(a: string, what: string): string {
  if (typeof a !== 'string' || a.length > 254 || !ADDRESS.test(a)) throw new OsciError('ERR_USAGE', `${what}: "${String(a)}" is not a plain e-mail address (name@domain.tld)`);
  return a;
}

/** One header-safe line: control characters and line breaks removed, length bounded. */
export function oneLine(s: string | undefined, max = 200): string {
  const t = (s ?? '').replace(/[\p{Cc}\u2028\u2029]+/gu, ' ').replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

export class SmtpNotifyAdapter implements DeliveryAdapter {
  readonly type = 'smtp';
  readonly name: string;
  private readonly transport: ReturnType<typeof nodemailer.createTransport>;

  constructor(private readonly o: SmtpNotifyOptions) {
    this.name = o.name;
    checkMailAddress(o.from, `smtp ${o.name}: from`);
    if (!Array.isArray(o.to) || o.to.length === 0) throw new OsciError('ERR_USAGE', `smtp ${o.name}: "to" must list at least one address`);
    o.to.forEach((a) => checkMailAddress(a, `smtp ${o.name}: to`));
    const security = o.security ?? 'starttls';
    const timeout = o.timeoutMs ?? 30_000;
    this.transport = nodemailer.createTransport({
      host: o.host,
      port: o.port,
      secure: security === 'tls',
      requireTLS: security === 'starttls',
      ignoreTLS: security === 'none',
      ...(o.auth ? { auth: { user: o.auth.user, pass: o.auth.pass } } : {}),
      tls: { rejectUnauthorized: true, ...(o.ca ? { ca: o.ca } : {}) },
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      ...(o.clientName ? { name: o.clientName } : {}),
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  /** Subject and body of the notification (exported for inspection; no attachment content ever). */
  compose(msg: SpooledMessage, ctx: Pick<DeliveryContext, 'locations'>): { subject: string; text: string } {
    const m = msg.meta;
    const x = m.xjustiz;
    const files = x?.fileNumbers?.length ? x.fileNumbers.join(', ') : '-';
    const lines = [
      `Im Postfach ${msg.mailbox} ist eine neue Nachricht eingegangen.`,
      '',
      `Absender:        ${oneLine(m.from.join('; ')) || '-'}`,
      `Betreff:         ${oneLine(m.subject, 500) || '-'}`,
      `Aktenzeichen:    ${oneLine(files, 500)}`,
      ...(x?.messageType ? [`Nachrichtentyp:  XJustiz ${x.messageType}${x.recipientCourt ? `, Empfänger ${x.recipientCourt}` : ''}`] : []),
      `Eingang:         ${m.timestamps?.creation ?? '-'} (Zeitstempel des Intermediärs)`,
      `Abgeholt:        ${m.fetchedAt}`,
      `Prüfung:         ${m.error ? `Inhalt nicht lesbar (${m.error.code})` : m.verification.allValid ? 'Signaturen gültig' : 'Signaturprüfung NICHT bestanden'}`,
      `Anlagen:         ${m.attachments.length}`,
      `Ablage:          ${ctx.locations.length ? ctx.locations.join('\n                 ') : 'Spool des Amtsbote-Agenten'}`,
      `MessageId:       ${m.messageId}`,
    ];
    if (this.o.includeText && m.textFile) {
      let text = '';
      try {
        text = readFileSync(join(msg.dir, m.textFile), 'utf8').slice(0, 20_000);
      } catch {
        text = '(nicht lesbar)';
      }
      lines.push('', 'Nachrichtentext:', text);
    }
    const fileNo = x?.fileNumbers?.[0];
    const subject = oneLine(`Neue Nachricht für ${msg.mailbox}${fileNo ? `, Az. ${fileNo}` : ''}: ${m.subject ?? '(ohne Betreff)'}`, 200);
    return { subject, text: `${lines.join('\n')}\n` };
  }

  async deliver(msg: SpooledMessage, ctx: DeliveryContext): Promise<string> {
    const { subject, text } = this.compose(msg, ctx);
    const id = createHash('sha256').update(`${this.name}\n${msg.meta.messageId}`).digest('hex').slice(0, 40);
    try {
      const info = await this.transport.sendMail({
        from: this.o.from,
        to: this.o.to,
        subject,
        text,
        messageId: `<${id}@amtsbote.invalid>`,
        headers: {
          // RFC 3834: no auto-replies to this notification.
          'Auto-Submitted': 'auto-generated',
          'X-Amtsbote-Mailbox': oneLine(msg.mailbox, 100),
          'X-Amtsbote-Message-Id': msg.meta.messageId,
        },
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      return `notified ${this.o.to.join(', ')} (${oneLine(String(info.response ?? ''), 200)})`;
    } catch (e) {
      const err = e as { responseCode?: number; code?: string; message?: string };
      const reason = `SMTP ${this.o.host}:${this.o.port}: ${err.responseCode ?? err.code ?? ''} ${oneLine(err.message, 300)}`.replace(/\s+/g, ' ');
      // 5xx replies and refused authentication are permanent; 4xx, timeouts and connection errors are retried.
      const permanent = (err.responseCode !== undefined && err.responseCode >= 500) || err.code === 'EAUTH' || err.code === 'EENVELOPE';
      throw new DeliveryFailure(permanent ? 'park' : 'retry', reason, { cause: e });
    }
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}
