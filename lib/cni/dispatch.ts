/**
 * One CNI invocation: read stdin and env, negotiate the version, validate, call the handler for
 * the verb, print the outcome. Never throws: every failure becomes exactly one error object on
 * stdout (in the request's version when known), a one-line message on stderr, and exit code 1.
 */
import type { Attachment, NetConf } from "./config.ts";
import { decodeConfig, MAX_CONFIG_BYTES, parseNetConf, peekVersion } from "./config.ts";
import {
  type CniArgs,
  type CniCommand,
  type CniEnv,
  type EnvGetter,
  parseCommand,
  parseEnv,
} from "./env.ts";
import { CniCode, CniError, errorObject, toCniError } from "./errors.ts";
import { encodeResult, parseResult, type Result } from "./result.ts";
import type { Mark } from "./trace.ts";
import { type CniVersion, LATEST_VERSION, negotiateVersion, versionInfo } from "./version.ts";

interface RequestBase {
  /** The version the request is served in; results and errors are encoded in it. */
  readonly version: CniVersion;
  readonly config: NetConf;
  readonly env: CniEnv;
}

interface AttachmentBase extends RequestBase {
  readonly containerId: string;
  readonly ifname: string;
  readonly args: CniArgs;
}

export interface AddRequest extends AttachmentBase {
  readonly command: "ADD";
  readonly netns: string;
}

export interface CheckRequest extends AttachmentBase {
  readonly command: "CHECK";
  readonly netns: string;
  /** The result of the ADD being checked (required for CHECK). */
  readonly prevResult: Result;
}

export interface DelRequest extends AttachmentBase {
  readonly command: "DEL";
  /** Absent when the runtime no longer has the netns; DEL must still release what it can. */
  readonly netns?: string;
}

export interface StatusRequest extends RequestBase {
  readonly command: "STATUS";
}

export interface GcRequest extends RequestBase {
  readonly command: "GC";
  /** Attachments the runtime still has; everything else of this network is stale. */
  readonly validAttachments: readonly Attachment[];
}

export type CniRequest = AddRequest | CheckRequest | DelRequest | StatusRequest | GcRequest;

/**
 * What the plugin does per verb. Throw a `CniError` to fail with a specific code; any other error
 * becomes code 100 with its message.
 */
export interface CniHandlers {
  /** Create `ifname` in `netns` and return what was created (printed in `req.version`). */
  add(req: AddRequest): Result | Promise<Result>;
  /** Undo ADD; succeed if there is nothing to undo. */
  del(req: DelRequest): void | Promise<void>;
  /** Verify what `req.prevResult` says ADD created, plus non-result state (rules, daemon). */
  check(req: CheckRequest): void | Promise<void>;
  /** Succeed if ADD can be served now; else throw code 50 or 51. */
  status(req: StatusRequest): void | Promise<void>;
  /** Release attachments of this network that are not in `req.validAttachments`. */
  gc(req: GcRequest): void | Promise<void>;
}

/** Process I/O of one invocation. */
export interface CniIo {
  env: EnvGetter;
  /** All of stdin, or at least `limit` bytes of it when there is more. */
  readStdin(limit: number): Promise<Uint8Array>;
  writeStdout(text: string): Promise<void>;
  writeStderr(text: string): Promise<void>;
  /** Phase marks for the benchmark's per-phase split (lib/cni/trace.ts); absent: none. */
  mark?: Mark;
}

export interface CniDeps extends CniIo {
  handlers: CniHandlers;
}

/** Runs one invocation and returns the exit code (0 or 1). */
export async function runCni(deps: CniDeps): Promise<number> {
  const mark = deps.mark ?? (() => {});
  let errVersion: string = LATEST_VERSION;
  let command: CniCommand | undefined;
  try {
    let bytes: Uint8Array = new Uint8Array();
    let readError: unknown;
    try {
      bytes = await deps.readStdin(MAX_CONFIG_BYTES + 1);
    } catch (err) {
      readError = err;
    }
    mark("read");
    errVersion = peekVersion(bytes, LATEST_VERSION);
    command = parseCommand(deps.env("CNI_COMMAND"));
    if (command === "VERSION") {
      // Runtimes may send nothing, or only {"cniVersion": …}; never fail VERSION over stdin.
      await deps.writeStdout(JSON.stringify(versionInfo(requestedVersion(bytes))) + "\n");
      mark("written");
      return 0;
    }
    if (readError !== undefined) {
      throw new CniError(CniCode.IoFailure, "Cannot read the network configuration from stdin", {
        details: readError instanceof Error ? readError.message : String(readError),
      });
    }
    const env = parseEnv(deps.env);
    const raw = decodeConfig(bytes);
    const version = negotiateVersion(raw, command);
    errVersion = version;
    const config = parseNetConf(raw, { command, version });
    mark("parsed");
    const out = await dispatch(deps.handlers, { env, config, version });
    if (out !== undefined) await deps.writeStdout(out + "\n");
    mark("written");
    return 0;
  } catch (err) {
    return await fail(deps, toCniError(err), errVersion, command);
  }
}

/** Calls the handler for `env.command`; returns the text to print, if any. */
async function dispatch(
  handlers: CniHandlers,
  base: { env: CniEnv; config: NetConf; version: CniVersion },
): Promise<string | undefined> {
  const { env, config } = base;
  const attachment = () => ({
    ...base,
    containerId: env.containerId!,
    ifname: env.ifname!,
    args: env.args,
  });
  switch (env.command) {
    case "ADD": {
      const result = await handlers.add({ ...attachment(), command: "ADD", netns: env.netns! });
      return JSON.stringify(checkedEncoding(result, base.version));
    }
    case "DEL":
      await handlers.del({ ...attachment(), command: "DEL", netns: env.netns });
      return undefined;
    case "CHECK":
      await handlers.check({
        ...attachment(),
        command: "CHECK",
        netns: env.netns!,
        prevResult: config.prevResult!,
      });
      return undefined;
    case "STATUS":
      await handlers.status({ ...base, command: "STATUS" });
      return undefined;
    case "GC":
      await handlers.gc({
        ...base,
        command: "GC",
        validAttachments: config.validAttachments ?? [],
      });
      return undefined;
    case "VERSION":
      return JSON.stringify(versionInfo(base.version));
  }
}

/** Encodes a handler's result and reads it back, so a malformed result is our bug (100), not 7. */
function checkedEncoding(result: Result, version: CniVersion): Record<string, unknown> {
  try {
    const encoded = encodeResult(result, version);
    parseResult(encoded, version, "result");
    return encoded;
  } catch (err) {
    throw new CniError(CniCode.Internal, "hostnic produced an invalid ADD result", {
      details: err instanceof Error ? err.message : String(err),
      cause: err,
    });
  }
}

function requestedVersion(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes))?.cniVersion;
  } catch {
    return undefined;
  }
}

async function fail(
  io: CniIo,
  err: CniError,
  cniVersion: string,
  command: CniCommand | undefined,
): Promise<number> {
  const line = `hostnic: CNI ${command ?? "call"} failed with code ${err.cniCode}: ${err.message}`;
  try {
    await io.writeStdout(JSON.stringify(errorObject(err, cniVersion)) + "\n");
  } catch {
    // Nothing more can be told to the runtime; stderr below still says why.
  }
  try {
    await io.writeStderr(line.replace(/\s*[\r\n]+\s*/g, " ") + "\n");
  } catch {
    // stderr gone too: the exit code is all that is left.
  }
  return 1;
}
