/** Small HTML helpers of the report (escaping and the few building blocks it repeats). */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export const pct = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : (v * 100).toFixed(digits));

export function table(header: string[], rows: string[][], numericFrom = 1): string {
  const th = header.map((h, i) => `<th${i >= numericFrom ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${i >= numericFrom ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function jsonBlock(summary: string, value: unknown, open = false): string {
  return `<details${open ? ' open' : ''}><summary>${esc(summary)}</summary><pre>${esc(JSON.stringify(value, null, 2))}</pre></details>`;
}

export function section(id: string, title: string, body: string): string {
  return `<section id="${esc(id)}"><h2>${esc(title)}</h2>\n${body}\n</section>`;
}

export function figure(name: string, svg: string): string {
  return `<figure class="plot" data-plot="${esc(name)}">${svg}</figure>`;
}

export const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:0 24px 48px;color:#222}
h1{font-size:22px;margin:24px 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
nav a{margin-right:12px}.meta{color:#666}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:420px;font-size:12px}
figure.plot{margin:12px 0;overflow-x:auto}.empty{color:#888;font-style:italic}
details.rank{border:1px solid #e2e2e2;border-radius:4px;margin:6px 0;padding:4px 8px}details.rank>summary{cursor:pointer}
.tokens{font-family:ui-monospace,Menlo,monospace;font-size:13px}.tok{padding:0 1px}
mark.swap{background:#ffd5d5;border-bottom:2px solid #d62728;padding:0 2px}
.score{color:#555;font-size:12px}.sim{display:inline-block;min-width:88px;color:#1f77b4}
ol.rejected li{margin:4px 0}#rank-filter{width:360px;padding:4px}
`;

/** The only script: filters the ranked-list sample as one types (plain DOM, nothing loaded). */
export const FILTER_SCRIPT = `
(function(){var box=document.getElementById('rank-filter');if(!box)return;var items=document.querySelectorAll('details.rank');
var count=document.getElementById('rank-count');function apply(){var q=box.value.toLowerCase();var shown=0;
items.forEach(function(d){var hit=!q||d.textContent.toLowerCase().indexOf(q)>=0;d.style.display=hit?'':'none';if(hit)shown++;});
count.textContent=shown+' of '+items.length+' shown';}box.addEventListener('input',apply);apply();})();
`;
