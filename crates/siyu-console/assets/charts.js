// Small SVG charts for the console: horizontal bars, grouped bars and heatmaps.
// Every function returns an <svg> element; no external library.
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#0f766e', '#14b8a6', '#f59e0b', '#6366f1', '#ef4444'];

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    if (Math.abs(n) >= 1e8) return (n / 1e8).toFixed(1) + '亿';
    if (Math.abs(n) >= 1e4) return (n / 1e4).toFixed(1) + '万';
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  }

  // rows: [{label, values: [..]}], series: [names]; one bar per series.
  function groupedBars(rows, series, opts) {
    opts = opts || {};
    const labelW = 110, width = opts.width || 640, barH = 14, gap = 10;
    // Room after the longest bar for its value, and for the row notes at the right edge.
    const noteW = rows.some((r) => r.note) ? 70 : 0;
    const plotW = width - labelW - 70 - noteW;
    const groupH = series.length * barH + gap;
    const height = 28 + rows.length * groupH;
    const max = Math.max(1, ...rows.flatMap((r) => r.values));
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': opts.title || '' });
    series.forEach((s, i) => {
      const x = labelW + i * 110;
      svg.appendChild(el('rect', { x, y: 4, width: 10, height: 10, fill: PALETTE[i % PALETTE.length] }));
      svg.appendChild(el('text', { x: x + 14, y: 13, class: 'legend' }, s));
    });
    rows.forEach((r, ri) => {
      const y0 = 24 + ri * groupH;
      svg.appendChild(el('text', { x: labelW - 6, y: y0 + (series.length * barH) / 2 + 4, 'text-anchor': 'end', class: 'axis' }, r.label));
      r.values.forEach((v, si) => {
        const w = Math.max(1, (v / max) * plotW);
        const y = y0 + si * barH;
        const bar = el('rect', { x: labelW, y, width: w, height: barH - 2, fill: PALETTE[si % PALETTE.length], rx: 2 });
        bar.appendChild(el('title', {}, `${r.label} · ${series[si]}: ${fmt(v)}`));
        svg.appendChild(bar);
        svg.appendChild(el('text', { x: labelW + w + 4, y: y + barH - 4, class: 'value' }, (opts.format || fmt)(v)));
      });
      if (r.note) svg.appendChild(el('text', { x: width - 4, y: y0 + barH, 'text-anchor': 'end', class: 'note' }, r.note));
    });
    return svg;
  }

  // rows: [{label, value, color?, text?}]: one horizontal bar per row, on
  // one scale (the largest value spans the plot).
  function bars(rows, opts) {
    opts = opts || {};
    const labelW = opts.labelW || 150, width = opts.width || 560, barH = 18, gap = 6;
    const plotW = width - labelW - 60;
    const height = 4 + rows.length * (barH + gap);
    const max = Math.max(1, ...rows.map((r) => r.value));
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart bars', role: 'img', 'aria-label': opts.title || '' });
    rows.forEach((r, i) => {
      const y = 4 + i * (barH + gap);
      const w = r.value > 0 ? Math.max(2, (r.value / max) * plotW) : 0;
      svg.appendChild(el('text', { x: labelW - 6, y: y + barH - 5, 'text-anchor': 'end', class: 'axis' }, r.label));
      const bar = el('rect', { x: labelW, y, width: w, height: barH, fill: r.color || PALETTE[i % PALETTE.length], rx: 2, 'data-label': r.label });
      bar.appendChild(el('title', {}, `${r.label}: ${r.text || fmt(r.value)}`));
      svg.appendChild(bar);
      svg.appendChild(el('text', { x: labelW + w + 4, y: y + barH - 5, class: 'value' }, r.text || fmt(r.value)));
    });
    return svg;
  }

  function shade(frac) {
    // white → teal
    const f = Math.max(0, Math.min(1, frac));
    const c = (a, b) => Math.round(a + (b - a) * f);
    return `rgb(${c(240, 15)},${c(253, 118)},${c(250, 110)})`;
  }

  // cells[r][c] = {value, label, frac}; rowLabels, colLabels.
  function heatmap(cells, rowLabels, colLabels, opts) {
    opts = opts || {};
    const cw = opts.cellW || 46, ch = opts.cellH || 24;
    const left = opts.left || 120, top = 22;
    const width = left + colLabels.length * cw + 4;
    const height = top + rowLabels.length * ch + (opts.xTitle ? 18 : 4);
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart heat', role: 'img', 'aria-label': opts.title || '' });
    colLabels.forEach((l, c) => svg.appendChild(el('text', { x: left + c * cw + cw / 2, y: 14, 'text-anchor': 'middle', class: 'axis' }, l)));
    rowLabels.forEach((l, r) => {
      svg.appendChild(el('text', { x: left - 6, y: top + r * ch + ch / 2 + 4, 'text-anchor': 'end', class: 'axis' }, l));
      (cells[r] || []).forEach((cell, c) => {
        if (!cell) return;
        const rect = el('rect', { x: left + c * cw + 1, y: top + r * ch + 1, width: cw - 2, height: ch - 2, fill: shade(cell.frac), rx: 2 });
        rect.appendChild(el('title', {}, cell.title || cell.label));
        svg.appendChild(rect);
        svg.appendChild(el('text', { x: left + c * cw + cw / 2, y: top + r * ch + ch / 2 + 4, 'text-anchor': 'middle', class: cell.frac > 0.55 ? 'cell dark' : 'cell' }, cell.label));
      });
    });
    if (opts.xTitle) svg.appendChild(el('text', { x: left + (colLabels.length * cw) / 2, y: height - 3, 'text-anchor': 'middle', class: 'axis' }, opts.xTitle));
    return svg;
  }

  // A small fill meter: `value` of `max` (size of capacity, groups of
  // max_groups); amber from 70 %, red from 90 %; `extra` (reserved seats)
  // is drawn lighter after the value.
  function meter(value, max, opts) {
    opts = opts || {};
    const width = opts.width || 160, height = 16, barW = width - 64;
    const frac = max > 0 ? Math.min(1, value / max) : 1;
    const extraFrac = max > 0 ? Math.min(1 - frac, (opts.extra || 0) / max) : 0;
    const color = frac >= 0.9 ? PALETTE[4] : frac >= 0.7 ? PALETTE[2] : PALETTE[0];
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'meter', role: 'img', 'aria-label': `${value} / ${max}`, 'data-frac': frac.toFixed(3) });
    svg.appendChild(el('rect', { x: 0, y: 3, width: barW, height: 10, rx: 3, fill: '#e5e7eb' }));
    svg.appendChild(el('rect', { x: 0, y: 3, width: Math.max(value > 0 ? 2 : 0, frac * barW), height: 10, rx: 3, fill: color, class: 'fill' }));
    if (extraFrac > 0) svg.appendChild(el('rect', { x: frac * barW, y: 3, width: extraFrac * barW, height: 10, fill: color, opacity: 0.35 }));
    svg.appendChild(el('text', { x: barW + 6, y: 12, class: 'value' }, `${fmt(value)}/${fmt(max)}`));
    return svg;
  }

  window.Charts = { bars, groupedBars, heatmap, meter, fmt, PALETTE };
})();
