/**
 * List files (src/lists/list-import.ts, src/lists/xlsx.ts): every format, encodings, line numbers of bad
 * rows, formula injection, protected numbers, xlsx read from the test writer, hostile archives refused.
 */
import t from 'tap';
import {
  decodeText,
  detectSeparator,
  ImportFileError,
  looksLikeFormula,
  parseExpiry,
  parseImport,
  protectedReason,
  type ListKind,
  type ParsedImport,
} from '../../src/lists/list-import.js';
import { csvCell, ImportLimiter, shanghaiIso } from '../../src/lists/lists.service.js';
import { crc32, readXlsx, XlsxError, XLSX_LIMITS } from '../../src/lists/xlsx.js';
import { writeXlsx, zip } from '../helpers/xlsx.js';

const NOW = new Date('2026-03-01T02:00:00.000Z'); // 10:00 in Hainan
const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

function run(body: Buffer | string, contentType: string, kind: ListKind = 'black'): Promise<ParsedImport> {
  return parseImport(Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), contentType, { kind, defaultReason: 'import 2026-03-01', now: NOW });
}
const numbers = (p: ParsedImport) => p.valid.map((r) => r.number);
const badLines = (p: ParsedImport) => p.invalid.map((r) => r.line);

/** GBK bytes of 骚扰电话 (harassing calls) and 号码,原因 (number, reason) */
const GBK_REASON = Buffer.from([0xc9, 0xa7, 0xc8, 0xc5, 0xb5, 0xe7, 0xbb, 0xb0]);
const GBK_HEADER = Buffer.from([0xba, 0xc5, 0xc2, 0xeb, 0x2c, 0xd4, 0xad, 0xd2, 0xf2]);

t.test('decoding: BOM, strict UTF-8, GB18030 fallback, UTF-16 with BOM', async (t) => {
  t.same(decodeText(Buffer.from('\ufeff13800138000', 'utf8')), { text: '13800138000', encoding: 'utf-8-bom' });
  t.same(decodeText(Buffer.from('号码', 'utf8')), { text: '号码', encoding: 'utf-8' });
  t.same(decodeText(GBK_REASON), { text: '骚扰电话', encoding: 'gb18030' }, 'not UTF-8: read as GB18030');
  t.same(decodeText(Buffer.from('abc', 'utf8'), 'GBK'), { text: 'abc', encoding: 'gb18030' }, 'a declared GBK charset');
  t.same(decodeText(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('13800138000\t原因', 'utf16le')])), { text: '13800138000\t原因', encoding: 'utf-16le' });
});

t.test('CSV with a header: columns by name (our export order too), BOM, CRLF, quoted fields, empty lines skipped', async (t) => {
  const file = '\ufeffnumber,reason,treatment,expiresAt,createdAt,createdBy\r\n' + '13800138000,"spam, at night",restrict,2027-01-31,2026-01-01T10:00:00+08:00,admin\r\n' + '\r\n' + '  +86 139-0000-0001 , "he said ""hi""" ,queue,,,\r\n' + '0898-66668888,,,2027-01-31T18:00:00+08:00,,\r\n';
  const p = await run(file, 'text/csv');
  t.equal(p.header, true);
  t.equal(p.encoding, 'utf-8-bom');
  t.equal(p.rows, 3, 'the header and the empty line are not rows');
  t.same(p.invalid, []);
  t.same(p.valid, [
    { line: 2, number: '13800138000', reason: 'spam, at night', treatment: 'restrict', expiresAt: new Date('2027-01-31T16:00:00.000Z') },
    { line: 4, number: '13900000001', reason: 'he said "hi"', treatment: 'queue', expiresAt: null },
    { line: 5, number: '089866668888', reason: 'import 2026-03-01', treatment: null, expiresAt: new Date('2027-01-31T10:00:00.000Z') },
  ]);
});

t.test('CSV without a header: number[,reason[,expiresAt[,treatment]]], ; and TAB separators', async (t) => {
  const comma = await run('13800138000\n13800138001,reason one\n13800138002,reason two,2027-06-30,queue\n', 'text/csv');
  t.equal(comma.header, false);
  t.same(numbers(comma), ['13800138000', '13800138001', '13800138002']);
  t.match(comma.valid[2], { line: 3, reason: 'reason two', treatment: 'queue' });
  t.equal(detectSeparator('13800138000;a,b;2027-01-01\n'), ';');
  const semi = await run('13800138000;a, b;2027-01-01;restrict\n', 'text/csv');
  t.match(semi.valid[0], { reason: 'a, b', treatment: 'restrict' });
  const tab = await run('电话\t备注\n13800138000\t投诉骚扰\n', 'text/tab-separated-values');
  t.equal(tab.header, true, 'a Chinese header');
  t.match(tab.valid[0], { line: 2, number: '13800138000', reason: '投诉骚扰' });
  const multi = await run('13800138000,"line one\nline two"\n13800138001,x\n', 'text/csv');
  t.same(
    multi.valid.map((r) => [r.line, r.reason]),
    [
      [1, 'line one\nline two'],
      [3, 'x'],
    ],
    'a quoted field over two lines keeps the physical line numbers',
  );
});

t.test('GBK-encoded CSV (Excel on Chinese Windows) is read as GB18030 and says so', async (t) => {
  const file = Buffer.concat([GBK_HEADER, Buffer.from('\r\n13800138000,'), GBK_REASON, Buffer.from('\r\n')]);
  const p = await run(file, 'text/csv');
  t.equal(p.encoding, 'gb18030');
  t.equal(p.header, true);
  t.same(p.valid, [{ line: 2, number: '13800138000', reason: '骚扰电话', treatment: null, expiresAt: null }]);
});

t.test('bad rows are reported with their line numbers; repeats are duplicates, not errors', async (t) => {
  const file = [
    'number,reason,expiresAt,treatment', // 1
    '13800138000,ok', // 2
    '1380013800a,bad digits', // 3
    '', // 4 (skipped)
    '13800138001,too,many,columns,here', // 5
    '13800138000,again', // 6 (repeat of 2)
    '=HYPERLINK("http://x"),formula', // 7
    '13800138002,@SUM(A1)', // 8
    '13800138003,-cmd|calc', // 9
    '+86 138 0013 8004,+ok?', // 10 (number fine; reason +ok? is a formula)
    '110,protected', // 11
    '089812345,protected from outside', // 12
    '13800138005,x,2020-01-01', // 13 past
    '13800138006,x,31/01/2027', // 14 not a date
    '13800138007,x,,priority', // 15 white treatment on the black list
    '"13800138008,unterminated', // 16
    '13800138009,fine,,RESTRICT', // 17
    ',no number', // 18
    '   ', // 19 (skipped)
    '12', // 20 too short
  ].join('\r\n');
  const p = await run(file, 'text/csv');
  t.same(numbers(p), ['13800138000', '13800138009']);
  t.same(badLines(p), [3, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20]);
  const why = Object.fromEntries(p.invalid.map((r) => [r.line, r.reason]));
  t.match(why[3], /not a phone number/);
  t.match(why[5], /5 columns; expected at most 4/);
  t.match(why[7], /formula/);
  t.match(why[8], /formula/);
  t.match(why[9], /formula/);
  t.match(why[10], /formula/);
  t.match(why[11], /110 is protected \(police emergency number\)/);
  t.match(why[12], /089812345 is protected/);
  t.match(why[13], /in the past/);
  t.match(why[14], /is not a date/);
  t.match(why[15], /does not fit the black list \(restrict or queue/);
  t.match(why[16], /unterminated quoted field/);
  t.match(why[18], /number is missing/);
  t.same(p.repeated, [{ line: 6, value: '13800138000', reason: '13800138000 repeats line 2 (the first one is kept)' }]);
  t.equal(p.rows, 17, 'neither the header nor the two empty lines are rows');
  t.equal(p.valid[1]!.treatment, 'restrict', 'treatments are case-insensitive');
  t.equal(p.invalid.find((r) => r.line === 3)!.value, '1380013800a', 'the value is the offending cell');
});

t.test('protected numbers: refused on the black list only', async (t) => {
  for (const n of ['110', '119', '120', '122', '12345', '12333', '12329', '12367', '95198', '4009513513', '089812345']) t.ok(protectedReason(n), n);
  for (const n of ['13800138000', '11000', '0898110110']) t.equal(protectedReason(n), null, n);
  const white = await run('12345\n110,liaison\n', 'text/csv', 'white');
  t.same(numbers(white), ['12345', '110'], 'a whitelisted service number is fine');
  t.same(badLines(await run('12345\n', 'text/plain')), [1]);
});

t.test('formula cells: = and @ always, + and - unless a number follows; our own export guard is taken off', async (t) => {
  for (const s of ['=1+2', '=cmd', '@SUM(A1)', '+cmd', '-2+3+cmd', '+ x', '-x']) t.ok(looksLikeFormula(s), s);
  for (const s of ['+86 138 0013 8000', '-', '13800138000', 'spam', '(0898) 6666-8888', '']) t.notOk(looksLikeFormula(s), s);
  const p = await run("number,reason\n'+14155550100,'-- a note\n", 'text/csv');
  t.same(p.invalid, [{ line: 2, value: '-- a note', reason: '"-- a note" looks like a spreadsheet formula' }], "the ' guard of our export comes off, the rest is judged as is");
  const q = await run("'+14155550100,plain\n", 'text/csv');
  t.same(numbers(q), ['+14155550100'], 'an exported foreign number reads back');
});

t.test('plain text: one number per line, BOM, CRLF, spaces, empty lines', async (t) => {
  const p = await run('\ufeff13800138000\r\n\r\n  139 0000 0001  \r\n+86 (0898) 6666 8888\r\nnot a number\r\n13800138000\r\n', 'text/plain');
  t.equal(p.format, 'text');
  t.equal(p.header, false, 'plain text has no header');
  t.same(numbers(p), ['13800138000', '13900000001', '089866668888']);
  t.same(p.invalid, [{ line: 5, value: 'not a number', reason: 'not a phone number (digits, optionally + and a country code)' }]);
  t.same(
    p.repeated.map((r) => r.line),
    [6],
  );
});

t.test('JSON: strings or objects, line = the 1-based array index', async (t) => {
  const p = await run(
    JSON.stringify([
      '13800138000',
      { number: '13800138001', reason: '骚扰', treatment: 'queue', expiresAt: '2027-01-01T00:00:00Z' },
      13800138002,
      { number: '13800138003', colour: 'red' },
      { reason: 'no number' },
      { number: 'abc' },
      null,
      { number: '13800138004', treatment: 'skip-menu' },
      '',
      { number: '13800138005', reason: 'from an export', createdAt: '2026-01-01T00:00:00Z', createdBy: 'x', expired: false },
    ]),
    'application/json',
  );
  t.same(numbers(p), ['13800138000', '13800138001', '13800138002', '13800138005']);
  t.match(p.valid[1], { line: 2, reason: '骚扰', treatment: 'queue', expiresAt: new Date('2027-01-01T00:00:00Z') });
  t.same(badLines(p), [4, 5, 6, 7, 8, 9]);
  t.match(p.invalid[0]!.reason, /unknown field colour/);
  t.match(p.invalid[3]!.reason, /expected a number/);
  t.match(p.invalid[4]!.reason, /does not fit the black list/);
  await t.rejects(run('{"number":"1"}', 'application/json'), ImportFileError, 'not an array');
  await t.rejects(run('[1,', 'application/json'), { name: 'ImportFileError', message: /not JSON/ });
  t.same(numbers(await run('\ufeff["13800138000"]', 'application/json')), ['13800138000'], 'a BOM before JSON');
});

t.test('expiry formats: ISO with a zone, Shanghai wall time, a date until its end, an Excel serial', async (t) => {
  t.same(parseExpiry('2027-01-31T18:00:00+08:00'), new Date('2027-01-31T10:00:00Z'));
  t.same(parseExpiry('2027-01-31T10:00:00Z'), new Date('2027-01-31T10:00:00Z'));
  t.same(parseExpiry('2027-01-31 18:00'), new Date('2027-01-31T10:00:00Z'), 'no zone: Asia/Shanghai');
  t.same(parseExpiry('2027-01-31'), new Date('2027-01-31T16:00:00Z'), 'a date: until the end of that day in Hainan');
  t.same(parseExpiry('2027/1/31'), new Date('2027-01-31T16:00:00Z'));
  t.same(parseExpiry('46418'), new Date('2027-01-31T16:00:00Z'), 'Excel serial 46418 = 2027-01-31');
  t.same(parseExpiry('46418.75'), new Date('2027-01-31T10:00:00Z'), '18:00 of that day');
  for (const bad of ['2027-02-30', '2027-13-01', '31/01/2027', 'tomorrow', '2027-01-31T25:00:00Z', '123']) t.equal(parseExpiry(bad), null, bad);
});

t.test('xlsx from the test writer: shared strings, rich text, inline strings, numbers, the workbook first sheet', async (t) => {
  const book = writeXlsx(
    [
      ['号码', '原因', '到期时间', '处理方式'],
      [13800138000, { rich: ['骚扰', '电话'] }, 46418, 'restrict'],
      [],
      ['+86 139 0000 0001', 'shared', null, 'queue'],
      [1.3800138001e10, { inline: 'inline & <escaped>' }],
      [13800138002, { formula: 'HYPERLINK("http://evil","x")', cached: 'x' }],
      ['abc'],
      [13800138000, 'repeat'],
      [13800138003, 'a', null, null, 'extra'],
    ],
    { otherSheet: [['the second sheet: never read']] },
  );
  const p = await run(book, XLSX);
  t.equal(p.format, 'xlsx');
  t.equal(p.header, true);
  t.same(p.valid, [
    { line: 2, number: '13800138000', reason: '骚扰电话', treatment: 'restrict', expiresAt: new Date('2027-01-31T16:00:00Z') },
    { line: 4, number: '13900000001', reason: 'shared', treatment: 'queue', expiresAt: null },
    { line: 5, number: '13800138001', reason: 'inline & <escaped>', treatment: null, expiresAt: null },
  ]);
  t.same(badLines(p), [6, 7, 9], 'a formula cell, a bad number, a fifth column; lines are spreadsheet rows');
  t.match(p.invalid[0]!.reason, /formula/);
  t.same(
    p.repeated.map((r) => r.line),
    [8],
  );
  const inline = await run(writeXlsx([[13800138000, 'a'], ['13800138001', 'b']], { sharedStrings: false, deflate: false }), 'application/octet-stream');
  t.same(numbers(inline), ['13800138000', '13800138001'], 'inline strings, stored entries, sniffed from octet-stream');
  t.same(
    (await readXlsx(writeXlsx([[1, 'x']]))).map((r) => r.cells),
    [['1', 'x']],
  );
});

t.test('hostile or broken xlsx is refused with a clear error', async (t) => {
  const good = writeXlsx([[13800138000]]);
  await t.rejects(readXlsx(Buffer.from('not a zip at all, just text')), { name: 'XlsxError', message: /not an .xlsx/ });
  await t.rejects(readXlsx(good.subarray(0, good.length - 30)), { name: 'XlsxError', message: /corrupt/ }, 'truncated');
  const flipped = Buffer.from(good);
  const at = flipped.indexOf('xl/worksheets/sheet1.xml') + 'xl/worksheets/sheet1.xml'.length + 5;
  flipped[at] = flipped[at]! ^ 0xff;
  await t.rejects(readXlsx(flipped), { name: 'XlsxError', message: /corrupt .xlsx: xl\/worksheets\/sheet1.xml/ }, 'a flipped byte in the sheet');
  await t.rejects(readXlsx(zip([{ name: 'xl/worksheets/sheet1.xml', data: '<worksheet/>', crc: 12345 }])),
    { message: /CRC/ },
  );
  // a zip bomb that admits it: 2 GB declared
  const admitted = zip([{ name: 'xl/worksheets/sheet1.xml', data: '<worksheet/>', method: 0 }]);
  admitted.writeUInt32LE(0x7fffffff, admitted.length - 22 - 46 - 'xl/worksheets/sheet1.xml'.length + 24);
  await t.rejects(readXlsx(admitted), { name: 'XlsxError', message: /refused: the workbook would unpack to 2147483647 bytes/ });
  // a zip bomb that lies: 40 MB of zeros declared as 1 KB
  const bomb = zip([{ name: 'xl/worksheets/sheet1.xml', data: Buffer.alloc(40 * 1024 * 1024, 0x20), declaredSize: 1024 }]);
  t.ok(bomb.length < 100 * 1024, `the bomb is small (${bomb.length} bytes)`);
  await t.rejects(readXlsx(bomb), { name: 'XlsxError', message: /unpacks to more than its declared 1024 bytes/ });
  const many = zip(Array.from({ length: XLSX_LIMITS.maxEntries + 1 }, (_v, i) => ({ name: `f${i}.xml`, data: '', method: 0 as const })));
  await t.rejects(readXlsx(many), { message: new RegExp(`${XLSX_LIMITS.maxEntries + 1} entries`) });
  await t.rejects(readXlsx(good, { ...XLSX_LIMITS, maxTotalBytes: 100 }), { message: /refused/ }, 'the total cap');
  await t.rejects(readXlsx(zip([{ name: 'docProps/app.xml', data: '<x/>' }])), { message: /no worksheet/ });
  await t.rejects(run(Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), 'application/vnd.ms-excel'), { name: 'ImportFileError', message: /legacy .xls/ });
  await t.rejects(run(bomb, XLSX), { name: 'ImportFileError', message: /zip bomb/ }, 'the importer passes the reason on');
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'CRC-32 check value');
});

t.test('export cells: formula guard, quoting, Shanghai times', async (t) => {
  t.equal(csvCell('=cmd'), "'=cmd");
  t.equal(csvCell('+14155550100'), "'+14155550100");
  t.equal(csvCell('@x'), "'@x");
  t.equal(csvCell('a,b'), '"a,b"');
  t.equal(csvCell('say "hi"'), '"say ""hi"""');
  t.equal(csvCell(null), '');
  t.equal(csvCell('骚扰'), '骚扰');
  t.equal(shanghaiIso(new Date('2027-01-31T16:00:00Z')), '2027-02-01T00:00:00+08:00');
});

t.test('the import limiter: N a minute per user', async (t) => {
  let clock = 0;
  const l = new ImportLimiter(3, () => clock);
  for (let i = 0; i < 3; i++) l.take('a');
  t.throws(() => l.take('a'), { code: 'too-many-imports', status: 429 });
  l.take('b');
  clock = 60_001;
  l.take('a');
});

t.test('a big file does not stall the process: parsing pauses for other work now and then', async (t) => {
  const lines: string[] = [];
  for (let i = 0; i < 60_000; i++) lines.push(`13${String(i).padStart(9, '0')},reason ${i}`);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  t.teardown(() => clearInterval(timer));
  const csv = await run(lines.join('\n'), 'text/csv');
  const book = await run(writeXlsx(lines.slice(0, 20_000).map((l) => l.split(','))), XLSX);
  clearInterval(timer);
  t.equal(csv.valid.length, 60_000);
  t.equal(book.valid.length, 20_000);
  t.ok(ticks >= 10, `timers ran ${ticks} times while parsing`);
});
