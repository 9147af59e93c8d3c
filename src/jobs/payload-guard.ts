/**
 * Job payloads live in Redis (which keeps them after the job and is not the place for personal data):
 * they carry ids, never a citizen's phone number. This guard catches the obvious mistake at enqueue time.
 */

/** field names that hold a phone number whatever their value looks like */
const PHONE_KEYS = /^(phone|phones|phonenumber|number|numbers|caller|callers|callernumber|caller_number|msisdn|mobile)$/i;

/** a Chinese mobile or fixed line, with or without +86/0086, or an international number in + form */
const PHONE_VALUE = /^(?:(?:\+86|0086|86)?1[3-9]\d{9}|(?:\+86|0086)?0\d{9,11}|\+\d{6,15})$/;

export class PhoneInPayload extends Error {
  override name = 'PhoneInPayload';
}

/** throws PhoneInPayload naming the path of the first phone-number-like value (never the value itself) */
export function assertNoPhoneNumbers(value: unknown, path = 'data'): void {
  if (typeof value === 'number' && Number.isInteger(value)) return assertNoPhoneNumbers(String(value), path);
  if (typeof value === 'string') {
    if (PHONE_VALUE.test(value.replace(/[\s\-().]/g, ''))) throw new PhoneInPayload(`job payload ${path} looks like a phone number: carry an id instead`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertNoPhoneNumbers(v, `${path}[${i}]`));
    return;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const text = typeof v === 'string' ? v !== '' : Array.isArray(v) && v.some((x) => typeof x === 'string');
      if (PHONE_KEYS.test(k) && text) {
        throw new PhoneInPayload(`job payload ${path}.${k} holds a phone number: carry an id instead`);
      }
      assertNoPhoneNumbers(v, `${path}.${k}`);
    }
  }
}
