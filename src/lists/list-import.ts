/**
 * Bulk list files: decoding (UTF-8 with or without BOM, UTF-16 with BOM, else GB18030), the four formats
 * (CSV, plain lines, JSON, xlsx) read into numbered records, and the validation of each record against a
 * list. Pure functions, no I/O: the service compares the result with the live list and writes it.
 *
 * Line numbers are what the operator sees: the physical line of a text file (a header is line 1), the
 * 1-based index of a JSON array, the spreadsheet row of an xlsx.
 */
import { normalizePhone } from '../shared/phone.js';
import { paced, readXlsx, XlsxError } from './xlsx.js';

export type ListKind = 'black' | 'white';
export type Treatment = 'restrict' | 'queue' | 'priority' | 'skip-menu';
export type ImportFormat = 'csv' | 'text' | 'json' | 'xlsx';

export const TREATMENTS: Record<ListKind, readonly Treatment[]> = { black: ['restrict', 'queue'], white: ['priority', 'skip-menu'] };

export const REASON_MAX = 500;
/** data rows one file may hold */
export const MAX_IMPORT_ROWS = 200_000;
/** entries listed in a report's `invalid` and `duplicateLines` (the counts are always complete) */
export const MAX_REPORTED_INVALID = 10_000;
export const MAX_REPORTED_DUPLICATES = 1_000;

/** a file that cannot be read at all (as opposed to bad lines in it): a 400 */
export class ImportFileError extends Error {
  override name = 'ImportFileError';
}

/**
 * Numbers no one may blacklist: emergency services, the 12345 hotline itself and the special lines it
 * carries (also as dialled from outside the province, 0898 + the short number).
 */
const PROTECTED: Record<string, string> = {
  '110': 'police emergency number',
  '119': 'fire emergency number',
  '120': 'medical emergency number',
  '122': 'traffic accident emergency number',
  '12345': 'the government service hotline itself',
  '12333': "one of the hotline's own special lines",
  '12329': "one of the hotline's own special lines",
  '12367': "one of the hotline's own special lines",
  '95198': "one of the hotline's own special lines",
  '4009513513': "one of the hotline's own special lines",
};

/** why a (normalised) number may not be on the black list, or null */
export function protectedReason(number: string): string | null {
  const short = number.startsWith('0898') && PROTECTED[number.slice(4)] && number.length <= 9 ? number.slice(4) : number;
  const what = PROTECTED[short];
  return what ? `${number} is protected (${what}) and cannot be blacklisted` : null;
}

/** a cell a spreadsheet would run as a formula: = or @ first, or + / - followed by anything but a number */
export function looksLikeFormula(s: string): boolean {
  if (s === '') return false;
  const c = s[0];
  if (c === '=' || c === '@') return true;
  if (c === '+' || c === '-') return !/^[\d\s().-]*$/.test(s.slice(1));
  return false;
}

/** our own export's guard: a leading ' before a formula character is taken off again on import */
function unguard(s: string): string {
  return s.length > 1 && s[0] === "'" && '=+-@'.includes(s[1]!) ? s.slice(1) : s;
}

// ---------------------------------------------------------------- decoding

export interface Decoded {
  text: string;
  /** utf-8, utf-8-bom, utf-16le, utf-16be or gb18030 */
  encoding: string;
}

const GB_CHARSETS = new Set(['gbk', 'gb2312', 'gb18030', 'x-gbk', 'cp936', 'euc-cn']);

/** bytes to text: a BOM decides, else strict UTF-8, else (not UTF-8 at all) GB18030 as Chinese Excel writes CSV */
export function decodeText(buf: Buffer, charset?: string): Decoded {
  if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) return { text: new TextDecoder('utf-8').decode(buf.subarray(3)), encoding: 'utf-8-bom' };
  if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) return { text: new TextDecoder('utf-16le').decode(buf.subarray(2)), encoding: 'utf-16le' };
  if (buf.length >= 2 && buf[0] === 0xfe && buf[1] === 0xff) return { text: new TextDecoder('utf-16be').decode(buf.subarray(2)), encoding: 'utf-16be' };
  if (charset && GB_CHARSETS.has(charset.toLowerCase())) return { text: new TextDecoder('gb18030').decode(buf), encoding: 'gb18030' };
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(buf), encoding: 'utf-8' };
  } catch {
    return { text: new TextDecoder('gb18030').decode(buf), encoding: 'gb18030' };
  }
}

// ---------------------------------------------------------------- records

/** one record of a file before validation */
export interface RawRecord {
  line: number;
  cells: string[];
  /** the record as written (for the report) */
  raw: string;
  /** set when the record could not even be split into cells */
  error?: string;
}

/** the field the separator is: the most frequent of , ; TAB outside quotes on the first non-empty line */
export function detectSeparator(text: string): string {
  const first = text.split(/\r\n|\n|\r/).find((l) => l.trim() !== '') ?? '';
  const counts = new Map<string, number>([
    [',', 0],
    [';', 0],
    ['\t', 0],
  ]);
  let quoted = false;
  for (const ch of first) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best = ',';
  for (const [sep, n] of counts) if (n > counts.get(best)!) best = sep;
  return best;
}

/**
 * RFC 4180 records with "" escapes; a quoted field may span lines (the record keeps its first line's
 * number). An unclosed quote makes that one line invalid and reading goes on at the next line.
 */
export function parseCsvRecords(text: string, sep = detectSeparator(text)): RawRecord[] {
  return [...csvRecords(text, sep)];
}

export function* csvRecords(text: string, sep = detectSeparator(text)): Generator<RawRecord> {
  const n = text.length;
  let i = 0;
  let line = 1;
  while (i < n) {
    const startLine = line;
    const startIdx = i;
    const cells: string[] = [];
    let cell = '';
    let quotedCell = false;
    let broken = false;
    for (;;) {
      if (i >= n) {
        cells.push(cell);
        break;
      }
      const ch = text[i]!;
      if (ch === '"' && cell.trim() === '' && !quotedCell) {
        // an opening quote (spaces before it are dropped); find the closing one
        let j = i + 1;
        let value = '';
        let lines = 0;
        let closed = false;
        while (j < n) {
          const cj = text[j]!;
          if (cj === '"') {
            if (text[j + 1] === '"') {
              value += '"';
              j += 2;
              continue;
            }
            closed = true;
            j++;
            break;
          }
          if (cj === '\n' || (cj === '\r' && text[j + 1] !== '\n')) lines++;
          value += cj;
          j++;
        }
        if (!closed) {
          broken = true;
          break;
        }
        cell = value;
        quotedCell = true;
        line += lines;
        i = j;
        continue;
      }
      if (ch === sep) {
        cells.push(cell);
        cell = '';
        quotedCell = false;
        i++;
        continue;
      }
      if (ch === '\r' || ch === '\n') {
        cells.push(cell);
        i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
        break;
      }
      if (quotedCell) {
        // text after a closing quote ("a"b): kept, as spreadsheets do
        cell += ch;
        i++;
        continue;
      }
      cell += ch;
      i++;
    }
    if (broken) {
      // the rest of this physical line is the bad record; go on from the next one
      const m = /\r\n|\n|\r/g;
      m.lastIndex = startIdx;
      const eol = m.exec(text);
      const end = eol ? eol.index : n;
      yield { line: startLine, cells: [], raw: text.slice(startIdx, end), error: 'unterminated quoted field' };
      i = eol ? eol.index + eol[0].length : n;
      line = startLine + 1;
      continue;
    }
    const raw = text.slice(startIdx, i).replace(/(\r\n|\n|\r)$/, '');
    if (cells.every((c) => c.trim() === '')) continue; // an empty line
    yield { line: startLine, cells, raw };
  }
}

export function parseTextRecords(text: string): RawRecord[] {
  const out: RawRecord[] = [];
  text.split(/\r\n|\n|\r/).forEach((l, idx) => {
    if (l.trim() !== '') out.push({ line: idx + 1, cells: [l], raw: l });
  });
  return out;
}

const JSON_KEYS = new Set(['number', 'reason', 'expiresAt', 'treatment']);
/** the other fields of our own JSON export: accepted and ignored, so an export imports again */
const JSON_EXPORT_KEYS = new Set(['createdAt', 'createdBy', 'expired']);

export function parseJsonRecords(text: string): RawRecord[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ImportFileError(`the file is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc)) throw new ImportFileError('the JSON file must be an array of numbers (strings) or of objects {number, reason?, expiresAt?, treatment?}');
  return doc.map((el, idx): RawRecord => {
    const line = idx + 1;
    const raw = JSON.stringify(el) ?? String(el);
    if (typeof el === 'string') return { line, cells: [el], raw };
    if (typeof el === 'number' && Number.isSafeInteger(el) && el > 0) return { line, cells: [String(el)], raw };
    if (el === null || typeof el !== 'object' || Array.isArray(el)) return { line, cells: [], raw, error: 'expected a number (as a string) or an object {number, reason?, expiresAt?, treatment?}' };
    const o = el as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => !JSON_KEYS.has(k) && !JSON_EXPORT_KEYS.has(k));
    if (unknown.length) return { line, cells: [], raw, error: `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (allowed: number, reason, expiresAt, treatment)` };
    const cells: string[] = [];
    for (const k of ['number', 'reason', 'expiresAt', 'treatment'] as const) {
      const v = o[k];
      if (v === undefined || v === null) cells.push('');
      else if (typeof v === 'string') cells.push(v);
      else if (k === 'number' && typeof v === 'number' && Number.isSafeInteger(v)) cells.push(String(v));
      else return { line, cells: [], raw, error: `${k} must be a string` };
    }
    if (cells[0]!.trim() === '') return { line, cells: [], raw, error: 'number is missing' };
    return { line, cells, raw };
  });
}

export async function parseXlsxRecords(buf: Buffer): Promise<RawRecord[]> {
  try {
    return (await readXlsx(buf)).map((r) => ({ line: r.row, cells: r.cells, raw: r.cells.join(',') }));
  } catch (err) {
    if (err instanceof XlsxError) throw new ImportFileError(err.message);
    throw err;
  }
}

// ---------------------------------------------------------------- columns

type Column = 'number' | 'reason' | 'expiresAt' | 'treatment';
const POSITIONAL: Column[] = ['number', 'reason', 'expiresAt', 'treatment'];

const HEADER_NAMES: Record<string, Column> = {};
for (const [col, names] of Object.entries({
  number: ['number', 'phone', 'phonenumber', 'tel', 'telephone', 'mobile', 'msisdn', 'caller', '号码', '电话', '电话号码', '手机', '手机号', '手机号码', '来电号码'],
  reason: ['reason', 'note', 'notes', 'remark', 'remarks', 'comment', 'description', '原因', '理由', '备注', '说明'],
  expiresAt: ['expiresat', 'expires', 'expiry', 'expiration', 'expirydate', 'validuntil', 'until', '到期', '到期时间', '到期日期', '过期时间', '有效期', '有效期至', '截止时间'],
  treatment: ['treatment', 'action', 'handling', '处理', '处理方式', '处置方式'],
} satisfies Record<Column, string[]>)) {
  for (const n of names) HEADER_NAMES[n] = col as Column;
}

/** a header row: its first cell is no number (not a digit, +, ( or a guarded formula) */
function isHeader(r: RawRecord): boolean {
  const first = unguard((r.cells[0] ?? '').trim());
  return first !== '' && !r.error && !/^[\d+(]/.test(first) && normalizePhone(first) === null && !looksLikeFormula(first);
}

interface Layout {
  header: boolean;
  /** cell index -> column (null: a column this importer ignores, e.g. createdAt of an export) */
  columns: Array<Column | null>;
  /** how many cells a row may have */
  width: number;
}

function layoutOf(records: RawRecord[], positional: boolean): Layout {
  const first = records[0];
  if (!positional && first && isHeader(first)) {
    const named = first.cells.map((c) => HEADER_NAMES[c.trim().toLowerCase().replace(/[\s_\-.]/g, '')] ?? null);
    // a header naming no number column is only labels: the columns are positional
    const columns = named.includes('number') ? named : first.cells.map((_c, i) => POSITIONAL[i] ?? null);
    return { header: true, columns, width: Math.max(first.cells.length, named.includes('number') ? 0 : POSITIONAL.length) };
  }
  return { header: false, columns: POSITIONAL, width: POSITIONAL.length };
}

// ---------------------------------------------------------------- validation

export interface ImportRow {
  line: number;
  number: string;
  reason: string;
  treatment: Treatment | null;
  expiresAt: Date | null;
}

export interface ReportLine {
  line: number;
  value: string;
  reason: string;
}

export interface ParsedImport {
  format: ImportFormat;
  encoding: string;
  header: boolean;
  /** data records read (not the header, not empty lines) */
  rows: number;
  /** valid and first in the file */
  valid: ImportRow[];
  invalid: ReportLine[];
  /** valid numbers that an earlier line of the file already had */
  repeated: ReportLine[];
}

export interface ValidateOptions {
  kind: ListKind;
  /** for rows without a reason */
  defaultReason: string;
  now: Date;
}

const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 197)}...` : s);

/** Asia/Shanghai wall time -> instant */
function shanghai(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): Date | null {
  const t = Date.UTC(y, mo - 1, d, h, mi, s) - 8 * 3600_000;
  const back = new Date(t + 8 * 3600_000);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return null;
  return new Date(t);
}

/**
 * An expiry as operators write it: ISO 8601 with a zone; a date and time without a zone (Asia/Shanghai);
 * a date alone (2027-01-31, 2027/1/31: until the end of that day in Asia/Shanghai); an Excel date serial.
 */
export function parseExpiry(s: string): Date | null {
  const v = s.trim();
  let m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.exec(v);
  if (m) {
    if (!shanghai(+m[1]!, +m[2]!, +m[3]!, +m[4]!, +m[5]!, +(m[6] ?? 0))) return null;
    const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}${m[7] ?? ''}${m[8]!.length === 5 ? `${m[8]!.slice(0, 3)}:${m[8]!.slice(3)}` : m[8]!.toUpperCase()}`);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  m = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/.exec(v);
  if (m) {
    if (m[4] !== undefined) return shanghai(+m[1]!, +m[2]!, +m[3]!, +m[4]!, +m[5]!, +(m[6] ?? 0));
    const day = shanghai(+m[1]!, +m[2]!, +m[3]!);
    return day ? new Date(day.getTime() + 86400_000) : null;
  }
  if (/^\d{5}(\.\d+)?$/.test(v)) {
    // Excel: days since 1899-12-30 in local (here: Asia/Shanghai) time; a whole day means until its end
    const serial = Number(v);
    if (serial < 25569 || serial > 73051) return null;
    const whole = Number.isInteger(serial);
    return new Date(Math.round((serial - 25569 + (whole ? 1 : 0)) * 86400_000) - 8 * 3600_000);
  }
  return null;
}

export function validateTreatment(kind: ListKind, value: string): { treatment: Treatment | null } | { error: string } {
  const t = value.trim().toLowerCase();
  if (t === '') return { treatment: null };
  if ((TREATMENTS[kind] as readonly string[]).includes(t)) return { treatment: t as Treatment };
  return { error: `treatment "${clip(value)}" does not fit the ${kind} list (${TREATMENTS[kind].join(' or ')}, or empty: the line decides)` };
}

/** records -> valid rows, invalid lines and repeats, in file order */
export async function validateRecords(records: RawRecord[], o: ValidateOptions & { format: ImportFormat; encoding: string; positional?: boolean }): Promise<ParsedImport> {
  const layout = layoutOf(records, o.positional ?? false);
  const data = layout.header ? records.slice(1) : records;
  if (data.length > MAX_IMPORT_ROWS) throw new ImportFileError(`the file has ${data.length} rows; at most ${MAX_IMPORT_ROWS} per import`);
  const valid: ImportRow[] = [];
  const invalid: ReportLine[] = [];
  const repeated: ReportLine[] = [];
  const firstLine = new Map<string, number>();
  for await (const r of paced(data)) {
    const bad = (reason: string, value = r.raw) => invalid.push({ line: r.line, value: clip(value.trim()), reason });
    if (r.error) {
      bad(r.error);
      continue;
    }
    const cells = r.cells.map((c) => c.trim());
    while (cells.length > 1 && cells[cells.length - 1] === '') cells.pop();
    if (cells.length > layout.width) {
      bad(`${cells.length} columns; expected at most ${layout.width} (${layout.header ? 'as the header has' : 'number, reason, expiresAt, treatment'})`);
      continue;
    }
    const get = (col: Column) => {
      const i = layout.columns.indexOf(col);
      return i >= 0 ? (cells[i] ?? '') : '';
    };
    const formula = cells.map(unguard).find(looksLikeFormula);
    if (formula !== undefined) {
      bad(`"${clip(formula)}" looks like a spreadsheet formula`, formula);
      continue;
    }
    const given = unguard(get('number'));
    if (given === '') {
      bad('number is missing');
      continue;
    }
    const number = normalizePhone(given);
    if (number === null) {
      bad('not a phone number (digits, optionally + and a country code)', given);
      continue;
    }
    if (o.kind === 'black') {
      const p = protectedReason(number);
      if (p) {
        bad(p, given);
        continue;
      }
    }
    const reason = unguard(get('reason')) || o.defaultReason;
    if (reason.length > REASON_MAX) {
      bad(`reason longer than ${REASON_MAX} characters`);
      continue;
    }
    const tr = validateTreatment(o.kind, get('treatment'));
    if ('error' in tr) {
      bad(tr.error, get('treatment'));
      continue;
    }
    let expiresAt: Date | null = null;
    const exp = get('expiresAt');
    if (exp !== '') {
      expiresAt = parseExpiry(exp);
      if (!expiresAt) {
        bad(`expiresAt "${clip(exp)}" is not a date (2027-01-31, 2027-01-31T18:00:00+08:00)`, exp);
        continue;
      }
      if (expiresAt.getTime() <= o.now.getTime()) {
        bad(`expiresAt ${exp} is in the past`, exp);
        continue;
      }
    }
    const seen = firstLine.get(number);
    if (seen !== undefined) {
      repeated.push({ line: r.line, value: clip(given), reason: `${number} repeats line ${seen} (the first one is kept)` });
      continue;
    }
    firstLine.set(number, r.line);
    valid.push({ line: r.line, number, reason, treatment: tr.treatment, expiresAt });
  }
  return { format: o.format, encoding: o.encoding, header: layout.header, rows: data.length, valid, invalid, repeated };
}

// ---------------------------------------------------------------- entry point

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** the media types the import route takes */
export const IMPORT_CONTENT_TYPES = ['text/csv', 'text/tab-separated-values', 'text/plain', 'application/json', XLSX_TYPE, 'application/vnd.ms-excel', 'application/octet-stream'];

/** the format of an upload from its Content-Type; a generic or Excel type is sniffed (zip = xlsx, else CSV) */
export function formatOf(contentType: string, body: Buffer): ImportFormat {
  const media = contentType.split(';')[0]!.trim().toLowerCase();
  if (media === 'text/plain') return 'text';
  if (media === 'application/json') return 'json';
  if (media === XLSX_TYPE) return 'xlsx';
  if (media === 'application/vnd.ms-excel' || media === 'application/octet-stream') {
    if (body.length >= 4 && body.readUInt32LE(0) === 0x04034b50) return 'xlsx';
    if (body.length >= 4 && body.readUInt32LE(0) === 0xe011cfd0) throw new ImportFileError('legacy .xls workbooks are not supported: save the sheet as .xlsx or CSV');
  }
  return 'csv';
}

/**
 * Read and validate an uploaded file (rejects with ImportFileError when the file as a whole is unreadable).
 * Long loops pause now and then: an 8 MB file must not hold up the calls this process serves.
 */
export async function parseImport(body: Buffer, contentType: string, o: ValidateOptions): Promise<ParsedImport> {
  const format = formatOf(contentType, body);
  const charset = /;\s*charset="?([\w-]+)"?/i.exec(contentType)?.[1];
  let records: RawRecord[];
  let encoding: string;
  if (format === 'xlsx') {
    records = await parseXlsxRecords(body);
    encoding = 'utf-8';
  } else {
    const d = decodeText(body, charset);
    encoding = d.encoding;
    if (format === 'csv') {
      records = [];
      for await (const r of paced(csvRecords(d.text))) records.push(r);
    } else {
      records = format === 'json' ? parseJsonRecords(d.text) : parseTextRecords(d.text);
    }
  }
  return validateRecords(records, { ...o, format, encoding, positional: format === 'json' || format === 'text' });
}
