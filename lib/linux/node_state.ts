/**
 * The node's state kept current across requests. Every node batch the daemon runs reads the
 * state back at its end, in the same `ip` process (`STATE_SCRIPT` appended, `ip -4 -json -d`),
 * so the next request plans from that reading instead of spawning `ip` to read the node first.
 *
 * A reading can go stale between batches: the cloud hot-plugs or unplugs NICs, the kernel drops a
 * pod's veth (and its /32 route) with the pod's namespace. A plan made from a stale reading fails
 * in its batch (a link that is not there, or one that already is) and is then made again from a
 * fresh read (lib/linux/pod.ts). Two rules keep what could go unnoticed small:
 * - a reading older than `maxAgeMs` is not used (an idle node reads afresh);
 * - after a failed batch has been reverted, `invalidate` drops the reading and refuses every
 *   reading of a batch that started before: such a reading may show objects of the failed batch
 *   that its revert removed since (a rule the next plan would then skip).
 */
import type { NsState } from "./ip.ts";

export class NodeState {
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #state: NsState | undefined;
  #at = 0;
  #ticket = 0;
  /** Readings of batches whose ticket is at most this are refused (see `invalidate`). */
  #floor = 0;

  constructor(opts: { maxAgeMs?: number; now?: () => number } = {}) {
    this.#maxAgeMs = opts.maxAgeMs ?? 5000;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** The last reading, unless it is older than `maxAgeMs` or was invalidated. */
  current(): NsState | undefined {
    if (this.#state && this.#now() - this.#at > this.#maxAgeMs) this.#state = undefined;
    return this.#state;
  }

  /** A ticket for a batch (or read) about to start; pass it to `record` with its reading. */
  begin(): number {
    return ++this.#ticket;
  }

  /** Keeps the reading of the batch that got `ticket`, unless an invalidation came after it began. */
  record(ticket: number, state: NsState): void {
    if (ticket <= this.#floor) return;
    this.#state = state;
    this.#at = this.#now();
  }

  /** Drops the reading; readings of batches that began before now are refused. */
  invalidate(): void {
    this.#state = undefined;
    this.#floor = this.#ticket;
  }
}
