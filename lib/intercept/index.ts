/**
 * Transparent interception: install or remove the nat rules that send a pod's inbound TCP to the sidecar.
 * rules.ts says what the rules are; iptables.ts applies them; this module puts the two together.
 */
import { installScript, parseNatState, uninstallScript, EMPTY_NAT_STATE, type InterceptOptions, type NatState } from './rules';
import { restoreNoflush, saveNat, InterceptError, type IptablesBinaries } from './iptables';

export * from './rules';
export { InterceptError, NFT_BINARIES, LEGACY_BINARIES, type IptablesBinaries } from './iptables';

export type InterceptAction = { kind: 'install'; options: InterceptOptions } | { kind: 'uninstall' };

export interface InterceptPlan {
  /** The iptables-restore input, or null when there is nothing to do (uninstall with nothing installed). */
  readonly input: string | null;
  /** Set when the current table could not be read (dry run only): the plan assumes an empty table. */
  readonly stateUnreadable: string | null;
}

function scriptFor(action: InterceptAction, state: NatState): string | null {
  return action.kind === 'install' ? installScript(action.options, state) : uninstallScript(state);
}

/** Works out the restore input against the table as it is now. */
export async function plan(action: InterceptAction, bin: IptablesBinaries, tolerateUnreadable: boolean): Promise<InterceptPlan> {
  try {
    const state = parseNatState(await saveNat(bin));
    return { input: scriptFor(action, state), stateUnreadable: null };
  } catch (e) {
    if (!tolerateUnreadable || !(e instanceof InterceptError)) throw e;
    return { input: scriptFor(action, EMPTY_NAT_STATE), stateUnreadable: e.message };
  }
}

/** Applies the action; returns the input that was applied (null: nothing to do). */
export async function apply(action: InterceptAction, bin: IptablesBinaries): Promise<string | null> {
  const p = await plan(action, bin, false);
  if (p.input !== null) await restoreNoflush(bin, p.input);
  return p.input;
}
