/**
 * A pcap of many RFC 4733 keys in a row, for SIPp's play_pcap_audio (the DTMF-flood cases of
 * test/faults/sip-input.test.ts, scenario caller-dtmf-flood). SIPp's own dtmf_2833_*.pcap hold one key each
 * with fixed RTP timestamps (Asterisk drops an event whose timestamp is not later than the last one), and
 * test/sipp/caller-script.ts writes one file per key with a pause between: neither floods. Here every key is
 * its own event (its own RTP timestamp, sequence numbers running on), keyMs long, the next one starting
 * gapMs after it ends. Packets are Ethernet/IPv4/UDP with payload type 101; SIPp rewrites addresses and
 * ports when it replays them.
 */
import { writeFileSync } from 'node:fs';
import { rtpPcap } from './caller-script.js';

const EVENT: Record<string, number> = { '*': 10, '#': 11, A: 12, B: 13, C: 14, D: 15 };

/** keys (0-9 * # A-D) as one pcap: each keyMs long (a multiple of 20), gapMs of silence between two */
export function dtmfFloodPcap(keys: string, opts: { keyMs?: number; gapMs?: number } = {}): Buffer {
  const keyMs = Math.max(40, Math.round((opts.keyMs ?? 60) / 20) * 20);
  const gapMs = opts.gapMs ?? 40;
  const packets: Array<{ atUs: number; rtp: Buffer }> = [];
  let seq = 1000;
  let startMs = 0;
  const add = (atMs: number, rtp: Buffer) => packets.push({ atUs: atMs * 1000, rtp });
  for (const key of keys) {
    const event = EVENT[key] ?? Number(key);
    if (!Number.isInteger(event) || event < 0 || event > 15) throw new Error(`dtmf flood: "${key}" is not a DTMF key`);
    const ts = 8 * startMs + 160; // RTP clock 8 kHz: each event starts at its own, later timestamp
    const rtp = (marker: boolean, end: boolean, duration: number) => {
      const b = Buffer.alloc(16);
      b.writeUInt8(0x80, 0);
      b.writeUInt8((marker ? 0x80 : 0) | 101, 1);
      b.writeUInt16BE(seq++ & 0xffff, 2);
      b.writeUInt32BE(ts >>> 0, 4);
      b.writeUInt32BE(0x464c4f4f, 8); // SSRC "FLOO"
      b.writeUInt8(event, 12);
      b.writeUInt8((end ? 0x80 : 0) | 0x0a, 13); // volume 10
      b.writeUInt16BE(duration, 14);
      return b;
    };
    for (let at = 0; at < keyMs; at += 20) add(startMs + at, rtp(at === 0, false, 8 * (at + 20)));
    // the end packet three times (RFC 4733 2.5.1.4), same sequence number
    const endSeq = seq;
    for (let r = 0; r < 3; r++) {
      seq = endSeq;
      add(startMs + keyMs + r * 0.1, rtp(false, true, 8 * keyMs));
    }
    seq = endSeq + 1;
    startMs += keyMs + gapMs;
  }
  return rtpPcap(packets);
}

/** writes the flood to file and returns how long it plays, in ms */
export function writeDtmfFlood(file: string, keys: string, opts: { keyMs?: number; gapMs?: number } = {}): number {
  writeFileSync(file, dtmfFloodPcap(keys, opts));
  const keyMs = Math.max(40, Math.round((opts.keyMs ?? 60) / 20) * 20);
  return keys.length * (keyMs + (opts.gapMs ?? 40));
}
