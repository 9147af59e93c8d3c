/**
 * HTTP byte ranges (RFC 9110 §14) for recordings' audio, and the streaming that serves them: Asterisk's ARI
 * file endpoint has no Range support, so a range is cut out of the whole file as it streams past.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

export type RangeAnswer =
  /** no Range (or one to ignore: not bytes, malformed, several ranges): the whole file, 200 */
  | { kind: 'full' }
  /** one satisfiable range: 206, bytes start..end (inclusive) */
  | { kind: 'partial'; start: number; end: number }
  /** one range that lies outside the file: 416 with Content-Range: bytes *\/size */
  | { kind: 'unsatisfiable' };

const SPEC = /^(\d*)-(\d*)$/;

/**
 * What to answer for this Range header on a file of `size` bytes. RFC 9110 lets a server ignore Range, so
 * everything this service does not serve as one 206 is the whole file: another unit, a syntax error, and
 * several ranges (a multipart/byteranges answer is allowed, not required; audio players ask for one).
 */
export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: 'full' };
  const specs = m[1]!.split(',').map((s) => s.trim());
  if (specs.length !== 1) return { kind: 'full' };
  const spec = SPEC.exec(specs[0]!);
  if (!spec) return { kind: 'full' };
  const [, first, last] = spec as unknown as [string, string, string];
  if (first === '' && last === '') return { kind: 'full' };
  if (first.length > 15 || last.length > 15) return { kind: 'full' }; // beyond any safe integer: not ours to parse
  if (first === '') {
    // suffix: the last n bytes (all of them when n is larger than the file); none at all is unsatisfiable
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'full' }; // invalid range-spec: the header is ignored
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'partial', start, end };
}

/** thrown into the response stream when the file turns out different while it is being sent */
export class StreamMismatch extends Error {
  override name = 'StreamMismatch';
}

/**
 * Bytes start..end (inclusive) of `source`, streamed: bytes before start are read and dropped, and the source
 * is closed as soon as end has passed (the rest of the file is never fetched). Nothing is held but one chunk.
 *
 * When the slice runs to the end of the file, every byte has been read, so the whole file is checked once
 * more on the way (`expect`): its length and SHA-256. The last chunk is held back until the check passes, so
 * a file changed since it was verified never reaches the client whole: the stream fails instead.
 */
export function sliceStream(source: Readable, start: number, end: number, expect?: { size: number; sha256: string }): Readable {
  async function* slice(): AsyncGenerator<Buffer> {
    const checking = expect !== undefined && end === expect.size - 1;
    const hash = checking ? createHash('sha256') : null;
    let pos = 0;
    let held: Buffer | null = null;
    try {
      for await (const raw of source) {
        const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as Uint8Array);
        hash?.update(chunk);
        const at = pos;
        pos += chunk.length;
        // before the range, or (only while checking, which reads on to the end) after it
        if (pos <= start || at > end) continue;
        const part = chunk.subarray(Math.max(0, start - at), Math.min(chunk.length, end + 1 - at));
        if (!checking) {
          yield part;
          if (pos > end) return; // cut: leaving the loop destroys the source
          continue;
        }
        if (held) yield held;
        held = part;
      }
    } finally {
      // when the consumer goes away early, for-await has already destroyed the source; this covers every other exit
      if (!source.destroyed) source.destroy();
    }
    if (pos <= end) throw new StreamMismatch(`the file ended at byte ${pos}, before byte ${end}`);
    if (checking) {
      const sha256 = hash!.digest('hex');
      if (pos !== expect.size || sha256 !== expect.sha256) throw new StreamMismatch(`the file changed while it was sent (${pos} bytes, sha256 ${sha256})`);
      if (held) yield held;
    }
  }
  return Readable.from(slice(), { objectMode: false });
}

/** SHA-256 and length of a stream, read chunk by chunk (never held whole) */
export async function hashStream(source: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const raw of source) {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as Uint8Array);
      hash.update(chunk);
      size += chunk.length;
    }
  } finally {
    if (!source.destroyed) source.destroy();
  }
  return { sha256: hash.digest('hex'), size };
}
