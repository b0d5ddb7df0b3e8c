/**
 * Errors of the Linux datapath, and the one place where the text printed by `ip`, `iptables`,
 * `sysctl` and `nsenter` is interpreted. Callers above lib/linux decide on `code` and fields only;
 * nothing outside this file looks at stderr.
 */
import { HostnicError } from "../errors.ts";
import { ExecError } from "./exec.ts";

/** An input of a datapath plan is unusable (bad address, name too long...). `field` names it. */
export class InvalidSpecError extends HostnicError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("INVALID_DATAPATH_SPEC", `Invalid datapath input "${field}": ${message}`);
    this.field = field;
  }
}

/** No link with the NIC's MAC exists where it was expected (not attached yet, or detached). */
export class NicNotFoundError extends HostnicError {
  readonly mac: string;
  constructor(mac: string, where: string) {
    super("NIC_NOT_FOUND", `No link with MAC "${mac}" in ${where}`);
    this.mac = mac;
  }
}

/** A name hostnic must give to a link is taken by another link (e.g. a route table reused). */
export class LinkConflictError extends HostnicError {
  readonly linkName: string;
  constructor(linkName: string, message: string) {
    super("LINK_NAME_CONFLICT", message);
    this.linkName = linkName;
  }
}

/** The pod's network namespace does not exist (setup needs it; teardown tolerates it). */
export class NetnsNotFoundError extends HostnicError {
  readonly netns: string;
  constructor(netns: string, options?: ErrorOptions) {
    super("NETNS_NOT_FOUND", `Network namespace "${netns}" does not exist`, options);
    this.netns = netns;
  }
}

/** Setup failed; whatever it had applied was undone. `cause` is the failing `ExecError`. */
export class DatapathSetupError extends HostnicError {
  readonly what: string;
  constructor(what: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super("DATAPATH_SETUP_FAILED", `Setting up ${what} failed: ${detail}`, { cause });
    this.what = what;
  }
}

/** Teardown removed what it could; `failures` lists what it could not (never "not found"). */
export class DatapathTeardownError extends HostnicError {
  readonly failures: readonly string[];
  constructor(what: string, failures: readonly string[]) {
    super(
      "DATAPATH_TEARDOWN_FAILED",
      `Tearing down ${what} left ${failures.length} object(s): ${failures.join("; ")}`,
    );
    this.failures = failures;
  }
}

/** How a failed command failed, as far as ensure/forgive semantics care. */
export type FailureKind = "not-found" | "exists" | "netns-missing" | "other";

const NOT_FOUND = [
  /cannot find device/i,
  /does not exist/i,
  /no such file or directory/i,
  /no such process/i,
  /no such device/i,
  /cannot assign requested address/i,
  /bad rule \(does a matching rule exist/i,
  /no chain\/target\/match by that name/i,
];

/** Classifies one error text printed by ip/iptables/sysctl/nsenter. */
export function classifyMessage(text: string): FailureKind {
  // nsenter reports a vanished namespace with ENOENT too: check it before generic "not found".
  if (/^nsenter: (cannot open|reassociate)/m.test(text)) return "netns-missing";
  // `ip link ... netns <path>` naming a namespace that does not exist.
  if (/Invalid "netns" value/.test(text)) return "netns-missing";
  if (/file exists/i.test(text)) return "exists";
  if (NOT_FOUND.some((re) => re.test(text))) return "not-found";
  return "other";
}

/** Classifies any thrown value; only `ExecError`s can be anything but "other". */
export function classifyError(err: unknown): FailureKind {
  return err instanceof ExecError ? classifyMessage(err.stderr) : "other";
}

export function isNetnsMissing(err: unknown): boolean {
  return classifyError(err) === "netns-missing";
}

/** The namespace a "netns-missing" failure is about, when the message names it. */
export function missingNetnsOf(err: unknown): string | undefined {
  if (!(err instanceof ExecError)) return undefined;
  const m = /^nsenter: cannot open ([^:]+):/m.exec(err.stderr) ??
    /argument "([^"]+)" is wrong: Invalid "netns" value/.exec(err.stderr);
  return m?.[1];
}

/** The line of an `ip -batch` script that failed, with the messages printed for it. */
export interface BatchFailure {
  /** 1-based line number within the script. */
  line: number;
  message: string;
}

/**
 * Reads `ip -batch` stderr ("<messages>\nCommand failed -:<n>"). Without `-force` ip stops at the
 * first failure, so lines before it were applied and lines after it were not.
 */
export function parseBatchFailure(stderr: string): BatchFailure | undefined {
  // `-` when the script came on stdin, its file's path when it came as a file (CommandRunner).
  const m = /^Command failed \S+:(\d+)\s*$/m.exec(stderr);
  if (!m) return undefined;
  const message = stderr.slice(0, m.index).trim().split("\n").filter(Boolean).join("; ");
  return { line: Number(m[1]), message };
}
