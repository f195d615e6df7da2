import type { Command } from 'commander';

/** One line per stage; each module adds its sub-commands to the program. */
export function registerCommands(program: Command): void {
  void program;
}
