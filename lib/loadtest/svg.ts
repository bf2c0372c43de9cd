/**
 * Two small chart kinds written as plain SVG text (no browser, no canvas): lines over categories (log or
 * linear axis, with dashed reference lines for targets) and grouped bars.
 */

export interface Series {
  name: string;
  color: string;
  values: (number | null)[];
}

export interface ChartSpec {
  title: string;
  categories: string[];
  series: Series[];
  yLabel: string;
  xLabel?: string;
  /** bar charts: print each bar's value above it */
  valueLabels?: boolean;
  /** logarithmic y axis (latencies span several decades) */
  logY?: boolean;
  /** dashed horizontal lines, e.g. the guide's targets */
  references?: { value: number; label: string; color: string }[];
  /** how tick values are written */
  format?: (v: number) => string;
  width?: number;
  height?: number;
}

const MARGIN = { top: 40, right: 150, bottom: 60, left: 70 };
const FONT = 'font-family="sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

interface Frame {
  width: number;
  height: number;
  plotW: number;
  plotH: number;
  y: (v: number) => number;
  ticks: number[];
  x: (i: number) => number;
  band: number;
}

function frame(spec: ChartSpec, values: number[]): Frame {
  const width = spec.width ?? 760;
  const height = spec.height ?? 400;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const refs = (spec.references ?? []).map((r) => r.value);
  const all = [...values, ...refs].filter((v) => Number.isFinite(v));
  let ticks: number[];
  let y: (v: number) => number;
  if (spec.logY) {
    const positive = all.filter((v) => v > 0);
    // a decade below the lowest value when it sits near a power of ten: 1.02 ms must not lie on the axis
    const lo = Math.floor(Math.log10(0.7 * Math.min(...(positive.length ? positive : [1]))));
    let hi = Math.ceil(Math.log10(Math.max(...(positive.length ? positive : [10]))));
    if (hi <= lo) hi = lo + 1;
    ticks = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    y = (v) => MARGIN.top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  } else {
    const max = niceCeil(Math.max(1, ...all));
    ticks = [0, 1, 2, 3, 4, 5].map((k) => (max * k) / 5);
    y = (v) => MARGIN.top + plotH - (Math.max(0, v) / max) * plotH;
  }
  const n = Math.max(1, spec.categories.length);
  const band = plotW / n;
  return { width, height, plotW, plotH, y, ticks, x: (i) => MARGIN.left + band * (i + 0.5), band };
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(spec: ChartSpec, f: Frame): string[] {
  const fmt = spec.format ?? ((v: number) => String(+v.toPrecision(3)));
  const out: string[] = [];
  out.push(`<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>`);
  out.push(`<text x="${f.width / 2}" y="24" text-anchor="middle" font-size="16" ${FONT}>${escapeXml(spec.title)}</text>`);
  for (const t of f.ticks) {
    const yy = f.y(t).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${yy}" x2="${MARGIN.left + f.plotW}" y2="${yy}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" font-size="11" ${FONT}>${escapeXml(fmt(t))}</text>`);
  }
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + f.plotH}" stroke="#333"/>`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + f.plotH}" x2="${MARGIN.left + f.plotW}" y2="${MARGIN.top + f.plotH}" stroke="#333"/>`);
  const every = Math.max(1, Math.ceil(spec.categories.length / 12));
  spec.categories.forEach((c, i) => {
    if (i % every !== 0) return;
    out.push(`<text x="${f.x(i).toFixed(1)}" y="${MARGIN.top + f.plotH + 18}" text-anchor="middle" font-size="11" ${FONT}>${escapeXml(c)}</text>`);
  });
  if (spec.xLabel) {
    out.push(`<text x="${MARGIN.left + f.plotW / 2}" y="${MARGIN.top + f.plotH + 42}" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(spec.xLabel)}</text>`);
  }
  const cy = MARGIN.top + f.plotH / 2;
  out.push(`<text x="16" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${cy})" ${FONT}>${escapeXml(spec.yLabel)}</text>`);
  for (const r of spec.references ?? []) {
    const yy = f.y(r.value).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${yy}" x2="${MARGIN.left + f.plotW}" y2="${yy}" stroke="${r.color}" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${MARGIN.left + f.plotW + 6}" y="${yy}" dominant-baseline="middle" font-size="11" fill="${r.color}" ${FONT}>${escapeXml(r.label)}</text>`);
  }
  return out;
}

function legend(series: Series[], f: Frame, refs: number): string[] {
  const out: string[] = [];
  const x = MARGIN.left + f.plotW + 10;
  series.forEach((s, i) => {
    const y = MARGIN.top + f.plotH - 16 * (series.length - i) - (refs > 0 ? 0 : 0);
    out.push(`<rect x="${x}" y="${y - 5}" width="12" height="10" fill="${s.color}"/>`);
    out.push(`<text x="${x + 18}" y="${y}" dominant-baseline="middle" font-size="12" ${FONT}>${escapeXml(s.name)}</text>`);
  });
  return out;
}

function wrap(f: Frame, body: string[], title: string): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" role="img" aria-label="${escapeXml(title)}">`,
    ...body.map((l) => '  ' + l),
    `</svg>`,
    '',
  ].join('\n');
}

export function lineChart(spec: ChartSpec): string {
  const values = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const f = frame(spec, values);
  const body = axes(spec, f);
  for (const s of spec.series) {
    const pts = s.values.map((v, i) => (v === null ? null : `${f.x(i).toFixed(1)},${f.y(v).toFixed(1)}`));
    const runs: string[][] = [[]];
    for (const p of pts) {
      if (p === null) runs.push([]);
      else runs[runs.length - 1].push(p);
    }
    for (const r of runs) {
      if (r.length > 1) body.push(`<polyline points="${r.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    }
    for (const p of pts) {
      if (p === null) continue;
      const [cx, cy] = p.split(',');
      body.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${s.color}"/>`);
    }
  }
  body.push(...legend(spec.series, f, spec.references?.length ?? 0));
  return wrap(f, body, spec.title);
}

export function barChart(spec: ChartSpec): string {
  const values = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const f = frame({ ...spec, logY: false }, values);
  const body = axes({ ...spec, logY: false }, f);
  const groupW = f.band * 0.7;
  const barW = groupW / Math.max(1, spec.series.length);
  spec.series.forEach((s, si) => {
    s.values.forEach((v, i) => {
      if (v === null) return;
      const x = f.x(i) - groupW / 2 + si * barW;
      const y = f.y(v);
      const h = MARGIN.top + f.plotH - y;
      body.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}"/>`);
      if (spec.valueLabels) {
        const label = (spec.format ?? ((n: number) => String(Math.round(n))))(v);
        body.push(`<text x="${(x + (barW - 2) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10" ${FONT}>${escapeXml(label)}</text>`);
      }
    });
  });
  body.push(...legend(spec.series, f, 0));
  return wrap(f, body, spec.title);
}
