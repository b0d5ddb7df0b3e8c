/**
 * The Kubernetes client's memory per request: `HttpKube.getPod` N times (4 at a time) against a
 * local HTTPS responder on 127.0.0.1 with its own CA (a bearer token and the CA in the kubeconfig,
 * as the daemon's in-cluster account has), printing one JSON line every K requests: the process's
 * RSS split (bench/rss_mem.ts), V8's heap, and how many TCP connections the responder accepted
 * (a client that reuses its connections opens a handful; one that does not opens one per request).
 *
 *   deno run -A --v8-flags=--expose-gc bench/rss_kube.ts [N] [K]   (default 6000, every 1000;
 *     with --expose-gc each line is taken after a full garbage collection)
 *
 * A diagnostic for issue 20's soak RSS slope, not a test: the responder answers every request with
 * the same Pod, which is all `getPod` needs.
 */
import { loadKube } from "../lib/k8s/client.ts";
import { procMemory } from "./rss_mem.ts";

const n = Number(Deno.args[0] ?? 6000);
const every = Number(Deno.args[1] ?? 1000);
if (!(n > 0) || !(every > 0)) throw new Error("Usage: rss_kube.ts [N] [K]");

const dir = await Deno.makeTempDir({ prefix: "hostnic-rsskube-" });
try {
  const ssl = async (args: string[]) => {
    const r = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
      .output();
    if (!r.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(r.stderr)}`);
  };
  // An EC key and its request: `req -x509` makes the CA, plain `req` the server's CSR.
  const key = (name: string, cn: string, x509: boolean) =>
    ssl([
      "req",
      ...(x509 ? ["-x509", "-days", "1", "-out", `${name}.crt`] : ["-out", `${name}.csr`]),
      ...["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
      ...["-keyout", `${name}.key`, "-subj", `/CN=${cn}`],
    ]);
  await key("ca", "rss-kube-ca", true);
  await key("srv", "127.0.0.1", false);
  await Deno.writeTextFile(`${dir}/ext`, "subjectAltName=IP:127.0.0.1\n");
  await ssl([
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.crt",
    "-days",
    "1",
    "-extfile",
    "ext",
  ]);
  const pod = JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      namespace: "default",
      name: "p",
      uid: "u-1",
      resourceVersion: "1",
      annotations: {},
    },
    spec: { nodeName: "node-1", containers: [{ name: "c", image: "pause" }] },
    status: { phase: "Running", podIP: "10.0.0.2" },
  });
  let connections = 0;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(`${dir}/srv.crt`),
    key: await Deno.readTextFile(`${dir}/srv.key`),
    onListen: () => {},
  }, (_req, info) => {
    const addr = info.remoteAddr as Deno.NetAddr;
    if (!seen.has(addr.port)) {
      seen.add(addr.port);
      connections++;
    }
    return new Response(pod, { headers: { "content-type": "application/json" } });
  });
  const seen = new Set<number>();
  const ca = btoa(await Deno.readTextFile(`${dir}/ca.crt`));
  await Deno.writeTextFile(
    `${dir}/kubeconfig`,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "c",
        cluster: {
          server: `https://127.0.0.1:${server.addr.port}`,
          "certificate-authority-data": ca,
        },
      }],
      users: [{ name: "u", user: { token: "rss-kube-token" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  const kube = loadKube({
    kubeconfig: `${dir}/kubeconfig`,
    rateLimit: { qps: 100_000, burst: 100_000 },
  });
  const report = async (done: number) => {
    // With --v8-flags=--expose-gc: the heap after a full collection, i.e. what is still held.
    (globalThis as { gc?: () => void }).gc?.();
    const mem = await procMemory("self");
    const m = Deno.memoryUsage();
    console.log(JSON.stringify({
      requests: done,
      connections,
      rssMiB: +(mem.rss / 2 ** 20).toFixed(1),
      brkMiB: +(mem.brk / 2 ** 20).toFixed(1),
      heapUsedMiB: +(m.heapUsed / 2 ** 20).toFixed(1),
      heapTotalMiB: +(m.heapTotal / 2 ** 20).toFixed(1),
      externalMiB: +(m.external / 2 ** 20).toFixed(1),
    }));
  };
  let started = 0;
  let done = 0;
  await report(0);
  await Promise.all([0, 1, 2, 3].map(async () => {
    while (started < n) {
      started++;
      const p = await kube.getPod("default", "p");
      if (p?.uid !== "u-1") throw new Error("the responder's pod did not come back");
      if (++done % every === 0) await report(done);
    }
  }));
  await kube.close();
  await server.shutdown();
} finally {
  await Deno.remove(dir, { recursive: true });
}
