// A small line chart in inline SVG: visitors (area and line) and page views (line) over time.

import { int, timeLabel } from './format.js';

const NS = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

/** A round upper bound for the y axis and its step (4 or 5 steps). */
function niceScale(max) {
  if (max <= 0) return { top: 4, step: 1 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const st = [1, 2, 2.5, 5, 10].map((f) => f * mag).filter(Number.isInteger).find((s) => s >= raw) ?? 1;
  return { top: Math.ceil(max / st) * st, step: st };
}

/**
 * Draws into `box` (an element that keeps the chart and its tooltip).
 * data: {labels: [...], unit: 'hour'|'day'|..., series: [{name, label, values, cls}]}
 */
export function drawChart(box, data) {
  box.replaceChildren();
  const width = Math.max(280, box.clientWidth || 600);
  const height = width < 500 ? 200 : 260;
  const pad = { l: 44, r: 12, t: 12, b: 28 };
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  const n = data.labels.length;
  const max = Math.max(0, ...data.series.flatMap((s) => s.values));
  const { top, step } = niceScale(max);
  const x = (i) => pad.l + (n <= 1 ? w / 2 : (i * w) / (n - 1));
  const y = (v) => pad.t + h - (v / top) * h;

  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'chart-svg' });
  const summary = data.series.map((s) => `${s.label}: ${int(s.values.reduce((a, b) => a + b, 0))} in all`).join(', ');
  el('title', {}, svg).textContent = `Chart over ${n} periods. ${summary}. Arrow keys step through the periods.`;

  for (let v = 0; v <= top + 1e-9; v += step) {
    el('line', { x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v), class: 'grid' }, svg);
    el('text', { x: pad.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, svg).textContent = int(v);
  }
  const every = Math.max(1, Math.ceil(n / Math.floor(w / 64)));
  for (let i = 0; i < n; i += every) {
    const anchor = n === 1 ? 'middle' : x(i) < pad.l + 24 ? 'start' : x(i) > pad.l + w - 24 ? 'end' : 'middle';
    el('text', { x: x(i), y: height - 8, class: 'axis', 'text-anchor': anchor }, svg)
      .textContent = timeLabel(data.labels[i], data.unit);
  }
  data.series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (k === 0 && n > 1) el('path', { d: `M${x(0)},${y(0)}L${pts.join('L')}L${x(n - 1)},${y(0)}Z`, class: `area ${s.cls}` }, svg);
    if (n > 1) el('path', { d: `M${pts.join('L')}`, class: `line ${s.cls}` }, svg);
    else el('circle', { cx: x(0), cy: y(s.values[0] || 0), r: 4, class: `dot ${s.cls}` }, svg);
  });

  const cursor = el('line', { y1: pad.t, y2: pad.t + h, class: 'cursor', visibility: 'hidden' }, svg);
  const dots = data.series.map((s) => el('circle', { r: 3.5, class: `dot ${s.cls}`, visibility: 'hidden' }, svg));
  const tip = document.createElement('div');
  tip.className = 'chart-tip';
  tip.hidden = true;
  box.append(svg, tip);

  const show = (i) => {
    cursor.setAttribute('x1', x(i));
    cursor.setAttribute('x2', x(i));
    cursor.setAttribute('visibility', 'visible');
    data.series.forEach((s, k) => {
      dots[k].setAttribute('cx', x(i));
      dots[k].setAttribute('cy', y(s.values[i]));
      dots[k].setAttribute('visibility', 'visible');
    });
    const head = document.createElement('strong');
    head.textContent = timeLabel(data.labels[i], data.unit, true);
    tip.replaceChildren(head, ...data.series.map((s) => {
      const row = document.createElement('div');
      const sw = document.createElement('span');
      sw.className = `swatch ${s.cls}`;
      row.append(sw, `${s.label}: ${int(s.values[i])}`);
      return row;
    }));
    tip.hidden = false;
    const left = (x(i) / width) * box.clientWidth;
    tip.style.left = `${Math.min(Math.max(left, 70), box.clientWidth - 70)}px`;
  };
  const hide = () => {
    tip.hidden = true;
    cursor.setAttribute('visibility', 'hidden');
    dots.forEach((d) => d.setAttribute('visibility', 'hidden'));
  };
  svg.addEventListener('pointermove', (ev) => {
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * width;
    const i = n <= 1 ? 0 : Math.round(((px - pad.l) / w) * (n - 1));
    if (n) show(Math.min(n - 1, Math.max(0, i)));
  });
  svg.addEventListener('pointerleave', hide);
  // Keyboard: arrows move along the periods.
  let at = -1;
  svg.setAttribute('tabindex', '0');
  svg.addEventListener('keydown', (ev) => {
    const step = { ArrowLeft: -1, ArrowRight: 1, Home: -n, End: n }[ev.key];
    if (!step || !n) return;
    ev.preventDefault();
    at = Math.min(n - 1, Math.max(0, (at < 0 ? n : at) + step));
    show(at);
  });
  svg.addEventListener('blur', () => { at = -1; hide(); });
}
