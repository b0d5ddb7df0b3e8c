/**
 * The pool health node annotation `hostnic.network.kubesphere.io/pool` (JSON: vxnet, free, inuse,
 * total, ready, reason, lastError, restartNeeded), written from the sync loop only when it changed.
 */
import { errorMessage } from "../../errors.ts";
import { NODE_ANNOTATION_POOL } from "../../k8s/annotations.ts";
import type { Kube } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import type { StatusReply } from "../../rpc/api.ts";

/** The node's pool health as published in `hostnic.network.kubesphere.io/pool`. */
export interface PoolHealth {
  vxnet?: string;
  free: number;
  inuse: number;
  total: number;
  ready: boolean;
  /** Why not ready. */
  reason?: string;
  /** The pool's last cloud error (cleared by the next successful batch). */
  lastError?: string;
  /** Set when hostnic-cfg-cm changed after start: what to run for it to take effect. */
  restartNeeded?: string;
}

/** What `sync` reads of the daemon (a `Backend` has it; tests pass plain objects). */
export interface HealthSource {
  poolView(): {
    vxnet?: string;
    free: number;
    inuse: number;
    total: number;
    lastError?: string;
  };
  status(): StatusReply;
}

const TEXT_MAX = 300;

export function poolHealth(src: HealthSource, restartNeeded?: string): PoolHealth {
  const c = src.poolView();
  const st = src.status();
  const h: PoolHealth = { free: c.free, inuse: c.inuse, total: c.total, ready: st.ready };
  if (c.vxnet) h.vxnet = c.vxnet;
  if (!st.ready && st.reason) h.reason = st.reason.slice(0, TEXT_MAX);
  if (c.lastError) h.lastError = c.lastError.slice(0, TEXT_MAX);
  if (restartNeeded) h.restartNeeded = restartNeeded.slice(0, TEXT_MAX);
  return h;
}

/** The annotation value: JSON with a fixed key order, so equal health gives equal text. */
export function healthAnnotation(h: PoolHealth): string {
  const ordered: Record<string, unknown> = {};
  for (
    const k of [
      "vxnet",
      "free",
      "inuse",
      "total",
      "ready",
      "reason",
      "lastError",
      "restartNeeded",
    ] as const
  ) {
    if (h[k] !== undefined) ordered[k] = h[k];
  }
  return JSON.stringify(ordered);
}

/** Writes the annotation when its text changed; a failure is logged once and retried next time. */
export class HealthPublisher {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #nodeName: string;
  #published: string | undefined;
  #failing = false;

  /** `published`: the annotation's value when the daemon started (not rewritten if equal). */
  constructor(o: { kube: Kube; logger: Logger; nodeName: string; published: string | undefined }) {
    this.#kube = o.kube;
    this.#log = o.logger;
    this.#nodeName = o.nodeName;
    this.#published = o.published;
  }

  async publish(h: PoolHealth): Promise<void> {
    const value = healthAnnotation(h);
    if (value === this.#published) return;
    try {
      await this.#kube.annotateNode(this.#nodeName, { [NODE_ANNOTATION_POOL]: value });
      this.#published = value;
      if (this.#failing) this.#log.info("pool health annotation published again");
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) {
        this.#log.warn("could not publish the pool health annotation; retrying every sync", {
          node: this.#nodeName,
          err: errorMessage(err),
        });
      }
      this.#failing = true;
    }
  }
}
