/**
 * A small Dockerfile reader for the tests that replay the image build outside Docker: joins continuation
 * lines, drops comments, and splits the file into stages of instructions.
 */
import { readFileSync } from 'node:fs';

export interface Instruction {
  /** Upper-case instruction name (FROM, RUN, COPY, ...). */
  readonly name: string;
  /** Everything after the name, continuation lines joined with a space. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly base: string;
  readonly alias: string | null;
  readonly instructions: readonly Instruction[];
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let current = '';
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const trimmed = raw.trim();
    // Comment lines are removed even inside a continued instruction (as Docker does).
    if (trimmed.startsWith('#') || (trimmed === '' && current === '')) continue;
    if (current === '') startLine = i + 1;
    if (trimmed.endsWith('\\')) {
      current += trimmed.slice(0, -1).trim() + ' ';
      continue;
    }
    current += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(current.trim());
    if (m) out.push({ name: m[1].toUpperCase(), args: m[2].trim(), line: startLine });
    current = '';
  }
  return out;
}

export function stages(instructions: readonly Instruction[]): Stage[] {
  const result: { base: string; alias: string | null; instructions: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.name === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot read FROM ${ins.args}`);
      result.push({ base: m[1], alias: m[2] ?? null, instructions: [] });
    } else if (result.length > 0) {
      result[result.length - 1].instructions.push(ins);
    } else if (ins.name !== 'ARG') {
      throw new Error(`line ${ins.line}: ${ins.name} before the first FROM`);
    }
  }
  return result;
}

/** The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD; throws on the shell form. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return parsed as string[];
}

/** `KEY=value KEY2=value2` (the only ENV form this Dockerfile uses). */
export function envPairs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]] = m[2].replace(/^"|"$/g, '');
  return env;
}

/** COPY [--from=stage] src... dest */
export function copyArgs(args: string): { from: string | null; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | null = null;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop();
  if (!dest || words.length === 0) throw new Error(`cannot read COPY ${args}`);
  return { from, sources: words, dest };
}

export function healthcheck(args: string): { options: Record<string, string>; command: string[] } {
  const m = /^((?:--\S+=\S+\s+)*)CMD\s+(.*)$/s.exec(args);
  if (!m) throw new Error(`cannot read HEALTHCHECK ${args}`);
  const options: Record<string, string> = {};
  for (const o of m[1].trim().split(/\s+/).filter(Boolean)) {
    const [k, v] = o.slice(2).split('=');
    options[k] = v;
  }
  return { options, command: execForm(m[2]) };
}

export function readDockerfile(path: string): Stage[] {
  return stages(parseDockerfile(readFileSync(path, 'utf8')));
}
