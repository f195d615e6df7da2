/** The paper's Table 1 layout: one row per method, Open and Closed columns per dataset. */
import type { GroupSummary } from './metrics';

const DISPLAY: Record<string, string> = { 'vqa-rad': 'VQA-RAD', slake: 'SLAKE', pathvqa: 'PathVQA', phantom: 'Phantom', 'llava-med': 'LLaVA-Med' };
const PAPER_ORDER = ['vqa-rad', 'slake', 'pathvqa'];

export interface TableRow {
  /** Method name shown in the first column. */
  name: string;
  datasets: Record<string, GroupSummary>;
}

function datasetOrder(rows: TableRow[]): string[] {
  const all = new Set(rows.flatMap((r) => Object.keys(r.datasets)));
  const rest = [...all].filter((d) => !PAPER_ORDER.includes(d)).sort();
  return [...PAPER_ORDER.filter((d) => all.has(d)), ...rest];
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : (v * 100).toFixed(2));

/** Markdown table; scores in percent with two decimals, '–' where a dataset has no question of that type. */
export function resultsTable(rows: TableRow[]): string {
  const order = datasetOrder(rows);
  const header = ['Method', ...order.flatMap((d) => [`${DISPLAY[d] ?? d} Open`, `${DISPLAY[d] ?? d} Closed`])];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const row of rows) {
    const cells = order.flatMap((d) => [pct(row.datasets[d]?.open.score), pct(row.datasets[d]?.closed.accuracy)]);
    lines.push(`| ${[row.name, ...cells].join(' | ')} |`);
  }
  return lines.join('\n');
}
