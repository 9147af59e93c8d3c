/**
 * The one place phone numbers are normalised (DESIGN §5): stored and compared in this form.
 * Rules (Hainan hotline):
 * - spaces, dashes, dots and brackets are dropped;
 * - China's country code (+86, 0086, or 86 before a mobile number) is removed: Chinese numbers are
 *   stored in national form; after the country code a fixed line's trunk 0 is put back (+86 898 6xxx -> 08986xxx);
 * - a Hainan fixed line given without its area code (8 local digits) is stored with 0898;
 * - other countries' numbers keep their + form; service numbers (12345, 95198) are kept as dialled.
 * Returns null when what is left is not a plausible number (letters, too short or too long).
 */
export function normalizePhone(input: string | null | undefined): string | null {
  if (input == null) return null;
  let s = String(input).trim().replace(/[\s\-().]/g, '');
  if (s === '') return null;
  let international = false;
  if (s.startsWith('+')) {
    s = s.slice(1);
    if (!s.startsWith('86')) return /^\d{6,15}$/.test(s) ? `+${s}` : null;
    s = s.slice(2);
    international = true;
  } else if (s.startsWith('0086')) {
    s = s.slice(4);
    international = true;
  } else if (/^861\d{10}$/.test(s)) {
    s = s.slice(2); // 86 + mobile, as some gateways send it
  }
  if (!/^\d{3,15}$/.test(s)) return null;
  if (international && /^[2-9]\d{8,10}$/.test(s)) s = `0${s}`;
  if (/^[2-9]\d{7}$/.test(s)) s = `0898${s}`;
  return s;
}

/**
 * The caller as stored and shown: the normalised number, else the raw caller ID made harmless (control
 * characters, quotes and angle brackets removed: pjsip unescapes %0D%0A, and the value is sent on as the
 * caller ID of the agent's leg), else 'anonymous'.
 */
export function callerOf(raw: string | null | undefined): string {
  const n = normalizePhone(raw);
  if (n) return n;
  const safe = String(raw ?? '').replace(/[\u0000-\u001f\u007f"<>\\]/g, '').trim().slice(0, 80);
  return safe || 'anonymous';
}
