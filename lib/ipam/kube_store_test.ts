/**
 * The IPAM store contract (store_contract.ts) against a real kube-apiserver with hostnic's CRDs
 * applied from deploy/crds with kubectl: the same cases the memory store passes, so the allocator's
 * compare-and-swap rests on the API server's semantics, not on a server we wrote. Plus what only a
 * real server shows: labels survive a PUT, 422s become InvalidObjectError, errors name the object.
 */
import assert from "node:assert/strict";
import { Cluster } from "../testbed/cluster.ts";
import { ControlPlane } from "../testbed/kube.ts";
import { ConflictError, InvalidObjectError } from "./errors.ts";
import { KubeIpamStores } from "./kube_store.ts";
import { ipamStoreContractCases, sampleBlock, touchBlock } from "./store_contract.ts";
import { POOL_NAME_LABEL } from "./types.ts";

async function empty(s: KubeIpamStores): Promise<void> {
  for (const store of [s.blocks, s.handles, s.pools] as const) {
    for (const o of await store.list()) await store.delete(o.name);
  }
}

Deno.test({
  name: "KubeCasStore passes the IPAM store contract on a real kube-apiserver",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({ master: true, nodes: 0, startDaemons: false });
    await using cp = await ControlPlane.start(c);
    await cp.applyCrds();
    await using stores = new KubeIpamStores({ kubeconfig: cp.hostKubeconfig });

    for (const c of ipamStoreContractCases()) {
      await t.step(c.title, async () => {
        await empty(stores);
        await c.fn({
          blocks: stores.blocks,
          handles: stores.handles,
          [Symbol.asyncDispose]: () => Promise.resolve(),
        });
      });
    }

    await t.step("an update keeps labels and annotations others put on the object", async () => {
      await empty(stores);
      const { name, spec } = sampleBlock(0);
      await stores.blocks.create(name, spec);
      await cp.kubectlOk(["label", "ipamblock", name, "team=net"]);
      await cp.kubectlOk(["annotate", "ipamblock", name, "note=kept"]);
      // A fresh store has not seen this version: it reads the metadata before its PUT.
      await using fresh = new KubeIpamStores({ kubeconfig: cp.hostKubeconfig });
      for (const s of [stores, fresh]) {
        const cur = (await s.blocks.get(name))!;
        await s.blocks.update({ ...cur, spec: { ...cur.spec, affinity: "host:n1" } });
        const o = await cp.getJson<
          { metadata: { labels: Record<string, string> } } & {
            metadata: { annotations: Record<string, string> };
          }
        >(["ipamblock", name]);
        assert.equal(o.metadata.labels.team, "net");
        assert.equal(o.metadata.labels[POOL_NAME_LABEL], spec.pool);
        assert.equal(o.metadata.annotations.note, "kept");
      }
      // A version this store never saw, and that is stale, conflicts without a write.
      const cur = (await fresh.blocks.get(name))!;
      await stores.blocks.update({ ...cur, spec: touchBlock(cur.spec) });
      await assert.rejects(fresh.blocks.update(cur), ConflictError);
      assert.ok(stores.conflicts + fresh.conflicts > 0);
    });

    await t.step(
      "the API server's own refusal (422) is InvalidObjectError naming the object",
      async () => {
        await empty(stores);
        // The CRD schema refuses what zod does; send past zod to see the server's answer mapped.
        const raw = await cp.kubectl(["create", "-f", "-"], {
          stdin: JSON.stringify({
            apiVersion: "network.qingcloud.com/v1alpha1",
            kind: "IPAMHandle",
            metadata: { name: "h1" },
            spec: { handleID: "", block: {}, deleted: false },
          }),
        });
        assert.notEqual(raw.code, 0);
        const { name, spec } = sampleBlock(0);
        await assert.rejects(
          stores.blocks.create(name, { ...spec, cidr: "300.1.1.0/26" }),
          (e) => e instanceof InvalidObjectError && e.message.includes(`IPAMBlock "${name}"`),
        );
      },
    );

    await t.step("errors name the operation and object and never carry the token", async () => {
      // A ServiceAccount with no RBAC: every IPAM call is refused with 403.
      await cp.kubectlOk(["-n", "default", "create", "serviceaccount", "ipam-nobody"]);
      const sa = await cp.serviceAccountKubeconfig("default", "ipam-nobody", {
        server: `https://127.0.0.1:${cp.hostPort}`,
      });
      await using weak = new KubeIpamStores({ kubeconfig: sa });
      const err = await weak.blocks.get("4100-172-16-3-0-26").then(() => undefined, (e) => e);
      assert.ok(err instanceof Error);
      assert.match(err.message, /get IPAMBlock "4100-172-16-3-0-26"/);
      assert.match(err.message, /403/);
      const token = (await Deno.readTextFile(sa)).match(/token: (\S+)/)?.[1];
      assert.ok(token && !err.message.includes(token));
    });
  },
});
