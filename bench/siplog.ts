/**
 * Reading SIPp's -trace_msg message logs (test/sipp/sipp.ts writes them as messages.log):
 * each message is preceded by a line "----...---- YYYY-MM-DD HH:MM:SS.uuuuuu" (local wall clock,
 * microseconds) and a line "UDP message sent (N bytes):" / "UDP message received [N] bytes :".
 * Every SIPp process on this machine reads the same clock, so times from two logs can be joined.
 */
import { open, readFile } from 'node:fs/promises';

export interface SipMessage {
  /** ms since the epoch, with microsecond fraction */
  at: number;
  dir: 'sent' | 'recv';
  firstLine: string;
  callId: string;
  cseq: string;
  fromUser: string;
  toTag: boolean;
}

const HEADER = /^-{20,} (\d{4})-(\d{2})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})\.(\d{1,6})\s*$/;

export function parseMessages(text: string): SipMessage[] {
  const out: SipMessage[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const m = HEADER.exec(lines[i]!);
    if (!m) {
      i++;
      continue;
    }
    const [, y, mo, d, h, mi, s, frac] = m;
    const at = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)).getTime() + Number(frac!.padEnd(6, '0')) / 1000;
    const dir = /sent/.test(lines[i + 1] ?? '') ? 'sent' : 'recv';
    let j = i + 2;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    const firstLine = (lines[j] ?? '').trim();
    let callId = '';
    let cseq = '';
    let fromUser = '';
    let toTag = false;
    for (j = j + 1; j < lines.length && !HEADER.test(lines[j]!); j++) {
      const l = lines[j]!;
      if (l.trim() === '') break; // end of headers
      const lower = l.slice(0, 10).toLowerCase();
      if (lower.startsWith('call-id:')) callId = l.slice(8).trim();
      else if (lower.startsWith('cseq:')) cseq = l.slice(5).trim();
      else if (lower.startsWith('from:')) fromUser = /sips?:([^@;>]+)@/.exec(l)?.[1] ?? '';
      else if (lower.startsWith('to:')) toTag = /;tag=/.test(l);
    }
    out.push({ at, dir, firstLine, callId, cseq, fromUser, toTag });
    i = j;
  }
  return out;
}

export interface CallerCall {
  callId: string;
  number: string;
  inviteAt: number;
  answeredAt?: number;
  ackAt?: number;
}

/** per call of a UAC log: first INVITE sent, first 200 to it received, ACK sent */
export async function callerCalls(file: string): Promise<CallerCall[]> {
  const msgs = parseMessages(await readFile(file, 'utf8').catch(() => ''));
  const byId = new Map<string, CallerCall>();
  for (const m of msgs) {
    if (m.dir === 'sent' && m.firstLine.startsWith('INVITE ') && m.cseq === '1 INVITE' && !byId.has(m.callId)) {
      byId.set(m.callId, { callId: m.callId, number: m.fromUser, inviteAt: m.at });
      continue;
    }
    const c = byId.get(m.callId);
    if (!c) continue;
    if (m.dir === 'recv' && m.firstLine.startsWith('SIP/2.0 200') && m.cseq === '1 INVITE' && c.answeredAt === undefined) c.answeredAt = m.at;
    else if (m.dir === 'sent' && m.firstLine.startsWith('ACK ') && m.cseq === '1 ACK' && c.ackAt === undefined) c.ackAt = m.at;
  }
  return [...byId.values()];
}

/** first initial INVITE received per calling number (the From user), in a UAS (agent phone) log */
export async function agentInvites(file: string): Promise<Map<string, number>> {
  const msgs = parseMessages(await readFile(file, 'utf8').catch(() => ''));
  const out = new Map<string, number>();
  for (const m of msgs) {
    if (m.dir === 'recv' && m.firstLine.startsWith('INVITE ') && !m.toTag && !out.has(m.fromUser)) out.set(m.fromUser, m.at);
  }
  return out;
}

/**
 * The calling numbers an agent phone ANSWERED (a 200 sent to an INVITE; its From is the caller), reading the UAS's
 * log from byte `from` on (the log grows while the phone runs): what a caller reached, whatever its own SIPp says
 * (a caller hangs up on schedule, answered by an agent or not). Returns where the next read starts (the start of
 * the last message, which may still be being written).
 */
export async function agentAnswered(file: string, from: number): Promise<{ numbers: Set<string>; next: number }> {
  const fh = await open(file, 'r').catch(() => null);
  if (!fh) return { numbers: new Set(), next: from };
  try {
    const { size } = await fh.stat();
    if (size <= from) return { numbers: new Set(), next: from };
    const buf = Buffer.alloc(size - from);
    await fh.read(buf, 0, buf.length, from);
    const text = buf.toString('latin1'); // byte offsets = string offsets
    const last = text.lastIndexOf('\n-----');
    const complete = last > 0 ? text.slice(0, last + 1) : '';
    const numbers = new Set<string>();
    for (const m of parseMessages(complete)) {
      if (m.dir === 'sent' && m.firstLine.startsWith('SIP/2.0 200') && m.cseq.endsWith('INVITE')) numbers.add(m.fromUser);
    }
    return { numbers, next: from + complete.length };
  } finally {
    await fh.close();
  }
}

export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export const round = (v: number | null | undefined, digits = 1): number | null =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Math.round(v * 10 ** digits) / 10 ** digits;
