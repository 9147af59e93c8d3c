/**
 * A tiny .xlsx WRITER for tests (the service only reads them): a zip written here (stored or deflated
 * entries), a workbook whose first sheet holds the rows, shared strings or inline strings, numeric cells,
 * formulas. `zip()` is exposed so tests can build broken and hostile archives too.
 */
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/lists/xlsx.js';

export interface ZipFile {
  name: string;
  data: Buffer | string;
  /** 0 stored, 8 deflated (default) */
  method?: 0 | 8;
  /** lie about the uncompressed size (zip bomb tests) */
  declaredSize?: number;
  /** lie about the CRC (corruption tests) */
  crc?: number;
}

export function zip(files: ZipFile[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const data = Buffer.isBuffer(f.data) ? f.data : Buffer.from(f.data, 'utf8');
    const method = f.method ?? 8;
    const packed = method === 8 ? deflateRawSync(data) : data;
    const name = Buffer.from(f.name, 'utf8');
    const crc = f.crc ?? crc32(data);
    const size = f.declaredSize ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x5a21, 12); // 2025-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, packed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x5a21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

export type Cell = string | number | null | { formula: string; cached?: string } | { inline: string } | { rich: string[] };

export interface XlsxOptions {
  /** strings through xl/sharedStrings.xml (default) or inline */
  sharedStrings?: boolean;
  deflate?: boolean;
  /** a second sheet, stored first in the zip and as sheet1.xml, that the workbook lists second: the reader must follow the workbook */
  otherSheet?: Cell[][];
}

/** marks a rich-text entry of the shared-string table (runs separated by it) */
const RICH = '\u0001';
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function colName(i: number): string {
  let s = '';
  for (let n = i + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + ((n - 1) % 26)) + s;
  return s;
}

function sheetXml(rows: Cell[][], strings: { shared: boolean; index: (s: string) => number }): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheetData>'];
  rows.forEach((row, r) => {
    if (row.length === 0) return; // an empty row is absent, as Excel writes it
    out.push(`<row r="${r + 1}" spans="1:${row.length}">`);
    row.forEach((cell, c) => {
      const ref = `${colName(c)}${r + 1}`;
      if (cell === null) return;
      if (typeof cell === 'number') out.push(`<c r="${ref}"><v>${cell}</v></c>`);
      else if (typeof cell === 'string') {
        out.push(strings.shared ? `<c r="${ref}" t="s"><v>${strings.index(cell)}</v></c>` : `<c r="${ref}" t="inlineStr"><is><t xml:space="preserve">${esc(cell)}</t></is></c>`);
      } else if ('rich' in cell) out.push(`<c r="${ref}" t="s"><v>${strings.index(RICH + cell.rich.join(RICH))}</v></c>`);
      else if ('formula' in cell) out.push(`<c r="${ref}" t="str"><f>${esc(cell.formula)}</f><v>${esc(cell.cached ?? '')}</v></c>`);
      else out.push(`<c r="${ref}" t="inlineStr"><is><t>${esc(cell.inline)}</t></is></c>`);
    });
    out.push('</row>');
  });
  out.push('</sheetData></worksheet>');
  return out.join('');
}

/** a workbook whose first sheet holds these rows (row i is spreadsheet row i + 1; [] leaves a row empty) */
export function writeXlsx(rows: Cell[][], o: XlsxOptions = {}): Buffer {
  const shared = o.sharedStrings ?? true;
  const table: string[] = [];
  const seen = new Map<string, number>();
  const index = (s: string) => {
    let i = seen.get(s);
    if (i === undefined) {
      i = table.length;
      table.push(s);
      seen.set(s, i);
    }
    return i;
  };
  const method = o.deflate === false ? 0 : 8;
  const main = sheetXml(rows, { shared, index });
  const other = o.otherSheet ? sheetXml(o.otherSheet, { shared, index }) : null;
  // rich text carries a phonetic run too: the reader must join the runs and drop the phonetic guide
  const sst = `<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="${table.length}" uniqueCount="${table.length}">${table
    .map((s) =>
      s.startsWith(RICH)
        ? `<si>${s
            .slice(1)
            .split(RICH)
            .map((run, i) => `<r>${i ? '<rPr><b/></rPr>' : ''}<t xml:space="preserve">${esc(run)}</t></r>`)
            .join('')}<rPh sb="0" eb="1"><t>ピン</t></rPh></si>`
        : `<si><t xml:space="preserve">${esc(s)}</t></si>`,
    )
    .join('')}</sst>`;
  const mainPath = other ? 'xl/worksheets/sheet2.xml' : 'xl/worksheets/sheet1.xml';
  const files: ZipFile[] = [
    {
      name: '[Content_Types].xml',
      data: '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/></Types>',
    },
    { name: '_rels/.rels', data: '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>' },
  ];
  if (other) files.push({ name: 'xl/worksheets/sheet1.xml', data: other, method });
  files.push(
    {
      name: 'xl/workbook.xml',
      data: `<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="名单" sheetId="1" r:id="rIdMain"/>${other ? '<sheet name="Other" sheetId="2" r:id="rIdOther"/>' : ''}</sheets></workbook>`,
      method,
    },
    {
      name: 'xl/_rels/workbook.xml.rels',
      data: `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">${other ? '<Relationship Id="rIdOther" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>' : ''}<Relationship Id="rIdMain" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="${other ? '/xl/worksheets/sheet2.xml' : 'worksheets/sheet1.xml'}"/></Relationships>`,
      method,
    },
    { name: mainPath, data: main, method },
  );
  if (shared) files.push({ name: 'xl/sharedStrings.xml', data: sst, method });
  return zip(files);
}
