/**
 * A minimal CNI runtime for network configuration lists, for tests where no runtime (cnitool,
 * podman, a kubelet) is at hand. It follows the CNI spec's section 3 ("Execution of Network
 * Configurations") the way libcni does:
 *
 * - each plugin is the executable named by its `type`, looked up in CNI_PATH (missing: an error);
 * - the request config of a plugin is its object from `plugins` with the list's `cniVersion` and
 *   `name` inserted, `capabilities` removed, `runtimeConfig` = the capabilities the plugin declares
 *   (`true`) that the caller supplies as capability args, and `prevResult` as below;
 * - ADD runs the plugins in order, each getting the previous plugin's result (none for the first);
 *   the final result is cached per attachment (container ID, interface);
 * - CHECK runs them in order and DEL in reverse order, every plugin getting the cached final
 *   result of the ADD (DEL without one, when the ADD never succeeded);
 * - the first plugin error stops the operation; it is thrown with the plugin and its error object.
 *
 * Plugins run with the CNI_* variables plus the runtime's own environment (PATH, HOME…), inside
 * the runtime's network namespace when one is given (a node namespace of the testbed).
 */
import { inNetns } from "../../lib/linux/exec.ts";

export interface NetworkConfigList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  plugins: Record<string, unknown>[];
}

/** The per-attachment parameters (spec: "Attachment Parameters"). */
export interface AttachmentParams {
  containerId: string;
  /** CNI_NETNS path. */
  netns: string;
  ifName: string;
  /** CNI_ARGS. */
  args?: string;
  /** Capability args, e.g. `{ portMappings: [...] }`. */
  capabilityArgs?: Record<string, unknown>;
}

export interface PluginRun {
  type: string;
  command: string;
  code: number;
  stdout: string;
  stderr: string;
}

/** A plugin of the list failed: the operation stopped there. */
export class PluginError extends Error {
  readonly run: PluginRun;
  /** The plugin's CNI error object, when stdout held one. */
  readonly error?: { code: number; msg: string; details?: string };
  constructor(run: PluginRun) {
    let error: PluginError["error"];
    try {
      error = JSON.parse(run.stdout);
    } catch {
      error = undefined;
    }
    super(
      `${run.command} of plugin "${run.type}" failed (exit ${run.code}): ` +
        (error ? `code ${error.code}: ${error.msg} ${error.details ?? ""}` : run.stderr.trim()),
    );
    this.run = run;
    this.error = error;
  }
}

/** A network configuration list given as one plugin configuration (libcni's ConfListFromConf). */
export function listOfConf(conf: Record<string, unknown>): NetworkConfigList {
  const { cniVersion, name, ...plugin } = conf;
  return { cniVersion: String(cniVersion), name: String(name), plugins: [plugin] };
}

/** The request config of `plugin` (spec: "Deriving request configuration"). */
export function requestConfig(
  list: NetworkConfigList,
  plugin: Record<string, unknown>,
  o: { prevResult?: unknown; capabilityArgs?: Record<string, unknown> },
): Record<string, unknown> {
  const { capabilities, ...rest } = plugin;
  const conf: Record<string, unknown> = { ...rest, cniVersion: list.cniVersion, name: list.name };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, declared] of Object.entries((capabilities ?? {}) as Record<string, unknown>)) {
    const arg = o.capabilityArgs?.[cap];
    if (declared === true && arg !== undefined) runtimeConfig[cap] = arg;
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  else delete conf.runtimeConfig;
  if (o.prevResult !== undefined) conf.prevResult = o.prevResult;
  return conf;
}

export class ConfListRuntime {
  readonly list: NetworkConfigList;
  readonly cniPath: readonly string[];
  readonly netns?: string;
  /** Every plugin run, in order (for assertions on what ran). */
  readonly runs: PluginRun[] = [];
  readonly #env: Record<string, string>;
  readonly #cache = new Map<string, unknown>();

  constructor(o: {
    list: NetworkConfigList;
    cniPath: readonly string[];
    /** Namespace (name under /run/netns, or a path) the runtime runs plugins in. */
    netns?: string;
    /** The runtime's own environment passed to plugins (default: PATH and HOME of this process). */
    env?: Record<string, string>;
  }) {
    this.list = o.list;
    this.cniPath = o.cniPath;
    this.netns = o.netns;
    this.#env = o.env ?? runtimeEnv();
  }

  /** The cached final ADD result of an attachment. */
  cachedResult(a: Pick<AttachmentParams, "containerId" | "ifName">): unknown {
    return this.#cache.get(key(a));
  }

  /** VERSION of every plugin: the list's cniVersion must be among each one's supported versions. */
  async validate(): Promise<void> {
    for (const plugin of this.list.plugins) {
      const type = String(plugin.type);
      const run = await this.#exec(type, { CNI_COMMAND: "VERSION" }, {
        cniVersion: this.list.cniVersion,
      });
      if (run.code !== 0) throw new PluginError(run);
      const supported = JSON.parse(run.stdout).supportedVersions as string[];
      if (!supported.includes(this.list.cniVersion)) {
        throw new Error(
          `Plugin "${type}" does not support cniVersion ${this.list.cniVersion}: ${supported}`,
        );
      }
    }
  }

  /** ADD of every plugin in order; returns (and caches) the final result. */
  async add(a: AttachmentParams): Promise<Record<string, unknown>> {
    let prevResult: unknown = undefined;
    for (const plugin of this.list.plugins) {
      const conf = requestConfig(this.list, plugin, {
        prevResult,
        capabilityArgs: a.capabilityArgs,
      });
      const run = await this.#exec(String(plugin.type), this.#attachEnv("ADD", a), conf);
      if (run.code !== 0) throw new PluginError(run);
      prevResult = JSON.parse(run.stdout);
    }
    this.#cache.set(key(a), prevResult);
    return prevResult as Record<string, unknown>;
  }

  /** CHECK of every plugin in order with the cached result (skipped when `disableCheck`). */
  async check(a: AttachmentParams): Promise<void> {
    if (this.list.disableCheck) return;
    const prevResult = this.#cache.get(key(a));
    if (prevResult === undefined) throw new Error(`No cached result for ${key(a)}`);
    for (const plugin of this.list.plugins) {
      const conf = requestConfig(this.list, plugin, {
        prevResult,
        capabilityArgs: a.capabilityArgs,
      });
      const run = await this.#exec(String(plugin.type), this.#attachEnv("CHECK", a), conf);
      if (run.code !== 0) throw new PluginError(run);
    }
  }

  /** DEL of every plugin in reverse order with the cached result; forgets it on success. */
  async del(a: AttachmentParams): Promise<void> {
    const prevResult = this.#cache.get(key(a));
    for (const plugin of [...this.list.plugins].reverse()) {
      const conf = requestConfig(this.list, plugin, {
        prevResult,
        capabilityArgs: a.capabilityArgs,
      });
      const run = await this.#exec(String(plugin.type), this.#attachEnv("DEL", a), conf);
      if (run.code !== 0) throw new PluginError(run);
    }
    this.#cache.delete(key(a));
  }

  #attachEnv(command: string, a: AttachmentParams): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifName,
      CNI_ARGS: a.args ?? "",
    };
  }

  async #exec(type: string, cniEnv: Record<string, string>, conf: unknown): Promise<PluginRun> {
    const exe = await this.#find(type);
    const [cmd, ...args] = inNetns([exe], this.netns);
    const child = new Deno.Command(cmd, {
      args,
      env: { ...this.#env, ...cniEnv, CNI_PATH: this.cniPath.join(":") },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).spawn();
    const output = child.output();
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(JSON.stringify(conf)));
      await w.close();
    } catch (err) {
      // A plugin may answer without reading stdin (the reference plugins' VERSION does).
      if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
    }
    const out = await output;
    const dec = new TextDecoder();
    const run = {
      type,
      command: cniEnv.CNI_COMMAND,
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
    this.runs.push(run);
    return run;
  }

  async #find(type: string): Promise<string> {
    if (type.includes("/")) throw new Error(`Plugin type "${type}" must be a file name`);
    for (const dir of this.cniPath) {
      const path = `${dir}/${type}`;
      try {
        const st = await Deno.stat(path);
        if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return path;
      } catch {
        // not in this directory
      }
    }
    throw new Error(`Plugin "${type}" not found in CNI_PATH ${this.cniPath.join(":")}`);
  }
}

function key(a: Pick<AttachmentParams, "containerId" | "ifName">): string {
  return `${a.containerId}/${a.ifName}`;
}

/** What a runtime passes on of its own environment. */
export function runtimeEnv(): Record<string, string> {
  const env: Record<string, string> = { RUST_BACKTRACE: "0", NO_COLOR: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return env;
}

/**
 * A plugin directory holding `hostnic` as a shell shim that runs `main.ts` with Deno (the
 * platform notes' way before a compiled binary exists). `--node-modules-dir=manual`: the plugin
 * imports no npm package, so Deno need not resolve them at each start. Removed on dispose.
 */
export async function hostnicPluginDir(): Promise<AsyncDisposable & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-cni-bin" });
  const main = new URL("../../main.ts", import.meta.url).pathname;
  await Deno.writeTextFile(
    `${dir}/hostnic`,
    `#!/bin/sh\nexec '${Deno.execPath()}' run -A --quiet --node-modules-dir=manual '${main}' "$@"\n`,
    { mode: 0o755 },
  );
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
