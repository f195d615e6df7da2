import { Command } from 'commander';
import { registerCommands } from './commands';

/** Entry point of the `hscr` binary. Each pipeline stage registers its own sub-commands. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('hscr').description('Hierarchical Self-Contrastive Rewarding for vision-language models');
  program.showHelpAfterError();
  registerCommands(program);
  await program.parseAsync(argv);
}
