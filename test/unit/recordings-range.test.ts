/** Byte ranges of recordings' audio: the Range header's meaning (RFC 9110 §14) and the streaming slice. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { hashStream, parseRange, sliceStream, StreamMismatch } from '../../src/recordings/range.js';

t.test('given one satisfiable range, then 206 with its inclusive bounds', async (t) => {
  const cases: Array<[string, number, number]> = [
    ['bytes=0-99', 0, 99],
    ['bytes=100-199', 100, 199],
    ['bytes=0-0', 0, 0],
    ['bytes=999-999', 999, 999],
    ['bytes=500-', 500, 999],
    ['bytes=0-', 0, 999],
    ['bytes=-1', 999, 999],
    ['bytes=-300', 700, 999],
    ['bytes=-5000', 0, 999], // a suffix longer than the file: all of it
    ['bytes=900-5000', 900, 999], // an end past the file: up to its last byte
    ['BYTES = 1-2', 1, 2],
    [' bytes=3-4 ', 3, 4],
  ];
  for (const [h, start, end] of cases) t.same(parseRange(h, 1000), { kind: 'partial', start, end }, h);
});

t.test('given a range outside the file, then 416', async (t) => {
  for (const h of ['bytes=1000-', 'bytes=1000-1001', 'bytes=5000-6000', 'bytes=-0']) t.same(parseRange(h, 1000), { kind: 'unsatisfiable' }, h);
  t.same(parseRange('bytes=0-10', 0), { kind: 'unsatisfiable' }, 'an empty file has no bytes to give');
  t.same(parseRange('bytes=-10', 0), { kind: 'unsatisfiable' });
});

t.test('given no Range, another unit, a malformed one or several ranges, then the whole file (200)', async (t) => {
  for (const h of [undefined, '', 'items=0-5', 'bytes', 'bytes=', 'bytes=-', 'bytes=abc', 'bytes=1-2-3', 'bytes=9-3', 'bytes=0-1,5-6', 'bytes=0-99, 200-', 'bytes=-1,-2', 'bytes=0x10-20', 'bytes=1e3-', `bytes=${'9'.repeat(20)}-`]) {
    t.same(parseRange(h, 1000), { kind: 'full' }, String(h));
  }
});

/** a stream of `bytes` in chunks of `size`, counting the chunks taken */
function source(bytes: Buffer, size: number) {
  const s = { pulled: 0, stream: null as unknown as Readable };
  function* gen() {
    for (let i = 0; i < bytes.length; i += size) {
      s.pulled++;
      yield bytes.subarray(i, i + size);
    }
  }
  s.stream = Readable.from(gen(), { objectMode: false, highWaterMark: 64 });
  return s;
}
async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('sliceStream: the exact bytes for ranges inside chunks, across chunk boundaries and at the ends', async (t) => {
  const bytes = randomBytes(10_000);
  for (const chunk of [1, 7, 100, 4096, 20_000]) {
    for (const [start, end] of [[0, 0], [0, 99], [6, 8], [99, 101], [4095, 4097], [9_000, 9_999], [0, 9_999], [9_999, 9_999]] as const) {
      const got = await collect(sliceStream(source(bytes, chunk).stream, start, end));
      t.ok(got.equals(bytes.subarray(start, end + 1)), `chunks of ${chunk}, ${start}-${end}`);
    }
  }
});

t.test('sliceStream: stops reading the source once the range has passed', async (t) => {
  const bytes = randomBytes(100_000);
  const s = source(bytes, 100);
  const got = await collect(sliceStream(s.stream, 0, 99));
  t.ok(got.equals(bytes.subarray(0, 100)));
  t.ok(s.pulled < 20, `${s.pulled} of 1000 chunks read`);
  t.ok(s.stream.destroyed, 'the source (the download from Asterisk) is closed');
});

t.test('sliceStream: a source that ends early fails the stream', async (t) => {
  const bytes = randomBytes(1000);
  await t.rejects(collect(sliceStream(source(bytes, 64).stream, 900, 1099)), StreamMismatch);
});

t.test('sliceStream to the end checks the whole file and holds the last chunk back when it does not match', async (t) => {
  const bytes = randomBytes(5000);
  const expect = { size: bytes.length, sha256: sha(bytes) };
  t.ok((await collect(sliceStream(source(bytes, 333).stream, 0, 4999, expect))).equals(bytes), 'matching: all of it');
  t.ok((await collect(sliceStream(source(bytes, 333).stream, 1000, 4999, expect))).equals(bytes.subarray(1000)), 'a tail range is checked too');

  const changed = Buffer.from(bytes);
  changed[4990] = changed[4990]! ^ 1;
  const parts: Buffer[] = [];
  const out = sliceStream(source(changed, 333).stream, 0, 4999, expect);
  await t.rejects(
    (async () => {
      for await (const c of out) parts.push(c as Buffer);
    })(),
    StreamMismatch,
  );
  const sent = Buffer.concat(parts);
  t.ok(sent.length < changed.length, `only ${sent.length} of ${changed.length} bytes went out`);
  t.ok(sent.equals(changed.subarray(0, sent.length)));
  const longer = Buffer.concat([bytes, Buffer.from([1])]);
  await t.rejects(collect(sliceStream(source(longer, 333).stream, 0, 4999, expect)), StreamMismatch, 'a longer file is caught');
  // a range that stops before the end is not checked (the rest is never read)
  t.ok((await collect(sliceStream(source(changed, 333).stream, 0, 99, expect))).equals(changed.subarray(0, 100)));
});

t.test('hashStream: SHA-256 and length chunk by chunk', async (t) => {
  const bytes = randomBytes(12_345);
  t.same(await hashStream(source(bytes, 1000).stream), { sha256: sha(bytes), size: bytes.length });
  t.same(await hashStream(source(Buffer.alloc(0), 10).stream), { sha256: sha(Buffer.alloc(0)), size: 0 });
  const broken = new Readable({ read() { this.destroy(new Error('connection reset')); } });
  await t.rejects(hashStream(broken), /connection reset/);
});
