/**
 * Calls per quarter-hour today (bars) against the staffing forecast (a line), as inline SVG: no chart
 * library, nothing to download. The current quarter-hour is marked.
 */
import { s } from './dom.js';

export interface Slot {
  startLocal: string;
  calls: number;
  forecast: number;
}

export interface ChartText {
  calls: string;
  forecast: string;
}

const PAD = { left: 3.2, right: 1, top: 2.2, bottom: 2.2 };

/** a round upper bound for the y axis: 1, 2, 5 x 10^n */
function niceMax(v: number): number {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Drawn in the box's own pixels (so the text keeps its size on any screen); `em` is the axis font size in
 * pixels, from which the margins follow.
 */
export function callsChart(slots: Slot[], currentSlot: number, text: ChartText, box: { width: number; height: number }): SVGElement {
  const W = Math.max(300, box.width);
  const H = Math.max(150, box.height);
  const em = Math.max(11, Math.min(W / 60, H / 14));
  const pad = { left: PAD.left * em, right: PAD.right * em, top: PAD.top * em, bottom: PAD.bottom * em };
  const n = Math.max(1, slots.length);
  const max = niceMax(Math.max(1, ...slots.map((x) => Math.max(x.calls, x.forecast))));
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const bw = plotW / n;
  const x = (i: number) => pad.left + i * bw;
  const y = (v: number) => pad.top + plotH - (v / max) * plotH;

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'font-size': em, role: 'img', 'aria-label': `${text.calls} / ${text.forecast}`, className: 'chart', 'data-testid': 'chart' });
  // grid and y labels
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    svg.append(s('line', { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v), className: 'grid' }));
    svg.append(s('text', { x: pad.left - em * 0.4, y: y(v) + em * 0.35, className: 'axis', 'text-anchor': 'end' }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  // x labels every 2 hours
  slots.forEach((sl, i) => {
    if (i % 8 === 0) svg.append(s('text', { x: x(i), y: H - em * 0.5, className: 'axis', 'text-anchor': 'start' }, sl.startLocal));
  });
  if (currentSlot >= 0 && currentSlot < n) {
    svg.append(s('rect', { x: x(currentSlot), y: pad.top, width: bw, height: plotH, className: 'now' }));
  }
  // bars: calls so far
  slots.forEach((sl, i) => {
    if (sl.calls <= 0) return;
    svg.append(s('rect', { x: x(i) + bw * 0.12, y: y(sl.calls), width: bw * 0.76, height: y(0) - y(sl.calls), className: 'bar' }, s('title', {}, `${sl.startLocal} ${text.calls} ${sl.calls}`)));
  });
  // forecast line
  const pts = slots.map((sl, i) => `${(x(i) + bw / 2).toFixed(1)},${y(sl.forecast).toFixed(1)}`).join(' ');
  svg.append(s('polyline', { points: pts, className: 'forecast' }));
  // legend
  const ly = em * 0.9;
  svg.append(s('rect', { x: W - em * 16, y: ly - em * 0.7, width: em * 1.2, height: em * 0.8, className: 'bar' }));
  svg.append(s('text', { x: W - em * 14.4, y: ly, className: 'legend' }, text.calls));
  svg.append(s('line', { x1: W - em * 8, x2: W - em * 6.4, y1: ly - em * 0.3, y2: ly - em * 0.3, className: 'forecast' }));
  svg.append(s('text', { x: W - em * 5.9, y: ly, className: 'legend' }, text.forecast));
  return svg;
}
