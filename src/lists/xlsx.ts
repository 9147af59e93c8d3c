/**
 * A minimal .xlsx reader for list imports: the zip central directory, stored or deflated entries
 * (node:zlib inflateRaw), the workbook's first sheet, shared strings, inline strings and numeric cells.
 * No styles, dates or formulas are evaluated: a cell is its text (a formula cell reads as `=<formula>`,
 * so the importer reports it instead of trusting its cached value).
 *
 * Untrusted input: the entry count and the total uncompressed size are capped, each entry is inflated with
 * a hard output limit (its declared size, so a lying header cannot bomb us), CRCs are checked, and
 * anything this reader does not understand (zip64, encryption, other compression) is refused with an
 * XlsxError whose message says why.
 */
import { promisify } from 'node:util';
import { crc32 as nativeCrc32, inflateRaw as inflateRawCb } from 'node:zlib';

const inflateRaw = promisify(inflateRawCb);

/** a pause every `every` items: a big sheet must not stall the process (it also runs the calls) */
export async function* paced<T>(items: Iterable<T>, every = 2000): AsyncGenerator<T> {
  let n = 0;
  for (const item of items) {
    yield item;
    if (++n % every === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

export class XlsxError extends Error {
  override name = 'XlsxError';
}

export interface XlsxLimits {
  /** entries in the zip (a workbook has a dozen or two) */
  maxEntries: number;
  /** the sum of the uncompressed sizes of the entries read */
  maxTotalBytes: number;
  /** the widest row accepted */
  maxColumns: number;
}

export const XLSX_LIMITS: XlsxLimits = { maxEntries: 1000, maxTotalBytes: 64 * 1024 * 1024, maxColumns: 256 };

export interface SheetRow {
  /** the spreadsheet's row number (1-based), as Excel shows it */
  row: number;
  /** cell texts by column (A = 0); a missing cell is '' */
  cells: string[];
}

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as zip uses it (node:zlib's native one where this Node has it: 20.15 and later) */
export function crc32(buf: Uint8Array): number {
  if (typeof nativeCrc32 === 'function') return nativeCrc32(buf) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function centralDirectory(buf: Buffer, limits: XlsxLimits): Map<string, ZipEntry> {
  if (buf.length < 22 || buf.readUInt32LE(0) !== 0x04034b50) throw new XlsxError('not an .xlsx file (no zip signature)');
  // the end-of-central-directory record is in the last 22 + 65535 (comment) bytes
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new XlsxError('corrupt .xlsx: the zip directory is missing (truncated upload?)');
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new XlsxError('zip64 workbooks are not supported');
  if (count > limits.maxEntries) throw new XlsxError(`refused: the zip has ${count} entries (at most ${limits.maxEntries})`);
  if (cdOffset + cdSize > eocd) throw new XlsxError('corrupt .xlsx: the zip directory points outside the file');
  const entries = new Map<string, ZipEntry>();
  let declaredTotal = 0;
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > eocd || buf.readUInt32LE(p) !== 0x02014b50) throw new XlsxError('corrupt .xlsx: bad zip directory entry');
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const e: ZipEntry = {
      flags: buf.readUInt16LE(p + 8),
      method: buf.readUInt16LE(p + 10),
      crc: buf.readUInt32LE(p + 16),
      compressedSize: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      localOffset: buf.readUInt32LE(p + 42),
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
    };
    if (e.size === 0xffffffff || e.compressedSize === 0xffffffff || e.localOffset === 0xffffffff) throw new XlsxError('zip64 workbooks are not supported');
    declaredTotal += e.size;
    entries.set(e.name.replace(/\\/g, '/').replace(/^\//, ''), e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  if (declaredTotal > limits.maxTotalBytes) {
    throw new XlsxError(`refused: the workbook would unpack to ${declaredTotal} bytes (at most ${limits.maxTotalBytes}); a zip bomb or a far too large sheet`);
  }
  return entries;
}

/** reads entries with a running budget: the caps hold whatever the headers claim */
class ZipReader {
  private spent = 0;
  constructor(
    private readonly buf: Buffer,
    readonly entries: Map<string, ZipEntry>,
    private readonly limits: XlsxLimits,
  ) {}

  has(name: string): boolean {
    return this.entries.has(name);
  }

  async text(name: string): Promise<string> {
    const e = this.entries.get(name);
    if (!e) throw new XlsxError(`corrupt .xlsx: ${name} is missing`);
    if (e.flags & 1) throw new XlsxError('encrypted workbooks are not supported');
    const { buf } = this;
    const lo = e.localOffset;
    if (lo + 30 > buf.length || buf.readUInt32LE(lo) !== 0x04034b50) throw new XlsxError(`corrupt .xlsx: bad local header of ${name}`);
    const start = lo + 30 + buf.readUInt16LE(lo + 26) + buf.readUInt16LE(lo + 28);
    if (start + e.compressedSize > buf.length) throw new XlsxError(`corrupt .xlsx: ${name} is cut short (truncated upload?)`);
    const data = buf.subarray(start, start + e.compressedSize);
    // reserved before inflating (in the thread pool), so two entries cannot both pass the check
    if (this.spent + e.size > this.limits.maxTotalBytes) throw new XlsxError(`refused: the workbook unpacks to more than ${this.limits.maxTotalBytes} bytes`);
    this.spent += e.size;
    let out: Buffer;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw new XlsxError(`corrupt .xlsx: ${name} has inconsistent sizes`);
      out = data;
    } else if (e.method === 8) {
      try {
        // never more than the declared size: a header that lies about it is a bomb, not a workbook
        out = await inflateRaw(data, { maxOutputLength: Math.max(e.size, 1) });
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ERR_BUFFER_TOO_LARGE') throw new XlsxError(`refused: ${name} unpacks to more than its declared ${e.size} bytes (a zip bomb?)`);
        throw new XlsxError(`corrupt .xlsx: ${name} does not inflate (${code ?? 'bad data'})`);
      }
      if (out.length !== e.size) throw new XlsxError(`corrupt .xlsx: ${name} unpacks to ${out.length} bytes, not the declared ${e.size}`);
    } else {
      throw new XlsxError(`unsupported zip compression method ${e.method} in ${name}`);
    }
    if (crc32(out) !== e.crc) throw new XlsxError(`corrupt .xlsx: ${name} fails its CRC check`);
    return out.toString('utf8');
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML character references and entities, then OOXML's `_xHHHH_` escapes */
export function xmlText(s: string): string {
  return s
    .replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_m, ent: string) => {
      if (ent[0] !== '#') return ENTITIES[ent]!;
      const cp = ent[1] === 'x' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
    })
    .replace(/_x([0-9a-fA-F]{4})_/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function attr(attrs: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|\\s)(?:[\\w.-]+:)?${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(attrs);
  return m ? xmlText(m[1] ?? m[2] ?? '') : undefined;
}

/** the text of all <t> elements in a fragment, phonetic runs (<rPh>) left out */
function runsText(xml: string): string {
  const body = xml.replace(/<(?:\w+:)?rPh\b[\s\S]*?<\/(?:\w+:)?rPh>/g, '');
  let s = '';
  for (const m of body.matchAll(/<(?:\w+:)?t(?:\s[^>]*)?>([\s\S]*?)<\/(?:\w+:)?t>/g)) s += xmlText(m[1]!);
  return s;
}

async function sharedStrings(xml: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of paced(xml.matchAll(/<(?:\w+:)?si\b[^>]*?(?:\/>|>([\s\S]*?)<\/(?:\w+:)?si>)/g))) out.push(runsText(m[1] ?? ''));
  return out;
}

/** resolve a relationship target against xl/ */
function resolvePart(target: string): string {
  if (target.startsWith('/')) return target.slice(1);
  const parts = ['xl'];
  for (const seg of target.split('/')) {
    if (seg === '..') parts.pop();
    else if (seg !== '.' && seg !== '') parts.push(seg);
  }
  return parts.join('/');
}

async function firstSheetPath(zip: ZipReader): Promise<string> {
  if (zip.has('xl/workbook.xml') && zip.has('xl/_rels/workbook.xml.rels')) {
    const wb = await zip.text('xl/workbook.xml');
    const sheet = /<(?:\w+:)?sheet\b([^>]*)\/?>/.exec(wb);
    const rid = sheet ? attr(sheet[1]!, 'id') : undefined;
    if (rid) {
      const rels = await zip.text('xl/_rels/workbook.xml.rels');
      for (const m of rels.matchAll(/<(?:\w+:)?Relationship\b([^>]*)\/?>/g)) {
        if (attr(m[1]!, 'Id') === rid) {
          const target = attr(m[1]!, 'Target');
          if (target && zip.has(resolvePart(target))) return resolvePart(target);
        }
      }
    }
  }
  const fallback = [...zip.entries.keys()].filter((n) => /^xl\/worksheets\/[^/]+\.xml$/.test(n)).sort()[0];
  if (!fallback) throw new XlsxError('the workbook has no worksheet');
  return fallback;
}

/** column letters of a cell reference (B12 -> 1) */
function columnOf(ref: string): number | null {
  const m = /^([A-Z]{1,3})\d*$/i.exec(ref);
  if (!m) return null;
  let n = 0;
  for (const ch of m[1]!.toUpperCase()) n = n * 26 + (ch.charCodeAt(0) - 64);
  return n - 1;
}

/** a number as a spreadsheet wrote it, as plain digits when it is an integer (1.38001380001E+10 -> 13800138000) */
function numberText(v: string): string {
  const s = v.trim();
  if (/^-?\d+$/.test(s)) return s;
  const n = Number(s);
  if (Number.isFinite(n) && Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) return BigInt(n).toString();
  return s;
}

function cellValue(attrs: string, inner: string, shared: string[]): string {
  const type = attr(attrs, 't') ?? 'n';
  const f = /<(?:\w+:)?f\b[^>]*>([\s\S]*?)<\/(?:\w+:)?f>/.exec(inner);
  if (f && f[1]!.trim() !== '') return `=${xmlText(f[1]!)}`;
  if (type === 'inlineStr') {
    const is = /<(?:\w+:)?is\b[^>]*>([\s\S]*?)<\/(?:\w+:)?is>/.exec(inner);
    return is ? runsText(is[1]!) : '';
  }
  const v = /<(?:\w+:)?v\b[^>]*>([\s\S]*?)<\/(?:\w+:)?v>/.exec(inner);
  const raw = v ? xmlText(v[1]!) : '';
  if (type === 's') {
    const i = Number(raw);
    if (!Number.isInteger(i) || i < 0 || i >= shared.length) throw new XlsxError(`corrupt .xlsx: a cell names shared string ${raw}, which does not exist`);
    return shared[i]!;
  }
  if (type === 'b') return raw === '1' ? 'TRUE' : 'FALSE';
  if (type === 'n') return raw === '' ? '' : numberText(raw);
  return raw; // str, e (#N/A), d (ISO date)
}

/**
 * The rows of the workbook's first sheet. Empty rows are absent; trailing empty cells are dropped.
 * Throws XlsxError for anything that is not a readable workbook.
 */
export async function readXlsx(buf: Buffer, limits: XlsxLimits = XLSX_LIMITS): Promise<SheetRow[]> {
  const zip = new ZipReader(buf, centralDirectory(buf, limits), limits);
  const sheetPath = await firstSheetPath(zip);
  const shared = zip.has('xl/sharedStrings.xml') ? await sharedStrings(await zip.text('xl/sharedStrings.xml')) : [];
  const xml = await zip.text(sheetPath);
  const rows: SheetRow[] = [];
  let nextRow = 1;
  for await (const m of paced(xml.matchAll(/<(?:\w+:)?row\b([^>]*?)(?:\/>|>([\s\S]*?)<\/(?:\w+:)?row>)/g), 500)) {
    const rAttr = attr(m[1]!, 'r');
    const row = rAttr && /^\d+$/.test(rAttr) ? Number(rAttr) : nextRow;
    nextRow = row + 1;
    const cells: string[] = [];
    let nextCol = 0;
    for (const c of (m[2] ?? '').matchAll(/<(?:\w+:)?c\b([^>]*?)(?:\/>|>([\s\S]*?)<\/(?:\w+:)?c>)/g)) {
      const ref = attr(c[1]!, 'r');
      const col = (ref ? columnOf(ref) : null) ?? nextCol;
      nextCol = col + 1;
      if (col >= limits.maxColumns) throw new XlsxError(`row ${row} is wider than ${limits.maxColumns} columns`);
      const value = cellValue(c[1]!, c[2] ?? '', shared);
      while (cells.length < col) cells.push('');
      cells[col] = value;
    }
    while (cells.length && cells[cells.length - 1]!.trim() === '') cells.pop();
    if (cells.length) rows.push({ row, cells });
  }
  return rows;
}

/** a zip's first bytes (PK\3\4): how a spreadsheet upload is recognised whatever its Content-Type */
export const isZip = (buf: Buffer): boolean => buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50;
