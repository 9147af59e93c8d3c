import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config/env.js';

t.test('given an empty environment, then development defaults that reach the local stack', async (t) => {
  const c = loadConfig({});
  t.equal(c.databaseUrl, 'postgres://postgres@127.0.0.1:5432/hotline');
  t.equal(c.ari.url, 'http://127.0.0.1:8088');
  t.equal(c.port, 3000);
  t.equal(c.queuesFile, 'config/queues.yaml');
  t.same(c.smpp, { url: 'smpp://127.0.0.1:2775', systemId: 'hotline', password: 'hotline-dev', sourceAddr: '12345' });
  t.same(c.sms, { templatesFile: 'config/sms-templates.yaml', bulkMax: 200 });
  t.equal(c.recordingRetentionDays, 180);
  t.equal(loadConfig({ RECORDING_RETENTION_DAYS: '3650' }).recordingRetentionDays, 3650);
  t.equal(c.recordingsSweepSeconds, 15);
  t.equal(loadConfig({ RECORDINGS_SWEEP_SECONDS: '60' }).recordingsSweepSeconds, 60);
  t.ok(Object.isFrozen(c));
});

t.test('given a wrong value, then one line naming the variable', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ DATABASE_URL: 'not a url' }, /^DATABASE_URL is not a valid URL/],
    [{ DATABASE_URL: 'mysql://x@127.0.0.1/db' }, /^DATABASE_URL must start with postgres:/],
    [{ ARI_URL: 'ftp://127.0.0.1:8088' }, /^ARI_URL must start with http:/],
    [{ ARI_URL: '127.0.0.1:8088' }, /^ARI_URL/],
    [{ REDIS_URL: 'http://127.0.0.1' }, /^REDIS_URL/],
    [{ PORT: '80a' }, /^PORT must be a whole number/],
    [{ PORT: '70000' }, /^PORT must be between/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL must be one of/],
    [{ REPEAT_CALLER_DAYS: '-1' }, /^REPEAT_CALLER_DAYS must be a whole number/],
    [{ ARI_APP: 'bad app' }, /^ARI_APP/],
    [{ SMPP_URL: 'http://127.0.0.1:2775' }, /^SMPP_URL must start with smpp:\/\/ or ssmpp:/],
    [{ SMPP_SYSTEM_ID: 'a-system-id-too-long' }, /^SMPP_SYSTEM_ID must be 1 to 15/],
    [{ SMS_SOURCE_ADDR: '12345-6' }, /^SMS_SOURCE_ADDR/],
    [{ SMS_BULK_MAX: '0' }, /^SMS_BULK_MAX must be between 1 and 1000/],
    [{ SMS_BULK_MAX: '1001' }, /^SMS_BULK_MAX must be between 1 and 1000/],
    [{ RECORDING_RETENTION_DAYS: '0' }, /^RECORDING_RETENTION_DAYS must be between 1 and 3650/],
    [{ RECORDING_RETENTION_DAYS: '3651' }, /^RECORDING_RETENTION_DAYS must be between 1 and 3650/],
    [{ RECORDING_RETENTION_DAYS: '90d' }, /^RECORDING_RETENTION_DAYS must be a whole number/],
    [{ RECORDINGS_SWEEP_SECONDS: '0' }, /^RECORDINGS_SWEEP_SECONDS must be between 1 and 3600/],
  ];
  for (const [env, re] of bad) {
    t.throws(() => loadConfig(env), re, JSON.stringify(env));
    try {
      loadConfig(env);
    } catch (err) {
      t.type(err, ConfigError);
      t.notMatch((err as Error).message, /\n/, 'one line');
    }
  }
});

t.test('given production, then development secrets are refused', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /ARI_PASSWORD must be set in production/);
  t.throws(() => loadConfig({ NODE_ENV: 'production', ARI_PASSWORD: 's3cret-ari' }), /ARI_PASSWORD must have at least 16 characters/, 'a short ARI password');
  t.throws(() => loadConfig({ NODE_ENV: 'production', ARI_PASSWORD: 's3cret-ari-password' }), /HOTLINE_ADMIN_USER and HOTLINE_ADMIN_PASSWORD/);
  const secrets = { NODE_ENV: 'production', ARI_PASSWORD: 's3cret-ari-password', HOTLINE_ADMIN_USER: 'ops', HOTLINE_ADMIN_PASSWORD: 'a-long-password!' };
  t.throws(() => loadConfig(secrets), /SMPP_PASSWORD must be set in production/);
  t.throws(() => loadConfig({ ...secrets, SMPP_PASSWORD: 'smsc-pw' }), /TICKET_WEBHOOK_SECRET must be set in production/);
  t.throws(() => loadConfig({ ...secrets, SMPP_PASSWORD: 'smsc-pw', TICKET_WEBHOOK_SECRET: 'short' }), /TICKET_WEBHOOK_SECRET must have at least 16/);
  const ok = loadConfig({ ...secrets, SMPP_PASSWORD: 'smsc-pw', TICKET_WEBHOOK_SECRET: 'a-long-ticket-secret' });
  t.equal(ok.admin.user, 'ops');
  t.equal(ok.smpp.password, 'smsc-pw');
  t.equal(ok.tickets.webhookSecret, 'a-long-ticket-secret');
});

t.test('ticket webhook secret and calling hours', async (t) => {
  const dev = loadConfig({});
  t.equal(dev.tickets.webhookSecret, 'dev-ticket-secret', 'a development default');
  t.equal(dev.tickets.callbackQueue, 'general');
  t.same(dev.callback.hours, { startMinute: 8 * 60, endMinute: 21 * 60 }, 'CALLBACK_HOURS defaults to 08:00-21:00');
  t.same(loadConfig({ CALLBACK_HOURS: '09:30-24:00' }).callback.hours, { startMinute: 570, endMinute: 1440 });
  for (const bad of ['21:00-08:00', '8-21', '08:00-08:00', '08:60-21:00', '08:00-25:00']) {
    t.throws(() => loadConfig({ CALLBACK_HOURS: bad }), /CALLBACK_HOURS must be HH:MM-HH:MM/, bad);
  }
});

t.test('a password in a URL never reaches the message', async (t) => {
  t.throws(() => loadConfig({ DATABASE_URL: 'mysql://u:topsecret@h/db' }), { message: /u:\*\*\*@/ });
});
