import type { Command } from 'commander';
import { doctor, formatDoctor } from '../doctor';

export function registerDoctorCommands(program: Command): void {
  program
    .command('doctor')
    .description('report libtorch, CUDA, BLAS, threads, the loaded addon and a one-second GEMM probe')
    .option('--json', 'print the report as JSON')
    .option('--gemm-size <n>', 'matrix size of the GEMM probe', (v) => parseInt(v, 10), 1024)
    .option('--device <d>', 'cpu or cuda[:N] for the GEMM probe (default: cuda when available)')
    .action(async (opts: { json?: boolean; gemmSize: number; device?: string }) => {
      const report = await doctor({ gemmSize: opts.gemmSize, device: opts.device });
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report) + '\n');
    });
}
