import t from 'tap';
import { normalizePhone } from '../../src/shared/phone.js';

t.test('given numbers as callers and gateways send them, when normalised, then one national form', async (t) => {
  const cases: Array<[string, string]> = [
    ['13800138000', '13800138000'],
    ['+86 138 0013 8000', '13800138000'],
    ['008613800138000', '13800138000'],
    ['8613800138000', '13800138000'],
    ['0898-66668888', '089866668888'],
    ['66668888', '089866668888'],
    ['+86 898 6666 8888', '089866668888'],
    ['+86 20 8888 7777', '02088887777'],
    ['12345', '12345'],
    ['4009513513', '4009513513'],
    ['(0898) 6666-8888', '089866668888'],
    ['+1 415 555 0100', '+14155550100'],
  ];
  for (const [input, want] of cases) t.equal(normalizePhone(input), want, input);
});

t.test('given garbage, when normalised, then null', async (t) => {
  for (const input of ['', '   ', 'abc', '12', '+86abc', '1234567890123456', null, undefined]) {
    t.equal(normalizePhone(input), null, String(input));
  }
});
