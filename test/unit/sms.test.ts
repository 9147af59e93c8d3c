/**
 * The SMS pieces without I/O: templates (the file's checks, rendering), the text encoding and submit_sm
 * parameters, and reading a deliver_sm as a receipt or a citizen's message.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { encodeText, readDeliverSm, submitParams } from '../../src/sms/smpp-gateway.js';
import { parseSmsTemplates, renderTemplate, SmsTemplatesError } from '../../src/sms/sms-templates.js';

const ROOT = path.join(import.meta.dirname, '../..');
const AT = new Date('2026-11-29T06:30:00Z');

t.test('the shipped templates file is valid, and ticket-received renders as the text citizens get', async (t) => {
  const templates = parseSmsTemplates(readFileSync(path.join(ROOT, 'config/sms-templates.yaml'), 'utf8'));
  t.ok(templates.size >= 3);
  const tr = templates.get('ticket-received')!;
  t.same(tr.params, ['ticketNo', 'days']);
  t.equal(renderTemplate(tr, { ticketNo: 'HN20261129001', days: 5 }), '您的诉求已受理，工单号HN20261129001，我们将在5个工作日内答复。【海南12345】');
  for (const tpl of templates.values()) t.match(tpl.text, /【海南12345】$/, `${tpl.id} is signed`);
});

t.test('given a broken templates file, then one message naming the template and the problem', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['a: "x {name"', /^a: a "\{" or "\}" that is not part of a \{placeholder\}/],
    ['a: "x } y"', /^a: a "\{" or "\}"/],
    ['a: "x {na me}"', /^a: "\{na me\}" is not a placeholder/],
    ['a: "x {}"', /^a: "\{\}" is not a placeholder/],
    ['a: ""', /^a: the text must be a non-empty string/],
    ['a: [1, 2]', /^a: the text must be a non-empty string/],
    ['Bad_Id: "x"', /^"Bad_Id": a template id is lower-case/],
    [`a: "${'长'.repeat(501)}"`, /^a: the text has 501 characters, at most 500/],
    ['a: "x"\na: "y"', /^YAML error at line 2/],
    ['- a\n- b', /^the file must map template ids to texts/],
    ['', /^the file must map template ids to texts/],
    ['{}', /^the file has no templates/],
  ];
  for (const [text, re] of bad) t.throws(() => parseSmsTemplates(text), { name: 'SmsTemplatesError', message: re }, text);
  t.type(new SmsTemplatesError('x'), Error);
});

t.test('rendering: every placeholder needs its param, no other param is taken, a value is not expanded again', async (t) => {
  const [tpl] = parseSmsTemplates('office-address: "{office}：{address}，{office}见"').values();
  t.same(tpl!.params, ['office', 'address'], 'each name once');
  t.equal(renderTemplate(tpl!, { office: '市民中心', address: '海口市{x}路' }), '市民中心：海口市{x}路，市民中心见');
  t.throws(() => renderTemplate(tpl!, { office: 'x' }), { code: 'missing-param', status: 400, details: { template: 'office-address', param: 'address' } });
  t.throws(() => renderTemplate(tpl!, { office: 'x', address: 'y', days: 3 }), { code: 'unknown-param', details: { param: 'days' } });
});

t.test('encoding: GSM/ASCII-safe text in the default alphabet, anything else UCS2 (UTF-16BE)', async (t) => {
  t.same(encodeText('Ticket HN001 closed. Call 12345!'), { dataCoding: 0, octets: Buffer.from('Ticket HN001 closed. Call 12345!', 'latin1') });
  const zh = encodeText('您好12345');
  t.equal(zh.dataCoding, 8);
  t.same([...zh.octets.subarray(0, 4)], [0x60, 0xa8, 0x59, 0x7d], '您 is U+60A8, 好 is U+597D, big-endian');
  t.equal(encodeText('a@b.c').dataCoding, 8, '@ differs between GSM 03.38 and ASCII: UCS2 is unambiguous');
  t.equal(encodeText('price: $5').dataCoding, 8);
});

t.test('submit_sm: registered delivery, the number and its type, short_message or message_payload', async (t) => {
  const p = submitParams({ to: '13800138000', text: '您的诉求已受理【海南12345】' }, '12345');
  t.match(p, { destination_addr: '13800138000', dest_addr_ton: 0, dest_addr_npi: 1, source_addr: '12345', registered_delivery: 1, data_coding: 8 });
  t.ok(Buffer.isBuffer(p.short_message));
  t.equal(p.message_payload, undefined);
  t.match(submitParams({ to: '+85291234567', text: 'hi' }, '12345'), { destination_addr: '85291234567', dest_addr_ton: 1, data_coding: 0 }, 'international: TON 1, no +');
  t.match(submitParams({ to: '13800138000', text: 'hi' }, 'HNGOV'), { source_addr_ton: 5, source_addr_npi: 0 }, 'an alphanumeric sender');

  const seventy = submitParams({ to: '13800138000', text: '长'.repeat(70) }, '12345');
  t.equal((seventy.short_message as Buffer).length, 140, '70 Chinese characters still fit one SMS');
  const long = submitParams({ to: '13800138000', text: '长'.repeat(71) }, '12345');
  t.equal(long.short_message, undefined);
  t.equal((long.message_payload as Buffer).length, 142, 'a longer text goes whole in message_payload');
  t.ok(Buffer.isBuffer(submitParams({ to: '1', text: 'x'.repeat(160) }, '1').short_message), '160 default-alphabet characters fit one SMS');
  t.ok(Buffer.isBuffer(submitParams({ to: '1', text: 'x'.repeat(161) }, '1').message_payload));
});

t.test('deliver_sm: receipts from the text or the TLVs, and a citizen message', async (t) => {
  const receipt = (fields: Record<string, unknown>) => readDeliverSm({ esm_class: 0x04, ...fields }, AT);
  t.same(receipt({ short_message: { message: 'id:1A2B sub:001 dlvrd:001 submit date:2611291430 done date:2611291431 stat:DELIVRD err:000 text:' } }), {
    kind: 'receipt',
    receipt: { messageId: '1A2B', status: 'delivered', at: AT },
  });
  t.same(receipt({ short_message: { message: 'id:77 sub:001 dlvrd:000 submit date:2611291430 done date:2611291431 stat:UNDELIV err:012 text:' } }), {
    kind: 'receipt',
    receipt: { messageId: '77', status: 'failed', at: AT, error: 'UNDELIV err:012' },
  });
  t.match(receipt({ short_message: { message: 'id:9 stat:EXPIRED err:000' } }), { receipt: { status: 'expired', error: 'EXPIRED err:000' } });
  t.match(receipt({ short_message: { message: 'id:9 stat:REJECTD' } }), { receipt: { status: 'rejected', error: 'REJECTD' } });
  t.match(receipt({ short_message: { message: 'id:9 stat:ENROUTE' } }), { receipt: { status: 'unknown' } }, 'not final');
  t.match(receipt({ short_message: { message: 'id:9 stat:DELETED' } }), { receipt: { status: 'failed' } });
  // TLVs win over the text
  t.match(receipt({ receipted_message_id: 'abc', message_state: 2, short_message: { message: 'id:zzz stat:UNDELIV' } }), { receipt: { messageId: 'abc', status: 'delivered' } });
  t.match(receipt({ receipted_message_id: 'abc', message_state: 8, network_error_code: Buffer.from([3, 0, 0x0b]) }), {
    receipt: { status: 'rejected', error: 'REJECTD network_error_code:03000b' },
  });
  t.same(readDeliverSm({ esm_class: 0, receipted_message_id: 'q', message_state: 3 }, AT), { kind: 'receipt', receipt: { messageId: 'q', status: 'expired', at: AT, error: 'EXPIRED' } }, 'a receipted_message_id makes it a receipt');
  t.same(receipt({ short_message: { message: 'stat:DELIVRD' } }), { kind: 'receipt', receipt: null }, 'no message id');
  t.match(readDeliverSm({ esm_class: 0x20, short_message: { message: 'id:5 stat:ENROUTE' } }, AT), { kind: 'receipt', receipt: { status: 'unknown' } }, 'intermediate notification');

  t.same(readDeliverSm({ esm_class: 0, source_addr: '8613800138000', destination_addr: '12345', short_message: { message: '你好' } }, AT), {
    kind: 'inbound',
    message: { from: '8613800138000', to: '12345', text: '你好', at: AT },
  });
  t.match(readDeliverSm({ esm_class: 0x40, source_addr: '1', short_message: { udh: [Buffer.from([0, 3, 1, 2, 1])], message: '第一段' } }, AT), { kind: 'inbound', message: { text: '第一段' } }, 'UDH: the text without the header');
  t.match(readDeliverSm({ esm_class: 0, source_addr: '1', short_message: Buffer.alloc(0), message_payload: { message: '长消息' } }, AT), { message: { text: '长消息' } }, 'message_payload');
});
