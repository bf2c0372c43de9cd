/**
 * The nat rules of transparent interception, as pure functions of the options and of the table's current
 * state (the text `iptables-save -t nat` prints). Nothing here runs a process: lib/intercept/iptables.ts
 * feeds the returned text to `iptables-restore --noflush`, which applies it in one transaction.
 *
 * Layout (the same idea as Istio's ISTIO_INBOUND / ISTIO_IN_REDIRECT):
 *
 *   PREROUTING -p tcp -> BRIDGE_INBOUND      traffic arriving from outside the pod
 *   OUTPUT     -p tcp -> BRIDGE_OUTPUT       traffic made inside the pod
 *
 *   BRIDGE_INBOUND:     loopback -> RETURN; each excluded port -> RETURN; each intercepted port (or all TCP
 *                       with `--ports '*'`) -> BRIDGE_IN_REDIRECT
 *   BRIDGE_IN_REDIRECT: REDIRECT --to-ports <the sidecar's listen port>
 *   BRIDGE_OUTPUT:      the sidecar's own connections (owner uid) -> RETURN, so its upstream connection to the
 *                       service is never sent back to itself; connections to 127.0.0.0/8 -> RETURN (loopback
 *                       is never intercepted); connections to the pod's own address (out through lo) are
 *                       inbound traffic too -> BRIDGE_INBOUND
 *
 * Only our chains and the two jumps into them are ever written or removed: everything else in the table
 * (a CNI's rules, Istio's) is left alone.
 */

export const INBOUND_CHAIN = 'BRIDGE_INBOUND';
export const REDIRECT_CHAIN = 'BRIDGE_IN_REDIRECT';
export const OUTPUT_CHAIN = 'BRIDGE_OUTPUT';
/** Every chain we own, in the order they are declared. */
export const OWN_CHAINS: readonly string[] = [INBOUND_CHAIN, REDIRECT_CHAIN, OUTPUT_CHAIN];

/** The jumps from the built-in chains into ours, exactly as `iptables-save` prints them. */
export const JUMPS: readonly { readonly chain: string; readonly spec: string }[] = [
  { chain: 'PREROUTING', spec: `-p tcp -j ${INBOUND_CHAIN}` },
  { chain: 'OUTPUT', spec: `-p tcp -j ${OUTPUT_CHAIN}` },
];

/** The uid the image runs as (Dockerfile `USER 1337`): the default `--proxy-uid`. */
export const DEFAULT_PROXY_UID = 1337;
export const DEFAULT_TO_PORT = 15006;

export interface InterceptOptions {
  /** Destination ports whose inbound TCP is redirected, or 'all' for every port (`--ports '*'`). */
  readonly ports: readonly number[] | 'all';
  /** Where the sidecar listens (server.listen's port). */
  readonly toPort: number;
  /** The uid the sidecar runs as; its own connections are never redirected. */
  readonly proxyUid: number;
  /** Ports never redirected even when `ports` covers them (the admin port, probes). */
  readonly excludePorts: readonly number[];
}

/** One `-A CHAIN spec` line of the current table. */
export interface NatRule {
  readonly chain: string;
  readonly spec: string;
}

/** What we need to know about the nat table as it is now. */
export interface NatState {
  readonly chains: ReadonlySet<string>;
  readonly rules: readonly NatRule[];
}

export const EMPTY_NAT_STATE: NatState = { chains: new Set(), rules: [] };

/** Reads the `*nat` section of `iptables-save` output (other tables, comments and counters are ignored). */
export function parseNatState(saved: string): NatState {
  const chains = new Set<string>();
  const rules: NatRule[] = [];
  let inNat = false;
  for (const raw of saved.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) { inNat = line === '*nat'; continue; }
    if (!inNat) continue;
    if (line === 'COMMIT') { inNat = false; continue; }
    if (line.startsWith(':')) {
      chains.add(line.slice(1).split(/\s+/)[0]);
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      if (space > 0) rules.push({ chain: rest.slice(0, space), spec: rest.slice(space + 1) });
    }
  }
  return { chains, rules };
}

/** Rules in the built-in chains that jump into one of ours (whatever their exact form). */
function jumpsIntoOwnChains(state: NatState): NatRule[] {
  return state.rules.filter((r) => !OWN_CHAINS.includes(r.chain) && OWN_CHAINS.some((c) => targets(r.spec, c)));
}

function targets(spec: string, chain: string): boolean {
  const words = spec.split(/\s+/);
  const j = words.indexOf('-j');
  return j >= 0 && words[j + 1] === chain;
}

/** The body of our own chains for these options (no jumps). */
export function ownChainRules(opts: InterceptOptions): string[] {
  const lines: string[] = [];
  lines.push(`-A ${INBOUND_CHAIN} -i lo -j RETURN`);
  for (const port of opts.excludePorts) lines.push(`-A ${INBOUND_CHAIN} -p tcp -m tcp --dport ${port} -j RETURN`);
  if (opts.ports === 'all') {
    lines.push(`-A ${INBOUND_CHAIN} -p tcp -j ${REDIRECT_CHAIN}`);
  } else {
    for (const port of opts.ports) lines.push(`-A ${INBOUND_CHAIN} -p tcp -m tcp --dport ${port} -j ${REDIRECT_CHAIN}`);
  }
  lines.push(`-A ${REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports ${opts.toPort}`);
  lines.push(`-A ${OUTPUT_CHAIN} -m owner --uid-owner ${opts.proxyUid} -j RETURN`);
  lines.push(`-A ${OUTPUT_CHAIN} -d 127.0.0.0/8 -j RETURN`);
  lines.push(`-A ${OUTPUT_CHAIN} -o lo -j ${INBOUND_CHAIN}`);
  return lines;
}

/**
 * The `iptables-restore --noflush` input that leaves exactly one set of our rules, whatever is there now:
 * our chains are (re)declared and flushed, then refilled; a jump that is already there is kept, one that
 * is missing is added, and any other jump into our chains (an older form) is removed.
 */
export function installScript(opts: InterceptOptions, state: NatState): string {
  const lines = ['*nat'];
  for (const chain of OWN_CHAINS) lines.push(`:${chain} - [0:0]`);
  // A declaration flushes an existing chain under --noflush with the nft backend; say it for legacy too.
  for (const chain of OWN_CHAINS) lines.push(`-F ${chain}`);
  lines.push(...ownChainRules(opts));
  const wanted = new Set(JUMPS.map((j) => `${j.chain} ${j.spec}`));
  const present = jumpsIntoOwnChains(state);
  const seen = new Set<string>();
  for (const r of present) {
    const key = `${r.chain} ${r.spec}`;
    // Keep the first copy of each wanted jump; remove duplicates and stale forms.
    if (wanted.has(key) && !seen.has(key)) { seen.add(key); continue; }
    lines.push(`-D ${r.chain} ${r.spec}`);
  }
  for (const j of JUMPS) if (!seen.has(`${j.chain} ${j.spec}`)) lines.push(`-A ${j.chain} ${j.spec}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/**
 * The input that removes what `installScript` added and nothing else: every jump into our chains, then our
 * chains (flushed first, since they refer to one another). Null when there is nothing of ours to remove.
 */
export function uninstallScript(state: NatState): string | null {
  const jumps = jumpsIntoOwnChains(state);
  const chains = OWN_CHAINS.filter((c) => state.chains.has(c));
  if (jumps.length === 0 && chains.length === 0) return null;
  const lines = ['*nat'];
  for (const r of jumps) lines.push(`-D ${r.chain} ${r.spec}`);
  for (const c of chains) lines.push(`-F ${c}`);
  for (const c of chains) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/** Parses a port list such as "9101,9102" (or "*" when `allowAll`). Throws a one-line message. */
export function parsePortList(flag: string, value: string, allowAll: boolean): number[] | 'all' {
  const v = value.trim();
  if (allowAll && v === '*') return 'all';
  if (v === '') return [];
  const ports: number[] = [];
  for (const part of v.split(',')) {
    const port = parsePort(flag, part.trim());
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

export function parsePort(flag: string, value: string): number {
  if (!/^\d{1,5}$/.test(value)) throw new Error(`${flag}: "${value}" is not a port number`);
  const port = Number(value);
  if (port < 1 || port > 65535) throw new Error(`${flag}: ${port} is not between 1 and 65535`);
  return port;
}

export function parseUid(flag: string, value: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > 4294967294) throw new Error(`${flag}: "${value}" is not a numeric uid`);
  return Number(value);
}
