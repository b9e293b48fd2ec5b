/** Structured pino logs. Keys, certificates, plaintext content and personal data are never logged; redaction is a second net. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'amtsbote',
    level: opts.level ?? process.env.AMTSBOTE_LOG_LEVEL ?? 'info',
    redact: {
      paths: ['*.key', '*.privateKey', '*.pin', '*.password', '*.content', '*.plaintext', 'req.headers.authorization', '*.subject'],
      censor: '[redacted]',
    },
    base: { pid: process.pid },
  });
}

/** A logger for no output (tests, CLI commands that print their own results). */
export const silentLogger: Logger = pino({ level: 'silent' });
