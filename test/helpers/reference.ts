/** The captured reference requests (osci-reference/README.md "Captured messages"): type and sender of each. */
import type { RequestType } from '../../protocol/model.ts';

export const CAPTURED_REQUESTS: Readonly<Record<string, { type: RequestType; sender: 'alice' | 'bob' }>> = Object.freeze({
  '01_initDialog': { type: 'initDialog', sender: 'alice' },
  '02_getMessageId': { type: 'getMessageId', sender: 'alice' },
  '03_storeDelivery': { type: 'storeDelivery', sender: 'alice' },
  '04a_initDialog_bob': { type: 'initDialog', sender: 'bob' },
  '04_fetchDelivery': { type: 'fetchDelivery', sender: 'bob' },
  '04z_exitDialog_bob': { type: 'exitDialog', sender: 'bob' },
  '05_fetchProcessCard': { type: 'fetchProcessCard', sender: 'alice' },
  '05z_exitDialog_alice': { type: 'exitDialog', sender: 'alice' },
  '06_initDialog_noTransportEncryption': { type: 'initDialog', sender: 'alice' },
});

export const CAPTURED_TYPES: Record<string, RequestType> = Object.fromEntries(Object.entries(CAPTURED_REQUESTS).map(([k, v]) => [k, v.type]));
export const CAPTURED_SENDERS: Record<string, 'alice' | 'bob'> = Object.fromEntries(Object.entries(CAPTURED_REQUESTS).map(([k, v]) => [k, v.sender]));
