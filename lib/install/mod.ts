/**
 * Installing hostnic's CNI plugin on a node (the DaemonSet's init container runs `hostnic install`)
 * and removing it (`hostnic uninstall`).
 *
 * Invariants:
 * - Everything is validated before the first write; a bad flag, source or config writes nothing.
 * - Each file is replaced atomically (files.ts). The binary is installed first and the network
 *   config last, so a container runtime never sees a config whose plugin binary is missing;
 *   uninstall removes them in the opposite order.
 * - Idempotent: an unchanged file is not rewritten, and a crashed run's temp files are removed.
 * - Imports no npm package (runs in an init container, once per node start).
 */
import { errorMessage } from "../errors.ts";
import {
  checkCniConfig,
  type CheckedConfig,
  defaultConflist,
  formatOf,
  InstallError,
} from "./cni_config.ts";
import { removeFile, removeStaleTemps, sameFile, syncDir, writeAtomic } from "./files.ts";

export * from "./cni_config.ts";

export const INSTALL_DEFAULTS = {
  root: "/",
  binDir: "/opt/cni/bin",
  confDir: "/etc/cni/net.d",
  confName: "10-hostnic.conflist",
  binaryName: "hostnic",
} as const;

export const BINARY_MODE = 0o755;
export const CONFIG_MODE = 0o644;

/** File names a container runtime loads from the CNI config directory. */
const CNI_CONFIG_EXT = /\.(conflist|conf|json)$/;

export interface Layout {
  root: string;
  binDir: string;
  confDir: string;
  confName: string;
}

export interface InstallOptions extends Layout {
  /** The hostnic binary to copy, or the text of a plugin shim (`deno run`, see shim.ts). */
  source: string | { script: string };
  /** A CNI config file (the `hostnic-cni` ConfigMap key); default config when absent. */
  cniConfig?: string;
}

export interface FileResult {
  path: string;
  changed: boolean;
}

export interface InstallReport {
  binary: FileResult;
  config: FileResult & { plugins: string[] };
  /** Config files that sort before ours: the runtime uses the first one, not hostnic's. */
  shadowedBy: string[];
  /** Temp files of an earlier, interrupted run that were removed. */
  staleRemoved: string[];
}

export interface ResolvedLayout {
  binDir: string;
  confDir: string;
  binary: string;
  config: string;
  confName: string;
}

/** Checks the flags and joins them under `root`; messages name the flag. */
export function resolveLayout(l: Layout): ResolvedLayout {
  const abs = (flag: string, v: string) => {
    if (!v.startsWith("/")) throw new InstallError(`${flag} "${v}" must be an absolute path`);
    if (v.split("/").includes("..")) throw new InstallError(`${flag} "${v}" must not contain ".."`);
    return v.replace(/\/+$/, "") || "/";
  };
  const root = abs("--root", l.root);
  const binDir = abs("--bin-dir", l.binDir);
  const confDir = abs("--conf-dir", l.confDir);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(l.confName) || !CNI_CONFIG_EXT.test(l.confName)) {
    throw new InstallError(
      `--conf-name "${l.confName}" must be a file name ending in ".conflist", ".conf" or ".json"`,
    );
  }
  const under = (p: string) => (root === "/" ? p : `${root}${p === "/" ? "" : p}`);
  const bin = under(binDir);
  const conf = under(confDir);
  return {
    binDir: bin,
    confDir: conf,
    binary: `${bin}/${INSTALL_DEFAULTS.binaryName}`,
    config: `${conf}/${l.confName}`,
    confName: l.confName,
  };
}

async function requireDir(flag: string, path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new InstallError(`${flag} "${path}" cannot be used: ${errorMessage(err)}`);
  }
  if (!info.isDirectory) throw new InstallError(`${flag} "${path}" is not a directory`);
}

async function checkSource(source: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(source);
    (await Deno.open(source, { read: true })).close();
  } catch (err) {
    throw new InstallError(`Cannot read --source "${source}": ${errorMessage(err)}`);
  }
  if (!info.isFile) throw new InstallError(`--source "${source}" is not a regular file`);
  if (info.size === 0) throw new InstallError(`--source "${source}" is empty`);
}

async function loadConfig(opts: InstallOptions): Promise<CheckedConfig> {
  const format = formatOf(opts.confName);
  if (opts.cniConfig === undefined) {
    const list = defaultConflist();
    const text = format === "conflist" ? JSON.stringify(list) : JSON.stringify({
      cniVersion: list.cniVersion,
      name: list.name,
      ...(list.plugins as Record<string, unknown>[])[0],
    });
    return checkCniConfig(text, { source: "(default)", format });
  }
  let text: string;
  try {
    text = await Deno.readTextFile(opts.cniConfig);
  } catch (err) {
    throw new InstallError(`Cannot read --cni-config "${opts.cniConfig}": ${errorMessage(err)}`);
  }
  return checkCniConfig(text, { source: opts.cniConfig, format });
}

async function ensureDir(path: string): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new InstallError(`Cannot create directory "${path}": ${errorMessage(err)}`);
  }
}

/** Installs the binary, then the config. See the module invariants. */
export async function install(opts: InstallOptions): Promise<InstallReport> {
  const layout = resolveLayout(opts);
  await requireDir("--root", opts.root);
  const config = await loadConfig(opts);
  if (typeof opts.source === "string") await checkSource(opts.source);
  const configBytes = new TextEncoder().encode(config.text);

  await ensureDir(layout.binDir);
  await ensureDir(layout.confDir);
  const staleRemoved = [
    ...await removeStaleTemps(layout.binDir, INSTALL_DEFAULTS.binaryName),
    ...await removeStaleTemps(layout.confDir, layout.confName),
  ];

  const src = typeof opts.source === "string"
    ? { copyFrom: opts.source }
    : new TextEncoder().encode(opts.source.script);
  let binaryChanged = false;
  if (!await sameFile(layout.binary, src, BINARY_MODE)) {
    try {
      await writeAtomic(layout.binDir, INSTALL_DEFAULTS.binaryName, src, BINARY_MODE);
    } catch (err) {
      throw new InstallError(`Cannot install "${layout.binary}": ${errorMessage(err)}`);
    }
    binaryChanged = true;
  }
  let configChanged = false;
  if (!await sameFile(layout.config, configBytes, CONFIG_MODE)) {
    try {
      await writeAtomic(layout.confDir, layout.confName, configBytes, CONFIG_MODE);
    } catch (err) {
      throw new InstallError(`Cannot install "${layout.config}": ${errorMessage(err)}`);
    }
    configChanged = true;
  }

  const shadowedBy: string[] = [];
  for await (const e of Deno.readDir(layout.confDir)) {
    if (e.name !== layout.confName && CNI_CONFIG_EXT.test(e.name) && e.name < layout.confName) {
      shadowedBy.push(e.name);
    }
  }
  return {
    binary: { path: layout.binary, changed: binaryChanged },
    config: { path: layout.config, changed: configChanged, plugins: config.plugins },
    shadowedBy: shadowedBy.sort(),
    staleRemoved,
  };
}

export interface UninstallReport {
  removed: string[];
  absent: string[];
}

/** Removes the config, then the binary (and stray temp files). Absent files are not an error. */
export async function uninstall(l: Layout): Promise<UninstallReport> {
  const layout = resolveLayout(l);
  const removed: string[] = [];
  const absent: string[] = [];
  for (
    const [dir, name] of [
      [layout.confDir, layout.confName],
      [layout.binDir, INSTALL_DEFAULTS.binaryName],
    ] as const
  ) {
    const path = `${dir}/${name}`;
    try {
      if (await removeFile(path)) {
        removed.push(path);
        await syncDir(dir);
      } else {
        absent.push(path);
      }
      for (const t of await removeStaleTemps(dir, name)) removed.push(`${dir}/${t}`);
    } catch (err) {
      throw new InstallError(`Cannot remove "${path}": ${errorMessage(err)}`);
    }
  }
  return { removed, absent };
}
