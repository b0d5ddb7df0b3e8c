/**
 * The CNI environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
 * `CNI_PATH`. What each verb requires (spec 1.1 §2, the same for every supported version):
 *
 *   ADD, CHECK   CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME
 *   DEL          CNI_CONTAINERID, CNI_IFNAME (CNI_NETNS may be empty: the netns may be gone)
 *   GC           CNI_PATH
 *   STATUS       nothing
 *   VERSION      nothing
 *
 * Variables a verb does not use are ignored, not validated. Every problem is reported at once as
 * one code-4 error naming each variable.
 */
import { CniCode, CniError, quote } from "./errors.ts";

export const CNI_COMMANDS = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** Reads one environment variable. */
export type EnvGetter = (name: string) => string | undefined;

/** Longest container ID accepted; runtimes use 64 hex characters, this only bounds state keys. */
export const MAX_CONTAINER_ID_LENGTH = 1024;
/** Linux IFNAMSIZ − 1. */
export const MAX_IFNAME_LENGTH = 15;

/** `CNI_ARGS` keys hostnic understands; others are an error unless `IgnoreUnknown` is true. */
export const KNOWN_CNI_ARGS = [
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
  "IP",
  "hostnic.network.kubesphere.io/vxnet",
  "hostnic.network.kubesphere.io/ip",
  "hostnic.network.kubesphere.io/type",
] as const;

export interface CniArgs {
  /** Every pair as given, known or not. */
  readonly pairs: Readonly<Record<string, string>>;
  readonly ignoreUnknown: boolean;
  readonly k8sPodNamespace?: string;
  readonly k8sPodName?: string;
  readonly k8sPodInfraContainerId?: string;
  readonly k8sPodUid?: string;
  /** Legacy `IP=<ip>[/<prefix>]` request (superseded by `args.cni.ips` in the config). */
  readonly ip?: string;
  /**
   * The pod annotations `hostnic.network.kubesphere.io/{vxnet,ip,type}` given as CNI_ARGS keys
   * (runtimes without Kubernetes, tests); checked by the daemon.
   */
  readonly hostnicVxnet?: string;
  readonly hostnicIp?: string;
  readonly hostnicType?: string;
}

export interface CniEnv {
  readonly command: CniCommand;
  /** Set for ADD, CHECK, DEL. */
  readonly containerId?: string;
  /** Set for ADD and CHECK; for DEL only when the runtime still has one. */
  readonly netns?: string;
  /** Set for ADD, CHECK, DEL. */
  readonly ifname?: string;
  readonly args: CniArgs;
  /** `CNI_PATH` split on `:`, empty entries dropped. */
  readonly path: readonly string[];
}

const ATTACHMENT: readonly CniCommand[] = ["ADD", "CHECK", "DEL"];
const EMPTY_ARGS: CniArgs = { pairs: {}, ignoreUnknown: false };

/** Reads `CNI_COMMAND`; code 4 if missing or not a verb. */
export function parseCommand(value: string | undefined): CniCommand {
  if (value === undefined || value === "") {
    throw new CniError(CniCode.InvalidEnvironment, "Missing CNI_COMMAND", {
      details: `expected one of ${CNI_COMMANDS.join(", ")}`,
    });
  }
  if (!(CNI_COMMANDS as readonly string[]).includes(value)) {
    throw new CniError(CniCode.InvalidEnvironment, `Invalid CNI_COMMAND ${quote(value)}`, {
      details: `expected one of ${CNI_COMMANDS.join(", ")}`,
    });
  }
  return value as CniCommand;
}

/** Problem with a container ID, or `undefined` if it is valid. */
export function containerIdProblem(id: string): string | undefined {
  if (id === "") return "must not be empty";
  if (id.length > MAX_CONTAINER_ID_LENGTH) {
    return `must be at most ${MAX_CONTAINER_ID_LENGTH} characters, got ${id.length}`;
  }
  if (!/^[A-Za-z0-9]/.test(id)) return "must start with a letter or digit";
  const bad = /[^A-Za-z0-9_.-]/.exec(id);
  if (bad) return `must contain only letters, digits, "_", "." and "-", found ${quote(bad[0])}`;
  return undefined;
}

/** Problem with an interface name, or `undefined` if it is valid. */
export function ifnameProblem(name: string): string | undefined {
  if (name === "") return "must not be empty";
  if (name === "." || name === "..") return `must not be ${quote(name)}`;
  if (name.length > MAX_IFNAME_LENGTH) {
    return `must be at most ${MAX_IFNAME_LENGTH} characters, got ${name.length}`;
  }
  const bad = /[/:\s]/u.exec(name);
  if (bad) return `must not contain "/", ":" or whitespace, found ${quote(bad[0])}`;
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "must not contain control characters";
  return undefined;
}

/** Problem with a netns path, or `undefined` if it is valid. */
export function netnsProblem(path: string): string | undefined {
  if (!path.startsWith("/")) return "must be an absolute path to a network namespace";
  if (path.includes("\0")) return "must not contain NUL";
  if (path.length > 4096) return "must be at most 4096 characters";
  return undefined;
}

/** Unknown CNI_ARGS keys named in the error; the rest are counted. */
const MAX_KEYS_SHOWN = 5;

/**
 * Parses `K=V;K=V`. Empty segments are skipped, a value may contain `=`, a key must not be empty.
 * Unknown keys are an error unless `IgnoreUnknown` is `1`/`true`.
 */
export function parseCniArgs(text: string): CniArgs {
  const pairs: Record<string, string> = {};
  for (const segment of text.split(";")) {
    if (segment === "") continue;
    const eq = segment.indexOf("=");
    if (eq <= 0) {
      throw new CniError(CniCode.InvalidEnvironment, `Invalid CNI_ARGS pair ${quote(segment)}`, {
        details: 'expected "KEY=VALUE" pairs separated by ";"',
      });
    }
    pairs[segment.slice(0, eq)] = segment.slice(eq + 1);
  }
  let ignoreUnknown = false;
  const iu = pairs.IgnoreUnknown;
  if (iu !== undefined) {
    const v = iu.toLowerCase();
    if (v === "1" || v === "true") ignoreUnknown = true;
    else if (v !== "0" && v !== "false") {
      throw new CniError(
        CniCode.InvalidEnvironment,
        `Invalid CNI_ARGS IgnoreUnknown ${quote(iu)}`,
        { details: 'expected "1", "true", "0" or "false"' },
      );
    }
  }
  if (!ignoreUnknown) {
    const unknown = Object.keys(pairs).filter((k) =>
      !(KNOWN_CNI_ARGS as readonly string[]).includes(k)
    );
    if (unknown.length > 0) {
      // Named, but only the first few: CNI_ARGS can hold thousands of pairs.
      const shown = unknown.slice(0, MAX_KEYS_SHOWN).map((k) => quote(k)).join(", ");
      const more = unknown.length > MAX_KEYS_SHOWN
        ? ` and ${unknown.length - MAX_KEYS_SHOWN} more`
        : "";
      throw new CniError(
        CniCode.InvalidEnvironment,
        `Unknown CNI_ARGS key${unknown.length > 1 ? "s" : ""} ${shown}${more}`,
        {
          details: `hostnic knows ${
            KNOWN_CNI_ARGS.join(", ")
          }; add IgnoreUnknown=1 to ignore others`,
        },
      );
    }
  }
  return {
    pairs,
    ignoreUnknown,
    k8sPodNamespace: pairs.K8S_POD_NAMESPACE,
    k8sPodName: pairs.K8S_POD_NAME,
    k8sPodInfraContainerId: pairs.K8S_POD_INFRA_CONTAINER_ID,
    k8sPodUid: pairs.K8S_POD_UID,
    ip: pairs.IP,
    hostnicVxnet: pairs["hostnic.network.kubesphere.io/vxnet"],
    hostnicIp: pairs["hostnic.network.kubesphere.io/ip"],
    hostnicType: pairs["hostnic.network.kubesphere.io/type"],
  };
}

/** Variables only a CNI runtime sets; with no mode on the command line they mean a CNI call. */
const CNI_RUNTIME_VARS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"];

/**
 * True when the hostnic executable is called as a CNI plugin: `CNI_COMMAND` is set, or no mode is
 * given on the command line and the runtime's other variables are (a runtime that lost
 * CNI_COMMAND then gets a CNI error, code 4, instead of the usage text). `CNI_PATH` alone does not
 * count: it may be set in a user's shell.
 */
export function isCniCall(args: readonly string[], get: EnvGetter): boolean {
  if (get("CNI_COMMAND") !== undefined) return true;
  return args.length === 0 && CNI_RUNTIME_VARS.some((name) => get(name) !== undefined);
}

/** Reads and validates the environment for one invocation; code 4 names every bad variable. */
export function parseEnv(get: EnvGetter): CniEnv {
  const command = parseCommand(get("CNI_COMMAND"));
  const problems: string[] = [];
  const need = (name: string, required: boolean, check: (v: string) => string | undefined) => {
    const value = get(name);
    if (value === undefined || value === "") {
      if (required) problems.push(`${name} is missing`);
      return undefined;
    }
    const problem = check(value);
    if (problem) {
      problems.push(`${name} ${quote(value)} ${problem}`);
      return undefined;
    }
    return value;
  };

  let containerId: string | undefined;
  let netns: string | undefined;
  let ifname: string | undefined;
  let args = EMPTY_ARGS;
  if (ATTACHMENT.includes(command)) {
    containerId = need("CNI_CONTAINERID", true, containerIdProblem);
    netns = need("CNI_NETNS", command !== "DEL", netnsProblem);
    ifname = need("CNI_IFNAME", true, ifnameProblem);
  }
  const rawPath = need("CNI_PATH", command === "GC", () => undefined);
  if (problems.length > 0) {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `Invalid CNI environment: ${problems.join("; ")}`,
    );
  }
  if (ATTACHMENT.includes(command)) args = parseCniArgs(get("CNI_ARGS") ?? "");
  const path = (rawPath ?? "").split(":").filter((p) => p !== "");
  return { command, containerId, netns, ifname, args, path };
}
