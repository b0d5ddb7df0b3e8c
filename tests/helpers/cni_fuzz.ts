/**
 * Generator of malformed CNI invocations for the plugin fuzz test (tests/e2e/fuzz_test.ts).
 *
 * Every case starts from a *valid* invocation of one verb (a base that would succeed) and applies
 * exactly one mutation that makes it invalid, plus harmless noise (unknown env variables, unknown
 * config keys, bulk padding, key order, whitespace, and for STATUS/GC garbage in the attachment
 * variables those verbs ignore). Each mutation states the CNI error code(s) the plugin must
 * answer with, so a case that unexpectedly succeeds, or fails with another code, is a finding.
 *
 * Outcomes that are legitimately successful are never generated as errors: DEL of an unknown
 * container, DEL without or with a missing netns, GC/STATUS with variables they do not use, a
 * repeated ADD. VERSION answers whatever stdin holds (`versionCases`, classified as successes).
 *
 * Pure and seeded: the same seed and context give the same cases.
 */
import { MAX_CONFIG_BYTES } from "../../lib/cni/config.ts";

export type Verb = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC";
const VERBS: readonly Verb[] = ["ADD", "DEL", "CHECK", "STATUS", "GC"];

/** What the bases need from the running cluster. */
export interface FuzzContext {
  socketPath: string;
  journalDir: string;
  /** A live pod: a CHECK base checks it (and succeeds). */
  pod: { containerId: string; netns: string; ifName: string; args: string; result: unknown };
  /** Every live attachment: a GC base lists them all, so even a valid GC releases nothing. */
  attachments: { containerID: string; ifname: string }[];
  /** An empty namespace ADD bases point at (an ADD that slips through lands there). */
  addNetns: string;
  /** An existing regular file and an existing directory: paths that are not namespaces. */
  regularFile: string;
  directory: string;
}

export interface FuzzCase {
  id: number;
  verb: Verb | "VERSION";
  /** Mutation name, e.g. `config.mtu`. */
  kind: string;
  /** The whole environment of the plugin process (nothing else is inherited). */
  env: Record<string, string>;
  /** Bytes on stdin; `null` for no stdin at all (/dev/null). */
  stdin: Uint8Array | null;
  /** CNI error codes the plugin may answer with; empty: it must succeed (VERSION only). */
  codes: number[];
}

// ---- seeded PRNG (mulberry32) ----

export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }
  word(min = 1, max = 12): string {
    const abc = "abcdefghijklmnopqrstuvwxyz0123456789";
    return Array.from({ length: this.int(min, max) }, () => this.pick([...abc])).join("");
  }
}

// ---- bases ----

const CHECK_VERSIONS = ["0.4.0", "1.0.0", "1.1.0"];
const ALL_VERSIONS = ["0.3.0", "0.3.1", ...CHECK_VERSIONS];

/** One invocation under construction. `raw` replaces the JSON of `conf` when set. */
interface Draft {
  verb: Verb;
  env: Record<string, string>;
  conf: Record<string, unknown>;
  raw?: Uint8Array | null;
}

function baseDraft(verb: Verb, id: number, ctx: FuzzContext, r: Rng): Draft {
  const conf: Record<string, unknown> = {
    cniVersion: verb === "CHECK"
      ? r.pick(CHECK_VERSIONS)
      : verb === "STATUS" || verb === "GC"
      ? "1.1.0"
      : r.pick(ALL_VERSIONS),
    name: "hostnic",
    type: "hostnic",
    socketPath: ctx.socketPath,
    journalDir: ctx.journalDir,
  };
  const env: Record<string, string> = { CNI_COMMAND: verb, CNI_PATH: "/opt/cni/bin" };
  const args = `K8S_POD_NAMESPACE=default;K8S_POD_NAME=fz${id}`;
  switch (verb) {
    case "ADD":
      Object.assign(env, {
        CNI_CONTAINERID: `fz-add-${id}`,
        CNI_NETNS: ctx.addNetns,
        CNI_IFNAME: "eth0",
        CNI_ARGS: args,
      });
      break;
    case "DEL":
      // An unknown container: DEL succeeds (nothing to undo), with or without its netns.
      Object.assign(env, {
        CNI_CONTAINERID: `fz-del-${id}`,
        CNI_IFNAME: "eth0",
        CNI_ARGS: args,
      });
      if (r.chance(0.5)) env.CNI_NETNS = r.pick([ctx.addNetns, `/run/netns/fz-gone-${id}`]);
      break;
    case "CHECK":
      Object.assign(env, {
        CNI_CONTAINERID: ctx.pod.containerId,
        CNI_NETNS: ctx.pod.netns,
        CNI_IFNAME: ctx.pod.ifName,
        CNI_ARGS: ctx.pod.args,
      });
      conf.prevResult = structuredClone(ctx.pod.result);
      break;
    case "STATUS":
      if (r.chance(0.5)) delete env.CNI_PATH;
      break;
    case "GC":
      conf["cni.dev/valid-attachments"] = structuredClone(ctx.attachments);
      break;
  }
  if ((verb === "STATUS" || verb === "GC") && r.chance(0.3)) {
    // Older cniVersion, but a cniVersions list that names 1.1.0: still valid for STATUS and GC.
    conf.cniVersion = r.pick(["0.4.0", "1.0.0"]);
    conf.cniVersions = ["1.0.0", "1.1.0"];
  }
  return { verb, env, conf };
}

// ---- mutations ----

interface Mutation {
  kind: string;
  verbs: readonly Verb[];
  /** Applies the mutation; returns the codes the plugin may answer with. */
  apply(d: Draft, r: Rng, ctx: FuzzContext, id: number): number[];
}

const ATTACH: readonly Verb[] = ["ADD", "DEL", "CHECK"];
const enc = new TextEncoder();

function json(d: Draft): string {
  return JSON.stringify(d.conf);
}

/** Sets `conf[key]` to one of `values` (a function value is called). */
function field(kind: string, key: string, values: unknown[], verbs = VERBS): Mutation {
  return {
    kind,
    verbs,
    apply(d, r) {
      const v = r.pick(values);
      if (v === DELETE) delete d.conf[key];
      else d.conf[key] = typeof v === "function" ? v() : v;
      return [7];
    },
  };
}
const DELETE = Symbol("delete");

/** A prevResult that is valid except for what `bad` changes. */
function prevResultWith(ctx: FuzzContext, bad: (p: Record<string, unknown>) => void): unknown {
  const p = structuredClone(ctx.pod.result) as Record<string, unknown>;
  bad(p);
  return p;
}

function prev(kind: string, variants: ((p: Record<string, unknown>) => void)[]): Mutation {
  return {
    kind,
    verbs: ATTACH,
    apply(d, r, ctx) {
      d.conf.prevResult = prevResultWith(ctx, r.pick(variants));
      return [7];
    },
  };
}

function envVar(kind: string, name: string, values: (string | typeof DELETE)[], o: {
  verbs: readonly Verb[];
  codes?: number[];
}): Mutation {
  return {
    kind,
    verbs: o.verbs,
    apply(d, r) {
      const v = r.pick(values);
      if (v === DELETE) delete d.env[name];
      else d.env[name] = v;
      return o.codes ?? [4];
    },
  };
}

/** Appends `extra` to the base's CNI_ARGS. */
function cniArgs(kind: string, extras: string[], verbs: readonly Verb[]): Mutation {
  return {
    kind,
    verbs,
    apply(d, r) {
      d.env.CNI_ARGS = `${d.env.CNI_ARGS};${r.pick(extras)}`;
      return [4];
    },
  };
}

const BAD_IPV4 = ["300.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.-4", "a.b.c.d", "", " "];
const BAD_CIDR = ["10.0.0.1", "10.0.0.1/33", "300.0.0.1/24", "10.0.0.1/", "/24", "fe80::1/129"];

/** The plugin reads at most this much stdin (code 7 past it). */
const STDIN_CAP = MAX_CONFIG_BYTES;

export const MUTATIONS: readonly Mutation[] = [
  // -- stdin that is not a JSON object: 6 --
  {
    kind: "json.empty",
    verbs: VERBS,
    apply(d, r) {
      d.raw = r.pick([null, enc.encode(""), enc.encode(" \n\t "), enc.encode("\n")]);
      return [6];
    },
  },
  {
    kind: "json.truncated",
    verbs: VERBS,
    apply(d, r) {
      const s = json(d);
      d.raw = enc.encode(s.slice(0, r.int(1, s.length - 1)));
      return [6];
    },
  },
  {
    kind: "json.garbage",
    verbs: VERBS,
    apply(d, r) {
      d.raw = enc.encode(r.pick([
        "cniVersion: 1.0.0\nname: hostnic\ntype: hostnic\n",
        `'${json(d)}'`,
        `{cniVersion: "1.0.0", name: "hostnic", type: "hostnic"}`,
        `{"cniVersion": "1.0.0", "name": "hostnic", "type": "hostnic",}`,
        "<config/>",
        `x${r.word(0, 40)}`,
        "NaN",
        '{"a": undefined}',
      ]));
      return [6];
    },
  },
  {
    kind: "json.nonObject",
    verbs: VERBS,
    apply(d, r) {
      d.raw = enc.encode(r.pick([
        "[]",
        `[${json(d)}]`,
        `"${r.word()}"`,
        "42",
        "-0",
        "1e400",
        "null",
        "true",
        "false",
        JSON.stringify(json(d)),
      ]));
      return [6];
    },
  },
  {
    kind: "json.trailing",
    verbs: VERBS,
    apply(d, r) {
      const s = json(d);
      d.raw = enc.encode(r.pick([`${s}${s}`, `${s} x`, `${s}}`, `${s},`, `// hostnic\n${s}`]));
      return [6];
    },
  },
  {
    kind: "json.encoding",
    verbs: VERBS,
    apply(d, r) {
      const s = json(d);
      const at = s.indexOf('"name":"') + 8;
      const variant = r.int(0, 3);
      if (variant === 0) {
        // A byte that is never valid UTF-8 inside a string value.
        const b = enc.encode(s);
        d.raw = new Uint8Array([...b.subarray(0, at), 0xff, ...b.subarray(at)]);
      } else if (variant === 1) {
        // A truncated multi-byte sequence.
        const b = enc.encode(s);
        d.raw = new Uint8Array([...b.subarray(0, at), 0xe2, 0x82, ...b.subarray(at)]);
      } else if (variant === 2) {
        // UTF-16: valid UTF-8 bytes, but NULs between the characters. (A UTF-8 BOM is no case:
        // RFC 8259 lets a parser ignore it, and the plugin does.)
        const b = new Uint8Array(s.length * 2);
        for (let i = 0; i < s.length; i++) b[i * 2] = s.charCodeAt(i);
        d.raw = b;
      } else {
        // An unescaped control character inside a string.
        d.raw = enc.encode(`${s.slice(0, at)}\u0001${s.slice(at)}`);
      }
      return [6];
    },
  },
  {
    kind: "json.deep",
    verbs: VERBS,
    apply(d, r) {
      const n = r.int(10_000, 200_000);
      // Balanced: parses to a non-object (or exhausts the parser); either way not a config.
      d.raw = enc.encode(
        r.chance(0.5) ? "[".repeat(n) + "]".repeat(n) : `{"a":${"[".repeat(n)}`,
      );
      return [6];
    },
  },

  // -- stdin too large: 7 (the plugin stops reading at its cap) --
  {
    kind: "huge.stdin",
    verbs: VERBS,
    apply(d, r) {
      const size = r.int(STDIN_CAP + 1, 3 * STDIN_CAP);
      if (r.chance(0.5)) {
        d.conf.fuzzPad = "x".repeat(size);
        d.raw = enc.encode(json(d));
      } else {
        const b = new Uint8Array(size);
        for (let i = 0; i < b.length; i += 4096) b[i] = r.int(0, 255);
        d.raw = b;
      }
      return [7];
    },
  },

  // -- cniVersion --
  {
    kind: "version.missing",
    verbs: VERBS,
    apply(d) {
      delete d.conf.cniVersion;
      delete d.conf.cniVersions;
      return [1];
    },
  },
  {
    kind: "version.unknown",
    verbs: VERBS,
    apply(d, r) {
      d.conf.cniVersion = r.pick([
        "0.1.0",
        "0.2.0",
        "0.4.1",
        "1.0.1",
        "1.2.0",
        "2.0.0",
        "10.0.0",
        "1.0",
        "1",
        "v1.0.0",
        "1.0.0-rc1",
        " 1.0.0",
        "1.0.0\n",
        "01.0.0",
        "",
        "latest",
        "9".repeat(400),
      ]);
      delete d.conf.cniVersions;
      return [1];
    },
  },
  {
    kind: "version.type",
    verbs: VERBS,
    apply(d, r) {
      d.conf.cniVersion = r.pick([1, 1.1, null, true, {}, ["1.0.0"], 0]);
      return [7];
    },
  },
  {
    kind: "version.tooOldForVerb",
    verbs: ["CHECK", "STATUS", "GC"],
    apply(d, r) {
      d.conf.cniVersion = d.verb === "CHECK"
        ? r.pick(["0.3.0", "0.3.1"])
        : r.pick(["0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
      if (d.verb !== "CHECK" && r.chance(0.5)) {
        d.conf.cniVersions = r.pick([["0.4.0", "1.0.0"], ["1.0.0", "2.0.0"], []]);
      } else {
        delete d.conf.cniVersions;
      }
      return [1];
    },
  },
  {
    kind: "version.listType",
    verbs: VERBS,
    apply(d, r) {
      // cniVersion itself is fine, so the list's type is what fails.
      if (d.verb !== "ADD" && d.verb !== "DEL") d.conf.cniVersion = "1.1.0";
      d.conf.cniVersions = r.pick(["1.1.0", 1, [1], ["1.1.0", null], { a: 1 }, true]);
      return [7];
    },
  },
  {
    kind: "version.prevResult",
    verbs: ATTACH,
    apply(d, r, ctx) {
      d.conf.prevResult = prevResultWith(ctx, (p) => {
        p.cniVersion = r.pick(["0.2.0", "9.9.9", "1.2.0", "", "1.0"]);
      });
      return [1];
    },
  },

  // -- protocol keys: 7 --
  field("config.name", "name", [
    DELETE,
    "",
    42,
    null,
    "bad name",
    "-hostnic",
    "host/nic",
    "hóstnic",
    ["hostnic"],
  ]),
  field("config.type", "type", [DELETE, "", 1, "../hostnic", "a\\b", "/opt/cni/bin/hostnic", {}]),
  {
    kind: "config.conflist",
    verbs: VERBS,
    apply(d) {
      // A whole network configuration list where one member is expected.
      const { cniVersion, cniVersions, name, ...rest } = d.conf;
      d.conf = { cniVersion, name, plugins: [{ ...rest }] };
      if (cniVersions !== undefined) d.conf.cniVersions = cniVersions;
      return [7];
    },
  },
  field("config.capabilities", "capabilities", [
    "yes",
    [],
    1,
    { portMappings: "true" },
    { ips: 1 },
  ]),
  field("config.runtimeConfig", "runtimeConfig", [
    "x",
    [],
    5,
    { ips: "10.0.0.1" },
    { ips: [1] },
    { ips: ["10.0.0.300"] },
    { ips: ["10.0.0.1/33"] },
    { ips: ["fe80::1/129"] },
    { ips: ["x"] },
    { ips: [""] },
    { mac: "zz:zz:zz:zz:zz:zz" },
    { mac: 1 },
    { mac: "00:11:22:33:44" },
  ]),
  field("config.args", "args", [
    "x",
    [],
    { cni: "x" },
    { cni: { ips: "1.2.3.4" } },
    { cni: { ips: ["1.2.3"] } },
    { cni: { ips: [null] } },
  ]),
  field("config.ipam", "ipam", [
    "host-local",
    [],
    { type: 1 },
    { routes: "x" },
    { routes: [{}] },
    { routes: [{ dst: "10.0.0.0" }] },
    { routes: [{ dst: "10.0.0.0/8", gw: "x" }] },
    { routes: [{ dst: "10.0.0.0/8", gw: "fe80::1" }] },
    { routes: [{ dst: "::/0", gw: "::" }] },
    { routes: [1] },
  ]),
  field("config.dns", "dns", [
    "x",
    [],
    { nameservers: "1.1.1.1" },
    { nameservers: ["x"] },
    { nameservers: [1] },
    { search: "a" },
    { domain: 1 },
    { options: [1] },
  ]),

  // -- hostnic's own keys: 7 --
  field("hostnic.vethPrefix", "vethPrefix", [12, "toolong", "", "a.b", "vé", true, "a/b"]),
  field("hostnic.mtu", "mtu", ["1500", 67, 65536, 1500.5, -1, true, [], 0, "0x5dc", 1e9]),
  field("hostnic.serviceCIDR", "serviceCIDR", [
    1,
    "10.0.0.0",
    "10.0.0.0/33",
    "10.0.0/24",
    "x",
    true,
    "10.96.0.0/12/1",
  ]),
  field("hostnic.hairpin", "hairpin", ["true", 1, "yes", {}, 0]),
  field("hostnic.natMark", "natMark", [
    0,
    "0",
    "0x4000",
    0x8000,
    "0xff000000",
    0x1000000,
    -1,
    2 ** 33,
    1.5,
    "abc",
    true,
    "0x",
    "0x123456789",
    "010",
  ]),
  field("hostnic.socketPath", "socketPath", [1, "relative.sock", "", true, [], "./hostnic.sock"]),
  field("hostnic.journalDir", "journalDir", [1, "var/lib/hostnic", "", {}, false]),
  field("hostnic.logLevel", "logLevel", ["verbose", 9, -1, true, "", {}, 2.5]),
  field("hostnic.logFile", "logFile", [1, "relative.log", true, ["/tmp/x"]]),
  {
    kind: "config.duplicateKey",
    verbs: VERBS,
    apply(d, r) {
      // The last of two keys wins (as in Go's decoder), and it is invalid.
      const s = json(d);
      const [k, v] = r.pick([
        ["mtu", '"big"'],
        ["name", "7"],
        ["hairpin", '"no"'],
        ["natMark", '"0x4000"'],
      ]);
      d.raw = enc.encode(`${s.slice(0, -1)},"${k}":1500,"${k}":${v}}`);
      return [7];
    },
  },

  // -- GC and CHECK requirements: 7 --
  field("gc.validAttachments", "cni.dev/valid-attachments", [
    DELETE,
    null,
    "x",
    [1],
    [{ containerID: "a" }],
    [{ ifname: "eth0" }],
    [{ containerID: 1, ifname: "eth0" }],
    [{ containerID: "a", ifname: "" }],
    { containerID: "a", ifname: "eth0" },
  ], ["GC"]),
  field("check.prevResultMissing", "prevResult", [DELETE], ["CHECK"]),

  // -- prevResult contents: 7 --
  {
    kind: "prevResult.type",
    verbs: ATTACH,
    apply(d, r) {
      d.conf.prevResult = r.pick(["x", [], 1, true]);
      return [7];
    },
  },
  prev("prevResult.ips", [
    (p) => (p.ips = "x"),
    (p) => (p.ips = [1]),
    (p) => (p.ips = [{}]),
    (p) => (p.ips = [{ address: 1 }]),
    ...BAD_CIDR.map((a) => (p: Record<string, unknown>) => (p.ips = [{ address: a }])),
    (p) => (p.ips = [{ address: "10.0.0.1/24", gateway: "x" }]),
    (p) => (p.ips = [{ address: "10.0.0.1/24", gateway: "fe80::1" }]),
    (p) => (p.ips = [{ address: "10.0.0.1/24", interface: 7 }]),
    (p) => (p.ips = [{ address: "10.0.0.1/24", interface: -1 }]),
    (p) => (p.ips = [{ address: "10.0.0.1/24", interface: 0.5 }]),
    (p) => (p.ips = [{ address: "10.0.0.1/24", interface: "0" }]),
    (p) => {
      p.cniVersion = "0.4.0";
      p.ips = [{ version: "5", address: "10.0.0.1/24" }];
    },
    (p) => {
      p.cniVersion = "0.3.1";
      p.ips = [{ version: "6", address: "10.0.0.1/24" }];
    },
  ]),
  prev("prevResult.interfaces", [
    (p) => (p.interfaces = "x"),
    (p) => (p.interfaces = [1]),
    (p) => (p.interfaces = [{}]),
    (p) => (p.interfaces = [{ name: 1 }]),
    (p) => (p.interfaces = [{ name: "eth0", mac: "zz" }]),
    (p) => (p.interfaces = [{ name: "eth0", sandbox: 1 }]),
  ]),
  prev("prevResult.routes", [
    (p) => (p.routes = "x"),
    (p) => (p.routes = [{}]),
    (p) => (p.routes = [{ dst: "0.0.0.0" }]),
    (p) => (p.routes = [{ dst: "0.0.0.0/0", gw: "x" }]),
    (p) => (p.routes = [{ dst: "0.0.0.0/0", gw: "fe80::1" }]),
    (p) => {
      p.cniVersion = "1.1.0";
      p.routes = [{ dst: "0.0.0.0/0", mtu: -1 }];
    },
  ]),
  prev("prevResult.dns", [
    (p) => (p.dns = "x"),
    (p) => (p.dns = { nameservers: ["x"] }),
    (p) => (p.dns = { search: 1 }),
  ]),

  // -- environment: 4 (3 for a namespace that does not exist) --
  {
    kind: "env.command",
    verbs: VERBS,
    apply(d, r) {
      d.env.CNI_COMMAND = r.pick([
        "",
        "add",
        "Add",
        `${d.verb} `,
        ` ${d.verb}`,
        "DELETE",
        "CHECKS",
        "VERSION\n",
        "status",
        "gc",
        "INIT",
        "ADD;DEL",
        "0",
        r.word(),
      ]);
      return [4];
    },
  },
  {
    kind: "env.commandMissing",
    // Not GC: its only variable, CNI_PATH, may as well come from a user's shell.
    verbs: ATTACH,
    apply(d) {
      // Attachment variables say it is a CNI call: the answer must be a CNI error.
      delete d.env.CNI_COMMAND;
      return [4];
    },
  },
  envVar("env.containerId", "CNI_CONTAINERID", [
    DELETE,
    "",
    "-abc",
    "_x",
    ".x",
    "a/b",
    "a b",
    "a:b",
    "ä",
    "a\tb",
    "a;b",
    "x".repeat(1025),
  ], { verbs: ATTACH }),
  // Valid for the plugin's syntax but longer than the daemon accepts (256).
  envVar("env.containerIdLong", "CNI_CONTAINERID", ["c".repeat(257), "c".repeat(1024)], {
    verbs: ATTACH,
  }),
  envVar("env.netnsMissing", "CNI_NETNS", [DELETE, ""], { verbs: ["ADD", "CHECK"] }),
  envVar("env.netnsRelative", "CNI_NETNS", ["run/netns/x", "netns", "./x", "~/x", " /run"], {
    verbs: ATTACH,
  }),
  {
    kind: "env.netnsNonexistent",
    verbs: ["ADD", "CHECK"],
    apply(d, _r, _ctx, id) {
      d.env.CNI_NETNS = `/run/netns/fz-nope-${id}`;
      return [3];
    },
  },
  {
    kind: "env.netnsNotNamespace",
    verbs: ["ADD", "CHECK"],
    apply(d, r, ctx) {
      d.env.CNI_NETNS = r.pick([ctx.regularFile, ctx.directory, "/dev/null", "/"]);
      return [4];
    },
  },
  envVar("env.ifname", "CNI_IFNAME", [
    DELETE,
    "",
    "a".repeat(16),
    "eth0/1",
    "eth 0",
    "eth:0",
    ".",
    "..",
    "eth\t0",
    "eth\u0001",
    "/",
  ], { verbs: ATTACH }),
  envVar("env.pathMissing", "CNI_PATH", [DELETE, ""], { verbs: ["GC"] }),
  envVar("env.args", "CNI_ARGS", [
    "garbage",
    "=x",
    "K8S_POD_NAME",
    "foo=bar",
    "IgnoreUnknown=maybe",
    "IgnoreUnknown=0;foo=1",
    "IgnoreUnknown=1;K8S_POD_NAME",
    "IgnoreUnknown=1;;=x",
    "K8S_POD_NAMESPACE=default;K8S_POD_NAME=x;K8S_POD_NAME",
  ], { verbs: ATTACH }),
  {
    kind: "env.argsHuge",
    verbs: ATTACH,
    apply(d, r) {
      // Close to the kernel's 128 KiB limit for one environment string.
      const n = r.int(2_000, 9_000);
      d.env.CNI_ARGS = Array.from({ length: n }, (_, i) => `k${i}=v`).join(";");
      return [4];
    },
  },
  cniArgs("env.argsPodName", [
    "K8S_POD_NAME=Bad_Name",
    "K8S_POD_NAME=-x",
    "K8S_POD_NAME=x-",
    "K8S_POD_NAME=UPPER",
    `K8S_POD_NAME=${"a".repeat(254)}`,
    "K8S_POD_NAME=a b",
    "K8S_POD_NAMESPACE=Kube_System",
    "IgnoreUnknown=1;unknown=1;K8S_POD_NAME=a/b",
  ], ATTACH),
  cniArgs("env.argsAnnotation", [
    ...["nope", "VXNET-1", "vxnet-", "vxnet_1", "vxnet-ü", "vxnet-a b", "vxnet-a/b"].map((v) =>
      `hostnic.network.kubesphere.io/vxnet=${v}`
    ),
    // An empty value means "not set", like an absent annotation.
    ...[...BAD_IPV4.filter((v) => v !== ""), "fe80::1", "1.2.3.4/24", "1.2.3.4/x"].map((v) =>
      `hostnic.network.kubesphere.io/ip=${v}`
    ),
    ...["bogus", "PASSTHROUGH", "nic", "passthrough "].map((v) =>
      `hostnic.network.kubesphere.io/type=${v}`
    ),
    ...["10.0.0.1/99", "x", "fe80::1", "1.2.3.4/", "10.0.0.1/24/1", "300.0.0.1"].map((v) =>
      `IP=${v}`
    ),
  ], ["ADD"]),

  // -- requested IPs hostnic cannot give (IPv4 only, one address per interface): 7 --
  {
    kind: "config.ipsUnservable",
    verbs: ["ADD"],
    apply(d, r) {
      const ips = r.pick([["fd00::5"], ["fd00::5/64"], ["10.0.0.5", "10.0.0.6"], [
        "10.0.0.5",
        "fd00::5",
      ]]);
      if (r.chance(0.5)) d.conf.runtimeConfig = { ips };
      else d.conf.args = { cni: { ips } };
      return [7];
    },
  },
  field("hostnic.serviceCIDRv6", "serviceCIDR", ["fd00::/108", "::/0"]),
  field("config.ipamRoutesV6", "ipam", [{ routes: [{ dst: "fd00::/8" }] }, {
    routes: [{ dst: "fd00::/8", gw: "fd00::1" }],
  }]),

  // -- daemon not listening on the configured socket: ADD/CHECK 11, STATUS 50 --
  {
    kind: "daemon.unreachable",
    verbs: ["ADD", "CHECK", "STATUS"],
    apply(d, _r, _ctx, id) {
      d.conf.socketPath = `/run/hostnic-fuzz-nowhere/${id}.sock`;
      return d.verb === "STATUS" ? [50] : [11];
    },
  },
];

// ---- noise that must not change the outcome ----

function addNoise(d: Draft, r: Rng, id: number): void {
  if (r.chance(0.4)) d.env[r.pick(["HOSTNIC_FUZZ", "CNI_UNKNOWN", "FOO"])] = r.word();
  // Only real locale names: Deno 2.9 itself crashes at start-up (SIGSEGV, before any script
  // runs) on some malformed ones, e.g. LANG=aaaaaaaaaaaa.
  if (r.chance(0.1)) d.env.LANG = r.pick(["C", "C.UTF-8", "POSIX", "en_US.UTF-8"]);
  if ((d.verb === "STATUS" || d.verb === "GC") && r.chance(0.5)) {
    // Attachment variables these verbs do not use are ignored, whatever they hold.
    d.env.CNI_CONTAINERID = r.pick(["../x", "", `fz-noise-${id}`]);
    d.env.CNI_IFNAME = r.pick(["a/b/c/d/e/f/g/h/i", "eth0"]);
    d.env.CNI_NETNS = r.pick(["relative", "/run/netns/none"]);
    d.env.CNI_ARGS = r.pick(["garbage", "foo=bar"]);
  }
  if (r.chance(0.3)) d.conf[`fuzz${r.word(1, 6)}`] = r.pick([1, "x", null, [1, { a: [] }], {}]);
  if (r.chance(0.03)) d.conf.fuzzBulk = "y".repeat(r.int(100_000, 900_000));
  if (r.chance(0.3)) {
    d.conf = Object.fromEntries(r.shuffle(Object.entries(d.conf)));
  }
}

function encode(d: Draft, r: Rng): Uint8Array | null {
  if (d.raw !== undefined) return d.raw;
  return enc.encode(r.chance(0.2) ? JSON.stringify(d.conf, null, 2) : JSON.stringify(d.conf));
}

/**
 * `count` malformed invocations. The first cases cover every (mutation, verb) pair once, in a
 * seeded order; the rest are drawn at random.
 */
export function generateCases(seed: number, count: number, ctx: FuzzContext): FuzzCase[] {
  const r = new Rng(seed);
  const pairs = MUTATIONS.flatMap((m) => m.verbs.map((v) => [m, v] as const));
  const order = r.shuffle([...pairs]);
  const cases: FuzzCase[] = [];
  for (let id = 0; id < count; id++) {
    const [m, verb] = id < order.length ? order[id] : r.pick(pairs);
    const d = baseDraft(verb, id, ctx, r);
    addNoise(d, r, id);
    const codes = m.apply(d, r, ctx, id);
    const stdin = encode(d, r);
    // Noise can grow a config, and a mutation can then double it (UTF-16, `${s}${s}`): past the
    // plugin's cap the size is what the plugin judges first, whatever the mutation meant.
    const tooLarge = stdin !== null && stdin.length > STDIN_CAP;
    cases.push({ id, verb, kind: m.kind, env: d.env, stdin, codes: tooLarge ? [7] : codes });
  }
  return cases;
}

/** VERSION calls with whatever stdin: classified as successes (VERSION never fails over stdin). */
export function versionCases(seed: number, count: number, firstId: number): FuzzCase[] {
  const r = new Rng(seed ^ 0x5eed);
  const stdins: (() => Uint8Array | null)[] = [
    () => null,
    () => enc.encode(""),
    () => enc.encode('{"cniVersion":"0.4.0"}'),
    () => enc.encode('{"cniVersion":"9.9.9"}'),
    () => enc.encode('{"cniVersion":'),
    () => enc.encode("[1,2]"),
    () => new Uint8Array([0xff, 0xfe, 0x00]),
    () => enc.encode(`{"cniVersion":"1.0.0","pad":"${"z".repeat(2 * 1024 * 1024)}"}`),
  ];
  return Array.from({ length: count }, (_, i) => {
    const env: Record<string, string> = { CNI_COMMAND: "VERSION" };
    if (r.chance(0.5)) {
      Object.assign(env, { CNI_CONTAINERID: "../x", CNI_IFNAME: "a/b", CNI_ARGS: "garbage" });
    }
    return {
      id: firstId + i,
      verb: "VERSION" as const,
      kind: "version.anyStdin",
      env,
      stdin: stdins[i % stdins.length](),
      codes: [],
    };
  });
}
