/**
 * Data-parallel launch, torchrun-style. `--nproc N` (with --nnodes/--node-rank/--master-addr/--master-port
 * across machines) makes this process a launcher: it spawns N copies of the same command with RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set — the variables torchrun sets,
 * so a job started by torchrun (or a cluster launcher that sets them) runs the same way. Each worker then
 * joins a c10d process group (TCPStore rendezvous at MASTER_ADDR:MASTER_PORT; Gloo on CPU, NCCL on CUDA).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import { HscrError } from '../errors';
import { trainAddon, type NativeProcessGroup } from './native';

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

export interface LaunchOptions {
  /** Processes on this machine. */
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** Default: a free port on a single machine, 29500 (torchrun's) across machines. */
  masterPort?: number;
}

/** Where this process stands in a data-parallel job; `group` only when there is more than one rank. */
export interface DistContext {
  rank: number;
  worldSize: number;
  localRank: number;
  group?: NativeProcessGroup;
}

export const SINGLE_PROCESS: DistContext = { rank: 0, worldSize: 1, localRank: 0 };

const LAUNCHER_PID = 'HSCR_LAUNCHER_PID';

function envInt(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback === undefined) throw new HscrError(`environment variable ${name} is not set`, 'E_DIST', name);
    return fallback;
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new HscrError(`environment variable ${name} must be an integer ≥ 0`, 'E_DIST', raw);
  return v;
}

/** The torchrun variables of this process, or null when it was not started as a rank. */
export function distEnvFrom(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.RANK === undefined || env.WORLD_SIZE === undefined) return null;
  const worldSize = envInt(env, 'WORLD_SIZE');
  const rank = envInt(env, 'RANK');
  if (worldSize < 1 || rank >= worldSize) throw new HscrError(`RANK ${rank} does not fit WORLD_SIZE ${worldSize}`, 'E_DIST', { rank, worldSize });
  return {
    rank,
    worldSize,
    localRank: envInt(env, 'LOCAL_RANK', rank),
    localWorldSize: envInt(env, 'LOCAL_WORLD_SIZE', worldSize),
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: envInt(env, 'MASTER_PORT', 29500),
  };
}

/** A port nothing listens on now (single-machine jobs; the tiny race with other programs is accepted). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

const LAUNCHER_FLAGS = new Set(['--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port']);

/** The command line without the launcher's own flags (each takes one value, as --flag v or --flag=v). */
export function stripLauncherFlags(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (!LAUNCHER_FLAGS.has(name)) out.push(a);
    else if (!a.includes('=')) i++;
  }
  return out;
}

export function checkLaunchOptions(o: LaunchOptions): void {
  const intIn = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new HscrError(`${name} must be an integer in [${lo}, ${hi}]`, 'E_ARG', v);
  };
  intIn('--nproc', o.nproc, 1, 1024);
  intIn('--nnodes', o.nnodes, 1, 4096);
  intIn('--node-rank', o.nodeRank, 0, o.nnodes - 1);
  if (o.masterPort !== undefined) intIn('--master-port', o.masterPort, 1, 65535);
  if (typeof o.masterAddr !== 'string' || o.masterAddr === '') throw new HscrError('--master-addr must be a host name or address', 'E_ARG', o.masterAddr);
}

export interface SpawnOptions {
  /** The node executable and its flags (default: this process's, so ts-node and friends carry over). */
  execPath?: string;
  execArgv?: string[];
  /** The script and its arguments, launcher flags already removed. */
  args: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs the ranks of this machine and waits for them. The first rank to fail takes the others down (a
 * data-parallel job cannot go on without one of its ranks) and its exit code becomes the launcher's.
 */
export async function launchWorkers(o: LaunchOptions, spawnOptions: SpawnOptions): Promise<number> {
  checkLaunchOptions(o);
  const masterPort = o.masterPort ?? (o.nnodes === 1 ? await freePort() : 29500);
  const worldSize = o.nproc * o.nnodes;
  const baseEnv = spawnOptions.env ?? process.env;
  const threads = baseEnv.HSCR_NUM_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / o.nproc)));
  const children: ChildProcess[] = [];
  for (let local = 0; local < o.nproc; local++) {
    const env = {
      ...baseEnv,
      RANK: String(o.nodeRank * o.nproc + local),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(o.nproc),
      GROUP_RANK: String(o.nodeRank),
      MASTER_ADDR: o.masterAddr,
      MASTER_PORT: String(masterPort),
      HSCR_NUM_THREADS: threads,
      [LAUNCHER_PID]: String(process.pid),
    };
    children.push(spawn(spawnOptions.execPath ?? process.execPath, [...(spawnOptions.execArgv ?? process.execArgv), ...spawnOptions.args], { env, stdio: 'inherit' }));
  }
  return superviseChildren(children);
}

function superviseChildren(children: ChildProcess[]): Promise<number> {
  return new Promise((resolve) => {
    let running = children.length;
    let failure: number | undefined;
    const forward = (signal: NodeJS.Signals) => () => children.forEach((c) => c.exitCode === null && c.kill(signal));
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    for (const child of children) {
      child.on('exit', (code, signal) => {
        running--;
        const failed = code !== 0;
        if (failed && failure === undefined) {
          failure = code ?? 128 + (signal ? os.constants.signals[signal] : 0);
          for (const other of children) if (other !== child && other.exitCode === null) other.kill('SIGTERM');
        }
        if (running === 0) {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve(failure ?? 0);
        }
      });
    }
  });
}

/**
 * A rank started by launchWorkers exits when its launcher is gone (kill -9 of the launcher would otherwise
 * leave ranks waiting on each other until the c10d timeout).
 */
export function watchLauncher(env: NodeJS.ProcessEnv = process.env, intervalMs = 1000): void {
  const pid = Number(env[LAUNCHER_PID]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch {
      process.exit(1);
    }
  }, intervalMs);
  timer.unref();
}

/** Joins the process group when there is more than one rank. */
export async function initDistributed(env: DistEnv | null, backend: 'gloo' | 'nccl', timeoutMs = 300_000): Promise<DistContext> {
  if (env === null || env.worldSize === 1) return env ? { rank: env.rank, worldSize: 1, localRank: env.localRank } : SINGLE_PROCESS;
  watchLauncher();
  const group = await trainAddon().ProcessGroup.create({
    rank: env.rank,
    worldSize: env.worldSize,
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    backend,
    timeoutMs,
  });
  return { rank: env.rank, worldSize: env.worldSize, localRank: env.localRank, group };
}
