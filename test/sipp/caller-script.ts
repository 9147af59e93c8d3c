/**
 * A caller scenario written from a script of steps, for IVR tests that need keys at chosen moments:
 *   [{ pause: 1500 }, { keys: '0' }, { pause: 4000 }, { keys: '123456#' }, { audio: 'g711a' }]
 * Keys are RFC 4733 events (payload type 101, offered in the SDP) that SIPp replays from DTMF pcaps written
 * here, one per key: the same packet shape as SIPp's own dtmf_2833_*.pcap, but with RTP timestamps that
 * grow along the script. SIPp's files all carry fixed timestamps, and Asterisk drops an event whose
 * timestamp is not later than the last one it took, so "4 then 1" would lose the 1 with them.
 * `audio` plays SIPp's 7 s G.711 A-law speech pcap (a voicemail).
 * After the steps the caller holds for holdMs: if the far end hangs up first (a notice, then BYE) the
 * caller answers 200 and the call counts as completed; otherwise the caller sends BYE. Either way the
 * call record tells who ended it. Re-INVITEs (connected-line updates) are answered on the way.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type ScriptStep = { pause: number } | { keys: string } | { audio: 'g711a' };

/** each key lasts 140 ms; the gap keeps two equal keys apart */
const KEY_GAP_MS = 350;
const EVENT: Record<string, number> = { '*': 10, '#': 11 };

/**
 * RTP packets as a pcap file (Ethernet/IPv4/UDP from 127.0.0.1 to 127.0.0.1; SIPp rewrites addresses and ports
 * when it replays it), each at its own time in microseconds from the start.
 */
export function rtpPcap(packets: Array<{ atUs: number; rtp: Buffer }>): Buffer {
  const records: Buffer[] = [];
  for (const { atUs, rtp } of packets) {
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(40000, 0);
    udp.writeUInt16BE(10000, 2);
    udp.writeUInt16BE(8 + rtp.length, 4); // checksum 0: none (IPv4)
    const ip = Buffer.alloc(20);
    ip.writeUInt8(0x45, 0);
    ip.writeUInt16BE(20 + 8 + rtp.length, 2);
    ip.writeUInt8(64, 8);
    ip.writeUInt8(17, 9);
    Buffer.from([127, 0, 0, 1]).copy(ip, 12);
    Buffer.from([127, 0, 0, 1]).copy(ip, 16);
    let sum = 0;
    for (let o = 0; o < 20; o += 2) sum += ip.readUInt16BE(o);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    ip.writeUInt16BE(~sum & 0xffff, 10);
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const frame = Buffer.concat([eth, ip, udp, rtp]);
    const us = Math.round(atUs);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + Math.floor(us / 1_000_000), 0);
    rec.writeUInt32LE(us % 1_000_000, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    records.push(rec, frame);
  }
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20); // Ethernet
  return Buffer.concat([header, ...records]);
}

/** one RFC 4733 key as a pcap */
export function dtmfPcap(key: string, index: number): Buffer {
  const event = EVENT[key] ?? Number(key);
  const rtpTs = 16000 * (index + 1);
  const packets: Array<{ atUs: number; rtp: Buffer }> = [];
  const add = (j: number, seq: number, flags: number, duration: number, marker: boolean, usec: number) => {
    const rtp = Buffer.alloc(16);
    rtp.writeUInt8(0x80, 0);
    rtp.writeUInt8((marker ? 0x80 : 0) | 101, 1);
    rtp.writeUInt16BE(seq & 0xffff, 2);
    rtp.writeUInt32BE(rtpTs, 4);
    rtp.writeUInt32BE(0x484f544c, 8); // SSRC "HOTL"
    rtp.writeUInt8(event, 12);
    rtp.writeUInt8(flags, 13);
    rtp.writeUInt16BE(duration, 14);
    packets.push({ atUs: j * 20_000 + usec, rtp });
  };
  const seq0 = 1000 + index * 16;
  // 7 packets of a growing event 20 ms apart (the first one marked), then the end packet three times
  for (let j = 0; j < 7; j++) add(j, seq0 + j, 0x0a, j * 320, j === 0, 0);
  for (let r = 0; r < 3; r++) add(7, seq0 + 7, 0x8a, 2240, false, r * 100);
  return rtpPcap(packets);
}

const SDP = `v=0
      o=- [pid][call_number] 1 IN IP[local_ip_type] [local_ip]
      s=hotline-sipp
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv`;

function stepXml(step: ScriptStep, dir: string, keyCount: { n: number }): string {
  if ('pause' in step) return `  <pause milliseconds="${Math.max(0, Math.round(step.pause))}"/>`;
  if ('audio' in step) return `  <nop><action><exec play_pcap_audio="{{pcap_dir}}/g711a.pcap"/></action></nop>\n  <pause milliseconds="7200"/>`;
  return [...step.keys]
    .map((k) => {
      if (!/^[0-9*#]$/.test(k)) throw new Error(`caller script: "${k}" is not a DTMF key`);
      const file = path.join(dir, `key-${keyCount.n}.pcap`);
      writeFileSync(file, dtmfPcap(k, keyCount.n++));
      return `  <nop><action><exec play_pcap_audio="${file}"/></action></nop>\n  <pause milliseconds="${KEY_GAP_MS}"/>`;
    })
    .join('\n');
}

/** writes the scenario to a temporary file and returns its path (give it to runSipp as `scenario`) */
export function callerScript(steps: ScriptStep[], holdMs: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-script-'));
  const keyCount = { n: 0 };
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by test/sipp/caller-script.ts
  @var caller 13800138000 the calling number
-->
<scenario name="caller-script">
  <send retrans="500" start_rtd="answer">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{{caller}}" <sip:{{caller}}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{{caller}}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY
      User-Agent: hotline-sipp caller-script
      Content-Type: application/sdp
      Content-Length: [len]

      ${SDP}

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="answer" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "{{caller}}" <sip:{{caller}}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:{{caller}}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
${steps.map((st) => stepXml(st, dir, keyCount)).join('\n')}
  <nop next="hold"/>

  <label id="reinvite"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{{caller}}@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      ${SDP}

    ]]>
  </send>
  <recv request="ACK"/>

  <label id="hold"/>
  <!-- SIPp takes the wait of a group of recvs from the first one: both carry the timeout -->
  <recv request="INVITE" optional="true" next="reinvite" timeout="${Math.round(holdMs)}" ontimeout="hangup"/>
  <recv request="BYE" timeout="${Math.round(holdMs)}" ontimeout="hangup"/>
  <send next="done">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>

  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "{{caller}}" <sip:{{caller}}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:{{caller}}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <label id="done"/>
</scenario>
`;
  const file = path.join(dir, 'caller-script.xml');
  writeFileSync(file, xml);
  return file;
}

/**
 * The other way round: a phone that is called (a citizen called back), answers after ringMs, then plays the
 * steps (keys, pauses) and waits up to holdMs for the far end to hang up. Give it to startSipp as
 * `scenario` with `calls` = how many calls it takes.
 */
export function answererScript(steps: ScriptStep[], opts: { ringMs: number; holdMs: number }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-script-'));
  const keyCount = { n: 0 };
  const ok = (extra: string) => `
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]${extra}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:citizen@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      ${SDP}

    ]]>
  </send>`;
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by test/sipp/caller-script.ts (answererScript) -->
<scenario name="answerer-script">
  <recv request="INVITE" crlf="true" rrs="true"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:citizen@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="${Math.max(0, Math.round(opts.ringMs))}"/>
${ok(';tag=[pid]SIPpTag01[call_number]').replace('<send>', '<send retrans="500">')}
  <recv request="ACK" crlf="true"/>
${steps.map((st) => stepXml(st, dir, keyCount)).join('\n')}
  <nop next="hold"/>

  <label id="reinvite"/>
${ok('')}
  <recv request="ACK"/>

  <label id="hold"/>
  <recv request="INVITE" optional="true" next="reinvite" timeout="${Math.round(opts.holdMs)}" ontimeout="done"/>
  <recv request="BYE" timeout="${Math.round(opts.holdMs)}" ontimeout="done"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
`;
  const file = path.join(dir, 'answerer-script.xml');
  writeFileSync(file, xml);
  return file;
}
