import fs from 'fs';
import path from 'path';
import { Command } from 'commander';
import { PACKAGE_ROOT } from '../native';
import { registerCommands } from './commands';

function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Marks every required option "(required)" in --help, on every sub-command. */
export function markRequired(command: Command): void {
  for (const option of command.options) {
    if (option.mandatory && !option.description.endsWith('(required)')) option.description += ' (required)';
  }
  for (const sub of command.commands) markRequired(sub);
}

/** The `hscr` program: its sub-commands, --version, and one-line usage errors. */
export function createProgram(): Command {
  const program = new Command('hscr')
    .description('Hierarchical Self-Contrastive Rewarding for vision-language models')
    .version(packageVersion(), '-V, --version', 'print the hscr version');
  // A usage error is one line naming the option, plus where the usage is (not the whole help).
  program.showHelpAfterError('(add --help for usage)');
  registerCommands(program);
  markRequired(program);
  return program;
}

/** Entry point of the `hscr` binary. Each pipeline stage registers its own sub-commands. */
export async function main(argv: string[]): Promise<void> {
  await createProgram().parseAsync(argv);
}
