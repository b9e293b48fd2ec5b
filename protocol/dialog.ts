/**
 * ControlBlock rules and dialog state as a pure state machine (osci-protocol.md §2), both roles.
 * Presence rules per message type are the restrictions of `ControlBlockTemplate` in the OSCI XSDs
 * (osci-reference/schema/<Type>.xsd and ResponseTo<Type>.xsd). No I/O: the caller stores DialogState
 * (keyed by ConversationId) and supplies randomness only if it wants to (tests).
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { OsciError, type OsciErrorCode } from './errors.ts';
import type { FeedbackCode } from './feedback.ts';

export type DialogMessageType =
  | 'initDialog'
  | 'exitDialog'
  | 'getMessageId'
  | 'storeDelivery'
  | 'fetchDelivery'
  | 'fetchProcessCard'
  | 'forwardDelivery'
  | 'acceptDelivery'
  | 'mediateDelivery'
  | 'processDelivery'
  | 'partialStoreDelivery'
  | 'partialFetchDelivery';

export interface ControlBlock {
  conversationId?: string;
  sequenceNumber?: number;
  response?: string;
  challenge?: string;
}

/** Supplier-side state of one dialog. */
export interface DialogState {
  /** Numeric (XSD `Number`, \d+). Absent only for acceptDelivery/processDelivery. */
  conversationId?: string;
  sequenceNumber: number;
  /** The supplier's last Challenge, expected back as the next request's Response; consumed on use. */
  lastChallenge?: string;
  /** Who opened the dialog (hash of the client's signature certificate). */
  clientId: string;
  open: boolean;
  explicit: boolean;
  /** MessageIds fetched in this dialog whose reception is acknowledged by the next request (§2). */
  pendingReceptions: string[];
}

/** Client-side state of an explicit dialog (implicit dialogs keep no state). */
export interface ClientDialogState {
  conversationId: string;
  sequenceNumber: number;
  /** The supplier's last Challenge, to be sent as Response. */
  lastChallenge?: string;
  open: boolean;
}

export type Presence = 'required' | 'optional' | 'prohibited';
export interface ControlBlockRule {
  response: Presence;
  challenge: Presence;
  conversationId: Presence;
  sequenceNumber: Presence;
}

const rule = (response: Presence, challenge: Presence, conversationId: Presence, sequenceNumber: Presence): ControlBlockRule =>
  Object.freeze({ response, challenge, conversationId, sequenceNumber });

const R = 'required';
const O = 'optional';
const P = 'prohibited';

/** ControlBlock of each request type ([X] <Type>.xsd). */
export const REQUEST_RULES: Readonly<Record<DialogMessageType, ControlBlockRule>> = Object.freeze({
  initDialog: rule(P, R, P, P),
  exitDialog: rule(R, R, R, R),
  getMessageId: rule(O, R, O, R),
  storeDelivery: rule(O, R, O, R),
  forwardDelivery: rule(O, R, O, R),
  fetchDelivery: rule(R, R, R, R),
  fetchProcessCard: rule(R, R, R, R),
  mediateDelivery: rule(R, R, R, R),
  acceptDelivery: rule(P, R, P, P),
  processDelivery: rule(P, R, P, P),
  // Chunking (EFFI.xsd does not restrict the template): as storeDelivery / fetchDelivery.
  partialStoreDelivery: rule(O, R, O, R),
  partialFetchDelivery: rule(R, R, R, R),
});

/** ControlBlock of the response to each request type ([X] ResponseTo<Type>.xsd). */
export const RESPONSE_RULES: Readonly<Record<DialogMessageType, ControlBlockRule>> = Object.freeze({
  initDialog: rule(R, R, R, P),
  exitDialog: rule(R, P, R, R),
  getMessageId: rule(R, O, R, R),
  storeDelivery: rule(R, O, R, R),
  forwardDelivery: rule(R, O, O, O), // [KORR7]: ConversationId and SequenceNumber optional
  fetchDelivery: rule(R, R, R, R),
  fetchProcessCard: rule(R, R, R, R),
  mediateDelivery: rule(R, R, R, R),
  acceptDelivery: rule(R, P, P, P),
  processDelivery: rule(R, P, P, P),
  partialStoreDelivery: rule(R, O, R, R),
  partialFetchDelivery: rule(R, R, R, R),
});

/** Types that may only be sent inside an explicit dialog (a missing ConversationId gives 9802). */
/** Dialog SequenceNumber right after initDialog: the first request of the dialog carries AFTER_INIT + 1 = 0. */
export const AFTER_INIT = -1;

export function requiresExplicitDialog(type: DialogMessageType): boolean {
  return REQUEST_RULES[type].conversationId === 'required';
}

/** Types that are dialog-free: the intermediary pushing to a passive recipient (no ConversationId at all). */
function isPush(type: DialogMessageType): boolean {
  return type === 'acceptDelivery' || type === 'processDelivery';
}

const MAX_TOKEN = 1024;
const CONVERSATION_ID = /^\d{1,32}$/;

export function isConversationId(s: string): boolean {
  return CONVERSATION_ID.test(s);
}

/** Parses a SequenceNumber attribute (XSD `Number`, \d+). */
export function parseSequenceNumber(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new OsciError('ERR_CONTROLBLOCK', 'SequenceNumber is not a number');
  return Number(text);
}

export interface DialogRandom {
  /** Fresh Challenge; default base64 of 10 random bytes, like the reference library. */
  newChallenge?: () => string;
  /** Fresh ConversationId; default 15 random digits. The caller's store must still ensure uniqueness. */
  newConversationId?: () => string;
}

export function newChallenge(): string {
  return randomBytes(10).toString('base64');
}

export function newConversationId(): string {
  // randomInt spans at most 2^48: first digit 1-9, then 14 digits
  return `${randomInt(1, 10)}${String(randomInt(0, 100_000_000_000_000)).padStart(14, '0')}`;
}

export type CheckResult<T> =
  | ({ ok: true } & T)
  | { ok: false; code: FeedbackCode; error: OsciError };

function fail(code: OsciErrorCode, message: string): { ok: false; code: FeedbackCode; error: OsciError } {
  const error = new OsciError(code, message);
  return { ok: false, code: error.feedback, error };
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Syntax and presence of a ControlBlock against a rule; undefined when it conforms. */
function checkShape(
  cb: ControlBlock,
  r: ControlBlockRule,
  what: string,
  missingConversation: OsciErrorCode,
): { ok: false; code: FeedbackCode; error: OsciError } | undefined {
  if (cb.conversationId !== undefined && !isConversationId(cb.conversationId)) {
    return fail('ERR_CONTROLBLOCK', `${what}: ConversationId is not numeric`);
  }
  if (cb.sequenceNumber !== undefined && !(Number.isSafeInteger(cb.sequenceNumber) && cb.sequenceNumber >= 0)) {
    return fail('ERR_CONTROLBLOCK', `${what}: SequenceNumber is not a non-negative integer`);
  }
  for (const key of ['response', 'challenge'] as const) {
    const v = cb[key];
    if (v !== undefined && (v.length === 0 || v.length > MAX_TOKEN)) {
      return fail('ERR_CONTROLBLOCK', `${what}: ${key} is empty or too long`);
    }
  }
  if (r.conversationId === 'required' && cb.conversationId === undefined) {
    return fail(missingConversation, `${what}: ConversationId missing`);
  }
  const present: Record<keyof ControlBlockRule, boolean> = {
    response: cb.response !== undefined,
    challenge: cb.challenge !== undefined,
    conversationId: cb.conversationId !== undefined,
    sequenceNumber: cb.sequenceNumber !== undefined,
  };
  for (const key of ['response', 'challenge', 'conversationId', 'sequenceNumber'] as const) {
    if (r[key] === 'required' && !present[key]) return fail('ERR_CONTROLBLOCK', `${what}: ${key} missing`);
    if (r[key] === 'prohibited' && present[key]) return fail('ERR_CONTROLBLOCK', `${what}: ${key} not allowed`);
  }
  return undefined;
}

// ───────────────────────────── supplier side ─────────────────────────────

/**
 * Checks a request's ControlBlock (§2) against the dialog it names. `state` is the dialog stored under
 * `cb.conversationId` (undefined if none or if the request names none). On success `next` is the state
 * to store once the request is processed, and `acknowledged` the MessageIds fetched earlier in this
 * dialog whose reception this further request acknowledges.
 */
export function acceptRequest(
  state: DialogState | undefined,
  type: DialogMessageType,
  cb: ControlBlock,
  clientId: string,
  random: DialogRandom = {},
): CheckResult<{ next: DialogState; acknowledged: string[] }> {
  const bad = checkShape(cb, REQUEST_RULES[type], type, 'ERR_DIALOG_REQUIRED');
  if (bad) return bad;

  if (cb.conversationId !== undefined) {
    // Explicit dialog: same dialog, same client, Response = our last Challenge, SequenceNumber + 1.
    if (state === undefined || state.conversationId !== cb.conversationId || !state.explicit || !state.open) {
      return fail('ERR_DIALOG_UNKNOWN', `${type}: no open dialog ${cb.conversationId}`);
    }
    if (!sameToken(state.clientId, clientId)) {
      return fail('ERR_DIALOG_UNKNOWN', `${type}: dialog ${cb.conversationId} belongs to another client`);
    }
    const expected = state.sequenceNumber + 1;
    const seq = cb.sequenceNumber as number;
    if (seq < expected) return fail('ERR_REPLAY', `${type}: SequenceNumber ${seq} already used`);
    if (seq > expected) return fail('ERR_SEQUENCE', `${type}: SequenceNumber ${seq}, expected ${expected}`);
    if (state.lastChallenge === undefined) {
      return fail('ERR_REPLAY', `${type}: the supplier's last Challenge was already answered`);
    }
    if (cb.response === undefined || !sameToken(cb.response, state.lastChallenge)) {
      return fail('ERR_CONTROLBLOCK', `${type}: Response does not match the supplier's Challenge`);
    }
    const next: DialogState = {
      conversationId: state.conversationId,
      sequenceNumber: seq,
      clientId: state.clientId,
      open: type !== 'exitDialog',
      explicit: true,
      pendingReceptions: [],
    };
    return { ok: true, next, acknowledged: [...state.pendingReceptions] };
  }

  const base = { sequenceNumber: 0, clientId, pendingReceptions: [] as string[] };
  if (type === 'initDialog') {
    const conversationId = (random.newConversationId ?? newConversationId)();
    if (!isConversationId(conversationId)) throw new OsciError('ERR_INTERNAL', 'generated ConversationId is not numeric');
    // Observed with the reference library: after initDialog the client counts from -1, so the first request of the
    // dialog carries SequenceNumber 0, the next 1, ... (osci-protocol.md §2 says 1; the library sends 0).
    return { ok: true, next: { ...base, sequenceNumber: AFTER_INIT, conversationId, open: true, explicit: true }, acknowledged: [] };
  }
  if (isPush(type)) {
    return { ok: true, next: { ...base, open: false, explicit: false }, acknowledged: [] };
  }
  // Implicit dialog (getMessageId, storeDelivery, forwardDelivery): SequenceNumber 0, Challenge only.
  if (cb.sequenceNumber !== 0) return fail('ERR_SEQUENCE', `${type}: implicit dialog needs SequenceNumber 0`);
  if (cb.response !== undefined) return fail('ERR_CONTROLBLOCK', `${type}: Response outside an explicit dialog`);
  const next: DialogState = { ...base, open: false, explicit: false };
  // The response XSDs of getMessageId/storeDelivery require a ConversationId even here.
  if (RESPONSE_RULES[type].conversationId === 'required') {
    next.conversationId = (random.newConversationId ?? newConversationId)();
  }
  return { ok: true, next, acknowledged: [] };
}

/**
 * The response's ControlBlock for an accepted request: Response = the request's Challenge, same
 * ConversationId/SequenceNumber, and a fresh supplier Challenge while an explicit dialog stays open.
 * `next` records that Challenge; store it.
 */
export function respond(
  state: DialogState,
  type: DialogMessageType,
  request: ControlBlock,
  random: DialogRandom = {},
): { controlBlock: ControlBlock; next: DialogState } {
  if (request.challenge === undefined) throw new OsciError('ERR_CONTROLBLOCK', 'request without Challenge');
  const r = RESPONSE_RULES[type];
  const cb: ControlBlock = {};
  if (r.conversationId !== 'prohibited' && state.conversationId !== undefined) {
    if (r.conversationId === 'required' || state.explicit) cb.conversationId = state.conversationId;
  }
  if (r.sequenceNumber !== 'prohibited') cb.sequenceNumber = state.sequenceNumber;
  cb.response = request.challenge;
  const issue = r.challenge === 'required' || (r.challenge === 'optional' && state.explicit && state.open);
  const next: DialogState = { ...state, pendingReceptions: [...state.pendingReceptions] };
  delete next.lastChallenge;
  if (issue) {
    cb.challenge = (random.newChallenge ?? newChallenge)();
    next.lastChallenge = cb.challenge;
  }
  const bad = checkShape(cb, r, `responseTo ${type}`, 'ERR_CONTROLBLOCK');
  if (bad) throw new OsciError('ERR_INTERNAL', `cannot build the response ControlBlock: ${bad.error.message}`);
  return { controlBlock: cb, next };
}

/** Records a delivery handed out by fetchDelivery; its reception is acknowledged by the next request. */
export function recordFetched(state: DialogState, messageId: string): DialogState {
  if (!state.explicit || !state.open) throw new OsciError('ERR_DIALOG_REQUIRED', 'fetched outside an open explicit dialog');
  return { ...state, pendingReceptions: [...state.pendingReceptions, messageId] };
}

/** Feedback for a successfully executed order: 0800 dialog closed, 0801 dialog still open. */
export function doneFeedback(next: DialogState): '0800' | '0801' {
  return next.explicit && next.open ? '0801' : '0800';
}

// ───────────────────────────── client side ─────────────────────────────

/**
 * The ControlBlock for the client's next request. Inside an open explicit dialog: same ConversationId,
 * SequenceNumber + 1, Response = the supplier's last Challenge. Otherwise initDialog / implicit /
 * push shapes. Throws ERR_DIALOG_REQUIRED for fetches outside a dialog.
 */
export function clientNext(
  state: ClientDialogState | undefined,
  type: DialogMessageType,
  random: DialogRandom = {},
): ControlBlock {
  const challenge = (random.newChallenge ?? newChallenge)();
  const inDialog = state !== undefined && state.open;
  if (type === 'initDialog' || isPush(type)) {
    if (type === 'initDialog' && inDialog) throw new OsciError('ERR_CONTROLBLOCK', 'a dialog is already open');
    return { challenge };
  }
  if (inDialog) {
    if (state.lastChallenge === undefined) {
      throw new OsciError('ERR_CONTROLBLOCK', 'the supplier sent no Challenge to answer; the dialog cannot continue');
    }
    return {
      conversationId: state.conversationId,
      sequenceNumber: state.sequenceNumber + 1,
      response: state.lastChallenge,
      challenge,
    };
  }
  if (requiresExplicitDialog(type)) throw new OsciError('ERR_DIALOG_REQUIRED', `${type} needs an explicit dialog`);
  return { sequenceNumber: 0, challenge };
}

/**
 * Checks the supplier's response ControlBlock against what was sent (9400 on any mismatch) and returns
 * the client's dialog state afterwards (undefined outside an explicit dialog or once it is closed).
 */
export function checkResponse(
  sent: ControlBlock,
  received: ControlBlock,
  type: DialogMessageType,
): CheckResult<{ next: ClientDialogState | undefined }> {
  const bad = checkShape(received, RESPONSE_RULES[type], `responseTo ${type}`, 'ERR_CONTROLBLOCK');
  if (bad) return bad;
  if (sent.challenge === undefined || received.response === undefined || !sameToken(received.response, sent.challenge)) {
    return fail('ERR_CONTROLBLOCK', 'Response does not echo our Challenge');
  }
  if (sent.conversationId !== undefined && received.conversationId !== sent.conversationId) {
    return fail('ERR_CONTROLBLOCK', 'ConversationId differs from the request');
  }
  if (
    sent.sequenceNumber !== undefined &&
    received.sequenceNumber !== undefined &&
    received.sequenceNumber !== sent.sequenceNumber
  ) {
    return fail('ERR_CONTROLBLOCK', 'SequenceNumber differs from the request');
  }
  if (type === 'initDialog') {
    const next: ClientDialogState = {
      conversationId: received.conversationId as string,
      sequenceNumber: AFTER_INIT,
      open: true,
    };
    if (received.challenge !== undefined) next.lastChallenge = received.challenge;
    return { ok: true, next };
  }
  if (sent.conversationId === undefined || type === 'exitDialog') return { ok: true, next: undefined };
  const next: ClientDialogState = {
    conversationId: sent.conversationId,
    sequenceNumber: sent.sequenceNumber as number,
    open: true,
  };
  if (received.challenge !== undefined) next.lastChallenge = received.challenge;
  return { ok: true, next };
}
