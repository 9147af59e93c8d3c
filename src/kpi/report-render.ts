/**
 * A report's files from its data (pure): one self-contained HTML page (inline CSS, inline SVG charts, no script,
 * no reference to anything outside the file) and a CSV of the same numbers (UTF-8 with BOM, CRLF, for Excel).
 * Headings in Chinese with English subtitles. Every figure in the HTML carries its exact value
 * (`data-kpi`, `data-value`) beside the rounded text; a KPI that misses its target is red.
 */
import { SUM_KEYS, TARGETS, type KpiFigures, type TargetKey } from './definitions.js';
import type { KpiKeyRow, KpiRow } from './kpi.service.js';
import type { ReportData } from './reports.js';

const KIND_ZH: Record<string, [string, string]> = {
  monthly: ['月报', 'Monthly report'],
  quarterly: ['季报', 'Quarterly report'],
  'half-yearly': ['半年报', 'Half-yearly report'],
  annual: ['年报', 'Annual report'],
};

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

type Fmt = 'pct' | 'sec' | 'int';
const fmt = (v: number | null, f: Fmt): string => (v === null ? '—' : f === 'pct' ? `${(v * 100).toFixed(2)}%` : f === 'sec' ? `${v.toFixed(1)} s` : String(v));

interface KpiDef {
  key: keyof KpiFigures;
  zh: string;
  en: string;
  fmt: Fmt;
  target?: TargetKey;
  /** how the target reads */
  targetText?: string;
}

/** the contract's KPIs (with targets) and the other figures, in the report's order */
const KPIS: KpiDef[] = [
  { key: 'answerRate', zh: '接通率', en: 'Answer rate', fmt: 'pct', target: 'answerRate', targetText: '≥ 95%' },
  { key: 'avgWaitSeconds', zh: '平均受理等待时长', en: 'Average wait to answer', fmt: 'sec', target: 'avgWaitSeconds', targetText: '≤ 15 s' },
  { key: 'fcr', zh: '咨询类诉求首次解决率（工单）', en: 'First-contact resolution (tickets)', fmt: 'pct', target: 'fcr', targetText: '≥ 70%' },
  { key: 'fcrCalls', zh: '首次解决率（来电）', en: 'First-contact resolution (repeat calls)', fmt: 'pct', target: 'fcrCalls', targetText: '≥ 70%' },
  { key: 'callbackRate24h', zh: '转办工单24小时回访率', en: 'Closed tickets called back within 24 h', fmt: 'pct', target: 'callbackRate24h', targetText: '= 100%' },
  { key: 'satisfaction', zh: '前台服务满意度', en: 'Front-desk satisfaction', fmt: 'pct', target: 'satisfaction', targetText: '≥ 98%' },
  { key: 'dispatchAccuracy', zh: '派单准确率', en: 'Dispatch accuracy', fmt: 'pct', target: 'dispatchAccuracy', targetText: '≥ 95%' },
  { key: 'serviceLevel', zh: '15秒服务水平', en: 'Service level (answered within 15 s)', fmt: 'pct' },
  { key: 'p90WaitSeconds', zh: '等待时长90分位', en: '90th percentile wait', fmt: 'sec' },
  { key: 'avgTalkSeconds', zh: '平均通话时长', en: 'Average talk time', fmt: 'sec' },
  { key: 'avgWrapUpSeconds', zh: '平均话后处理时长', en: 'Average wrap-up time', fmt: 'sec' },
];

const COUNTS: Array<{ key: keyof KpiRow & string; zh: string; en: string }> = [
  { key: 'offered', zh: '呼入总量', en: 'Calls offered' },
  { key: 'answered', zh: '人工接通', en: 'Answered by agents' },
  { key: 'ivrCompleted', zh: '自助语音服务', en: 'Self-service (IVR)' },
  { key: 'abandoned', zh: '放弃', en: 'Abandoned' },
  { key: 'shortAbandoned', zh: '5秒内放弃', en: 'Short abandons (< 5 s)' },
  { key: 'voicemails', zh: '留言', en: 'Voicemails' },
  { key: 'callbackRequested', zh: '预约回拨', en: 'Callback requested' },
  { key: 'otherUnanswered', zh: '其他未接通', en: 'Other unanswered' },
  { key: 'transfers', zh: '转接', en: 'Transfers' },
  { key: 'ratings', zh: '满意度评价数', en: 'Satisfaction ratings' },
  { key: 'ticketsOpened', zh: '新建工单', en: 'Tickets opened' },
  { key: 'ticketsDispatched', zh: '派发工单', en: 'Tickets dispatched' },
  { key: 'ticketsReturned', zh: '退回工单', en: 'Tickets returned' },
  { key: 'ticketsClosed', zh: '办结工单', en: 'Tickets closed' },
  { key: 'ticketsCalledBack24h', zh: '24小时内回访', en: 'Called back within 24 h' },
  { key: 'ticketsCallbackSkipped', zh: '无法回访（无号码/黑名单）', en: 'No callback possible' },
];

function kpiCell(r: KpiRow, d: KpiDef, scope: string): string {
  const v = r[d.key];
  const met = d.target ? r.targetsMet[d.target] : undefined;
  const cls = met === undefined ? '' : met === null ? 'na' : met ? 'met' : 'miss';
  return `<td class="num ${cls}" data-scope="${esc(scope)}" data-kpi="${d.key}" data-value="${v === null ? '' : String(v)}">${fmt(v, d.fmt)}</td>`;
}

const countCell = (r: KpiRow, key: keyof KpiRow & string, scope: string) => `<td class="num" data-scope="${esc(scope)}" data-kpi="${key}" data-value="${String(r[key])}">${String(r[key])}</td>`;

const h2 = (zh: string, en: string) => `<h2>${esc(zh)} <span class="en">${esc(en)}</span></h2>`;

// ---- charts (inline SVG) -------------------------------------------------------------------------------------

const W = 960;
const H = 260;
const M = { l: 56, r: 16, t: 16, b: 40 };

/** the y axis of a count: four ticks of a round step (1, 2 or 5 times a power of ten, at least 1) */
function niceMax(v: number): number {
  let step = 1;
  for (let p = 1; step * 4 < v; p *= 10) for (const m of [1, 2, 5]) if (step * 4 < v) step = m * p;
  return step * 4;
}

const dayLabel = (r: KpiRow) => r.label.slice(5); // MM-DD
const every = (n: number) => Math.max(1, Math.ceil(n / 16));

function barChart(rows: KpiRow[], title: string): string {
  const n = Math.max(rows.length, 1);
  const max = niceMax(Math.max(0, ...rows.map((r) => r.offered)));
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const bw = pw / n;
  const y = (v: number) => M.t + ph - (v / max) * ph;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${M.l - 6}" y="${(y(v) + 4).toFixed(1)}" class="ax" text-anchor="end">${Math.round(v)}</text>`);
  }
  rows.forEach((r, i) => {
    const x = M.l + i * bw + bw * 0.1;
    const w = Math.max(bw * 0.8, 0.5);
    const served = r.answered + r.ivrCompleted;
    parts.push(
      `<g><title>${esc(r.label)}: ${r.offered} offered, ${r.answered} answered, ${r.ivrCompleted} IVR</title>` +
        `<rect x="${x.toFixed(2)}" y="${y(r.offered).toFixed(1)}" width="${w.toFixed(2)}" height="${(y(served) - y(r.offered)).toFixed(1)}" class="bar-miss"/>` +
        `<rect x="${x.toFixed(2)}" y="${y(served).toFixed(1)}" width="${w.toFixed(2)}" height="${(y(0) - y(served)).toFixed(1)}" class="bar"/></g>`,
    );
    if (i % every(n) === 0) parts.push(`<text x="${(x + w / 2).toFixed(1)}" y="${H - M.b + 16}" class="ax" text-anchor="middle">${esc(dayLabel(r))}</text>`);
  });
  const legend = `<rect x="${M.l}" y="${H - 14}" width="10" height="10" class="bar"/><text x="${M.l + 14}" y="${H - 5}" class="ax">接通（人工+自助） answered (agent + IVR)</text>` +
    `<rect x="${M.l + 260}" y="${H - 14}" width="10" height="10" class="bar-miss"/><text x="${M.l + 274}" y="${H - 5}" class="ax">未接通 not answered</text>`;
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${parts.join('')}${legend}</svg>`;
}

function lineChart(rows: KpiRow[], series: Array<{ key: keyof KpiFigures; cls: string; name: string }>, target: { value: number; name: string }, lowest: number): string {
  const n = Math.max(rows.length, 1);
  // the axis starts at `lowest`, lower when a value is below it (a multiple of 20 % under the smallest value)
  const values = rows.flatMap((r) => series.map((s) => r[s.key])).filter((v): v is number => v !== null);
  const floor = Math.max(0, Math.min(lowest, Math.floor(Math.min(1, ...values) * 5) / 5));
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const x = (i: number) => M.l + (n === 1 ? pw / 2 : (i / (n - 1)) * pw);
  const y = (v: number) => M.t + ph - ((Math.max(v, floor) - floor) / (1 - floor)) * ph;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = floor + ((1 - floor) / 4) * i;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${M.l - 6}" y="${(y(v) + 4).toFixed(1)}" class="ax" text-anchor="end">${Math.round(v * 100)}%</text>`);
  }
  parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(target.value).toFixed(1)}" y2="${y(target.value).toFixed(1)}" class="target"><title>${esc(target.name)}</title></line>`);
  for (const s of series) {
    // a day without a value breaks the line
    let seg: string[] = [];
    const flush = () => {
      if (seg.length > 1) parts.push(`<polyline points="${seg.join(' ')}" class="${s.cls}" fill="none"/>`);
      else if (seg.length === 1) parts.push(`<circle cx="${seg[0]!.split(',')[0]}" cy="${seg[0]!.split(',')[1]}" r="2.5" class="${s.cls}-dot"/>`);
      seg = [];
    };
    rows.forEach((r, i) => {
      const v = r[s.key];
      if (v === null) flush();
      else seg.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
  }
  rows.forEach((r, i) => {
    if (i % every(n) === 0) parts.push(`<text x="${x(i).toFixed(1)}" y="${H - M.b + 16}" class="ax" text-anchor="middle">${esc(dayLabel(r))}</text>`);
  });
  let lx = M.l;
  const legend = [...series.map((s) => ({ cls: s.cls, name: s.name })), { cls: 'target', name: target.name }]
    .map((s) => {
      const out = `<line x1="${lx}" x2="${lx + 18}" y1="${H - 9}" y2="${H - 9}" class="${s.cls}"/><text x="${lx + 22}" y="${H - 5}" class="ax">${esc(s.name)}</text>`;
      lx += 30 + s.name.length * 7;
      return out;
    })
    .join('');
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img">${parts.join('')}${legend}</svg>`;
}

function staffingChart(items: Array<{ startLocal: string; agentsNeeded: number; forecastCalls: number }>): string {
  const n = Math.max(items.length, 1);
  const max = niceMax(Math.max(0, ...items.map((i) => i.agentsNeeded)));
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const bw = pw / n;
  const y = (v: number) => M.t + ph - (v / max) * ph;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${M.l - 6}" y="${(y(v) + 4).toFixed(1)}" class="ax" text-anchor="end">${Math.round(v)}</text>`);
  }
  items.forEach((it, i) => {
    const x = M.l + i * bw + bw * 0.15;
    parts.push(`<g><title>${esc(it.startLocal)}: ${it.forecastCalls} calls, ${it.agentsNeeded} agents</title><rect x="${x.toFixed(1)}" y="${y(it.agentsNeeded).toFixed(1)}" width="${(bw * 0.7).toFixed(1)}" height="${(y(0) - y(it.agentsNeeded)).toFixed(1)}" class="bar"/></g>`);
    if (i % 4 === 0) parts.push(`<text x="${(x + bw * 0.35).toFixed(1)}" y="${H - M.b + 16}" class="ax" text-anchor="middle">${esc(it.startLocal)}</text>`);
  });
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img">${parts.join('')}</svg>`;
}

// ---- tables -------------------------------------------------------------------------------------------------

const TABLE_KPIS = KPIS.filter((k) => ['answerRate', 'avgWaitSeconds', 'serviceLevel', 'satisfaction', 'fcr', 'fcrCalls', 'dispatchAccuracy', 'callbackRate24h', 'avgTalkSeconds'].includes(k.key));

function breakdownTable(rows: Array<KpiKeyRow & { name?: string | null }>, scope: string, keyHead: [string, string]): string {
  if (rows.length === 0) return '<p class="muted">无数据 No data</p>';
  const head = `<tr><th>${esc(keyHead[0])}<br><span class="en">${esc(keyHead[1])}</span></th><th>呼入<br><span class="en">Offered</span></th><th>人工接通<br><span class="en">Answered</span></th>${TABLE_KPIS.map((k) => `<th>${esc(k.zh)}<br><span class="en">${esc(k.en)}</span></th>`).join('')}</tr>`;
  const body = rows
    .map((r) => {
      const s = `${scope}:${r.key}`;
      const name = r.name ? ` ${esc(r.name)}` : '';
      return `<tr><td>${esc(r.key)}${name}</td>${countCell(r, 'offered', s)}${countCell(r, 'answered', s)}${TABLE_KPIS.map((k) => kpiCell(r, k, s)).join('')}</tr>`;
    })
    .join('');
  return `<table class="data">${head}${body}</table>`;
}

function periodTable(rows: KpiRow[], scope: string): string {
  const head = `<tr><th>日期<br><span class="en">Period</span></th><th>呼入<br><span class="en">Offered</span></th><th>人工接通<br><span class="en">Answered</span></th><th>自助<br><span class="en">IVR</span></th><th>放弃<br><span class="en">Abandoned</span></th>${TABLE_KPIS.map((k) => `<th>${esc(k.zh)}<br><span class="en">${esc(k.en)}</span></th>`).join('')}</tr>`;
  const body = rows
    .map((r) => {
      const s = `${scope}:${r.label}`;
      return `<tr><td>${esc(r.label)}</td>${countCell(r, 'offered', s)}${countCell(r, 'answered', s)}${countCell(r, 'ivrCompleted', s)}${countCell(r, 'abandoned', s)}${TABLE_KPIS.map((k) => kpiCell(r, k, s)).join('')}</tr>`;
    })
    .join('');
  return `<table class="data">${head}${body}</table>`;
}

const CSS = `
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px auto;max-width:1040px;color:#222;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #1f5fa8;padding-bottom:4px}
.en{color:#666;font-weight:normal;font-size:.85em}.muted{color:#777}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}th,td{border:1px solid #ccd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef2f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.met{color:#1b7d32;font-weight:bold}td.miss{color:#c62828;font-weight:bold;background:#fdecea}td.na{color:#888}
.summary td.num{font-size:15px}.chart{width:100%;height:auto;background:#fcfcfd;border:1px solid #e3e6ee;margin:6px 0}
.chart .grid{stroke:#e5e7ee;stroke-width:1}.chart .ax{font-size:11px;fill:#555}
.chart .bar{fill:#2e7d9a}.chart .bar-miss{fill:#f0a35e}
.chart .target{stroke:#c62828;stroke-width:1.5;stroke-dasharray:6 4}
.chart .s1{stroke:#1f5fa8;stroke-width:2}.chart .s2{stroke:#2e9a5a;stroke-width:2}.chart .s1-dot{fill:#1f5fa8}.chart .s2-dot{fill:#2e9a5a}
table.data td:first-child{white-space:nowrap}
footer{margin-top:32px;font-size:12px;color:#666}
@media print{body{margin:0}h2{break-after:avoid}table,svg{break-inside:avoid}}
`;

const localStamp = (d: Date) => new Intl.DateTimeFormat('sv-SE', { timeZone: 'Asia/Shanghai', dateStyle: 'short', timeStyle: 'short' }).format(d);

export function renderHtml(d: ReportData): string {
  const p = d.period;
  const [kindZh, kindEn] = KIND_ZH[p.kind] ?? ['报告', 'Report'];
  const t = d.total;
  const lastDay = new Date(p.to.getTime() - 1);
  const summary = KPIS.map((k) => {
    const met = k.target ? t.targetsMet[k.target] : undefined;
    const verdict = met === undefined ? '' : met === null ? '无数据 no data' : met ? '达标 met' : '未达标 missed';
    return `<tr><td>${esc(k.zh)}<br><span class="en">${esc(k.en)}</span></td><td>${esc(k.targetText ?? '—')}</td>${kpiCell(t, k, 'total')}<td class="${met === undefined ? '' : met === null ? 'na' : met ? 'met' : 'miss'}">${verdict}</td></tr>`;
  }).join('');
  const counts = COUNTS.map((c) => `<tr><td>${esc(c.zh)}<br><span class="en">${esc(c.en)}</span></td>${countCell(t, c.key, 'total')}</tr>`).join('');
  const sections: string[] = [];
  sections.push(`<section>${h2('合同指标', 'Contract KPIs against their targets')}<table class="data summary"><tr><th>指标 <span class="en">KPI</span></th><th>目标 <span class="en">Target</span></th><th>实际 <span class="en">Actual</span></th><th>结果 <span class="en">Result</span></th></tr>${summary}</table></section>`);
  sections.push(`<section>${h2('话务量与工单', 'Calls and tickets')}<table class="data summary">${counts}</table></section>`);
  sections.push(`<section>${h2('每日来电量', 'Calls per day')}${barChart(d.days, 'calls per day')}</section>`);
  sections.push(
    `<section>${h2('接通率与服务水平', 'Answer rate and service level against the 95% target')}${lineChart(
      d.days,
      [
        { key: 'answerRate', cls: 's1', name: '接通率 answer rate' },
        { key: 'serviceLevel', cls: 's2', name: '15秒服务水平 service level' },
      ],
      { value: TARGETS.answerRate, name: '目标 target 95%' },
      0.6,
    )}</section>`,
  );
  sections.push(`<section>${h2('满意度', 'Satisfaction against the 98% target')}${lineChart(d.days, [{ key: 'satisfaction', cls: 's1', name: '满意度 satisfaction' }], { value: TARGETS.satisfaction, name: '目标 target 98%' }, 0.8)}</section>`);
  if (d.months.length > 1) sections.push(`<section>${h2('分月指标', 'By month')}${periodTable(d.months, 'month')}</section>`);
  sections.push(`<section>${h2('每日指标', 'By day')}${periodTable(d.days, 'day')}</section>`);
  sections.push(`<section>${h2('分热线', 'By line')}${breakdownTable(d.lines, 'line', ['热线号码', 'Line'])}</section>`);
  sections.push(`<section>${h2('分技能队列', 'By queue')}${breakdownTable(d.queues, 'queue', ['队列', 'Queue'])}</section>`);
  sections.push(`<section>${h2('话务员（接通量前20名）', 'Top agents (20 most calls answered)')}${breakdownTable(d.agents.slice(0, 20), 'agent', ['话务员', 'Agent'])}</section>`);
  if (d.staffing) {
    const s = d.staffing;
    const rows = s.items
      .map((i) => `<tr><td>${esc(i.startLocal)}</td><td class="num">${i.forecastCalls}</td><td class="num">${i.ahtSeconds}</td><td class="num">${i.agentsNeeded}</td><td class="num">${(i.expectedServiceLevel * 100).toFixed(2)}%</td><td class="num">${i.expectedAsaSeconds}</td></tr>`)
      .join('');
    const peak = Math.max(0, ...s.items.map((i) => i.agentsNeeded));
    sections.push(
      `<section>${h2('排班预测', `Staffing forecast for ${s.date} (a representative weekday)`)}` +
        `<p>${esc(s.date)}（星期三）按前${s.weeksOfHistory}周同一工作日的来电预测，Erlang A 计算达到接通率 ≥ 95%、平均等待 ≤ 15 秒所需话务员；最高峰 ${peak} 人。` +
        `<br><span class="en">Forecast from the same weekday of the previous ${s.weeksOfHistory} weeks; agents needed per half-hour for an answer rate ≥ 95% and an average wait ≤ 15 s (Erlang A, caller patience ${s.patienceSeconds} s, ${s.patienceSource}); peak ${peak} agents.</span></p>` +
        `${staffingChart(s.items)}` +
        `<table class="data"><tr><th>时段 <span class="en">Half-hour</span></th><th>预测来电 <span class="en">Forecast calls</span></th><th>平均处理时长(秒) <span class="en">AHT s</span></th><th>所需话务员 <span class="en">Agents needed</span></th><th>预计接通率 <span class="en">Expected answer rate</span></th><th>预计平均等待(秒) <span class="en">Expected wait s</span></th></tr>${rows}</table></section>`,
    );
  }
  const fromText = localStamp(p.from).slice(0, 10);
  const toText = localStamp(lastDay).slice(0, 10);
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>海南12345热线${esc(kindZh)} ${esc(p.titleZh)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>海南12345政务服务便民热线 ${esc(kindZh)} <span class="en">Hainan 12345 hotline · ${esc(kindEn)}</span></h1>
<p>${esc(p.titleZh)} <span class="en">${esc(p.titleEn)}</span> · ${fromText} – ${toText}（北京时间 Asia/Shanghai）· 生成于 <span class="en">generated</span> ${esc(localStamp(d.generatedAt))}</p>
</header>
${sections.join('\n')}
<footer>
<p>口径说明 <span class="en">Definitions</span>：接通率 = (人工接通 + 自助语音服务) / (呼入总量 − 5秒内放弃)；等待时长自来电到达至人工接通或自助服务结束；服务水平 = 15秒内接通 / (呼入总量 − 5秒内放弃)；首次解决率（来电）：同一号码${d.fcrRepeatDays}天内就同一热线再次来电视为未解决；回访率以工单办结后24小时内完成回访计。详见 docs/kpi.md。
<br><span class="en">Answer rate = (answered by agents + self-service) / (offered − abandons under 5 s); wait from arrival to the agent's answer or the end of self-service; service level = answered within 15 s / the same denominator; FCR from calls: a repeat call from the same number about the same line within ${d.fcrRepeatDays} days means not resolved; callbacks count when done within 24 h of the ticket's closure. All of it in docs/kpi.md of the service.</span></p>
</footer>
</body>
</html>
`;
}

// ---- CSV ---------------------------------------------------------------------------------------------------

const FIGURES = KPIS.map((k) => k.key);
const STAFFING_COLUMNS = ['forecastCalls', 'ahtSeconds', 'agentsNeeded', 'expectedServiceLevel', 'expectedAsaSeconds'] as const;
export const CSV_COLUMNS = ['section', 'key', 'name', 'label', 'start', 'end', ...SUM_KEYS, ...FIGURES, ...(Object.keys(TARGETS) as TargetKey[]).map((k) => `${k}Met`), ...STAFFING_COLUMNS];

const csvField = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function renderCsv(d: ReportData): string {
  const lines: string[] = [CSV_COLUMNS.join(',')];
  const kpiLine = (section: string, r: KpiRow, key = '', name: string | null = null) => {
    const met = Object.keys(TARGETS).map((k) => r.targetsMet[k as TargetKey]);
    lines.push([section, key, name ?? '', r.label, r.start, r.end, ...SUM_KEYS.map((k) => r[k]), ...FIGURES.map((k) => r[k]), ...met, ...STAFFING_COLUMNS.map(() => null)].map(csvField).join(','));
  };
  kpiLine('total', d.total);
  for (const r of d.months) kpiLine('month', r);
  for (const r of d.days) kpiLine('day', r);
  for (const r of d.lines) kpiLine('line', r, r.key);
  for (const r of d.queues) kpiLine('queue', r, r.key);
  for (const r of d.agents) kpiLine('agent', r, r.key, r.name);
  if (d.staffing) {
    for (const i of d.staffing.items) {
      const blanks = CSV_COLUMNS.length - 6 - STAFFING_COLUMNS.length;
      lines.push([ 'staffing', d.staffing.date, '', i.startLocal, i.start, new Date(Date.parse(i.start) + 1800_000).toISOString(), ...Array(blanks).fill(null), ...STAFFING_COLUMNS.map((k) => i[k])].map(csvField).join(','));
    }
  }
  return `\uFEFF${lines.join('\r\n')}\r\n`;
}
