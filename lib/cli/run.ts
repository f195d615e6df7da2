/** `hscr run --config FILE`: the whole pipeline from one config; a rerun continues where the last one stopped. */
import type { Command } from 'commander';
import { loadPipelineConfig, runPipeline } from '../pipeline';

const pct = (v: number | null): string => (v === null ? '–' : (v * 100).toFixed(2));

export function registerRunCommands(program: Command): void {
  program
    .command('run')
    .description('data → init → SFT → generate → rerank → train → eval from one JSON config; finished stages whose inputs are unchanged are skipped')
    .requiredOption('--config <file>', 'pipeline config JSON (keys: see lib/pipeline/config.ts)')
    .option('--quiet', 'no progress output')
    .action(async (o: { config: string; quiet?: boolean }) => {
      const r = await runPipeline(loadPipelineConfig(o.config), { quiet: o.quiet });
      const lines = r.stages.map((s) => `  ${s.stage.padEnd(9)}${s.action === 'ran' ? `ran in ${s.seconds.toFixed(1)} s (${s.reason})` : 'skipped'}`);
      const scores = Object.entries(r.scores).map(([k, g]) => `  ${k.padEnd(9)}closed ${pct(g.closed.accuracy)} (n=${g.closed.n}), open ${pct(g.open.score)} (n=${g.open.n})`);
      process.stdout.write(['stages:', ...lines, 'scores (%):', ...scores, `run folder: ${r.outDir}`, ...(r.report ? [`report: ${r.report}`] : [])].join('\n') + '\n');
    });
}
