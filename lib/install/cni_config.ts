/**
 * The CNI network configuration `hostnic install` writes to /etc/cni/net.d: the `hostnic-cni` key of
 * ConfigMap `hostnic-cfg-cm`, checked before anything is written, or a default one.
 *
 * Accepted input: a network configuration list whose first plugin is hostnic (the plugin that
 * creates the interface; portmap, bandwidth … may follow), or upstream's single-plugin `.conf`
 * object, which is wrapped into a list when the target is a `.conflist`. hostnic's own entry is
 * validated with the plugin's parser, so a config the plugin would reject at ADD time is rejected
 * here, naming the field.
 */
import { HOSTNIC_DEFAULTS, parseNetConf } from "../cni/config.ts";
import { isSupportedVersion, SUPPORTED_VERSIONS } from "../cni/version.ts";
import { errorMessage, HostnicError } from "../errors.ts";

/** `hostnic install`/`uninstall` failed; the message says what and where. */
export class InstallError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("INSTALL_FAILED", message, options);
  }
}

export type ConfFormat = "conflist" | "conf";

export const PLUGIN_TYPE = "hostnic";
export const DEFAULT_NETWORK_NAME = "hostnic";
export const DEFAULT_CNI_VERSION = "1.0.0";

/** The file format a config name implies: `.conflist` → list; `.conf`/`.json` → one plugin. */
export function formatOf(confName: string): ConfFormat {
  return confName.endsWith(".conflist") ? "conflist" : "conf";
}

/** The list written when no `--cni-config` is given: hostnic alone, with its defaults spelled out. */
export function defaultConflist(): Record<string, unknown> {
  return {
    cniVersion: DEFAULT_CNI_VERSION,
    name: DEFAULT_NETWORK_NAME,
    plugins: [{
      type: PLUGIN_TYPE,
      vethPrefix: HOSTNIC_DEFAULTS.vethPrefix,
      mtu: HOSTNIC_DEFAULTS.mtu,
      hairpin: HOSTNIC_DEFAULTS.hairpin,
      natMark: `0x${HOSTNIC_DEFAULTS.natMark.toString(16)}`,
      socketPath: HOSTNIC_DEFAULTS.socketPath,
      logLevel: HOSTNIC_DEFAULTS.logLevel,
    }],
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface CheckedConfig {
  /** What to write (pretty JSON, newline-terminated). */
  text: string;
  format: ConfFormat;
  /** Plugin types in chain order. */
  plugins: string[];
  /** The hostnic entry's socket path (where the plugin will look for the daemon). */
  socketPath: string;
}

/**
 * Validates a CNI config for the target format; `source` names the file in messages. Returns the
 * text to write. Throws `InstallError` naming the file and the field.
 */
export function checkCniConfig(
  text: string,
  opts: { source: string; format: ConfFormat },
): CheckedConfig {
  const where = `CNI config "${opts.source}"`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InstallError(`${where} is not valid JSON: ${errorMessage(err)}`);
  }
  if (!isObject(value)) throw new InstallError(`${where} must be a JSON object`);

  const isList = value.plugins !== undefined;
  const version = value.cniVersion;
  if (!isSupportedVersion(version)) {
    throw new InstallError(
      `${where}: "cniVersion" must be one of ${SUPPORTED_VERSIONS.join(", ")}, got ${
        JSON.stringify(version)
      }`,
    );
  }
  if (typeof value.name !== "string" || value.name === "") {
    throw new InstallError(`${where}: "name" is required (the network name)`);
  }

  let plugins: Record<string, unknown>[];
  let top: Record<string, unknown>;
  if (isList) {
    if (!Array.isArray(value.plugins) || value.plugins.length === 0) {
      throw new InstallError(`${where}: "plugins" must be a non-empty list`);
    }
    value.plugins.forEach((p, i) => {
      if (!isObject(p) || typeof p.type !== "string" || p.type === "") {
        throw new InstallError(`${where}: "plugins[${i}]" must be an object with a "type"`);
      }
      if (/[/\\]/.test(p.type)) {
        throw new InstallError(`${where}: "plugins[${i}].type" must be a plain binary name`);
      }
    });
    plugins = value.plugins as Record<string, unknown>[];
    const { plugins: _p, ...rest } = value;
    top = rest;
    if (opts.format === "conf") {
      if (plugins.length > 1) {
        throw new InstallError(
          `${where} is a list of ${plugins.length} plugins; a ".conf" file holds one: ` +
            `use a --conf-name ending in ".conflist"`,
        );
      }
    }
  } else {
    if (value.type === undefined) {
      throw new InstallError(`${where} has neither "plugins" (a list) nor "type" (one plugin)`);
    }
    const { cniVersion: _v, name: _n, ...entry } = value;
    plugins = [entry];
    top = { cniVersion: value.cniVersion, name: value.name };
  }

  if (plugins[0].type !== PLUGIN_TYPE) {
    const hostnicAt = plugins.findIndex((p) => p.type === PLUGIN_TYPE);
    throw new InstallError(
      hostnicAt < 0
        ? `${where} has no "${PLUGIN_TYPE}" plugin`
        : `${where}: "${PLUGIN_TYPE}" must be the first plugin (it creates the interface), ` +
          `found at plugins[${hostnicAt}]`,
    );
  }
  let socketPath: string;
  try {
    const conf = parseNetConf(
      { ...plugins[0], cniVersion: version, name: value.name },
      { command: "ADD", version },
    );
    socketPath = conf.hostnic.socketPath;
  } catch (err) {
    throw new InstallError(
      `${where}: ${isList ? "plugins[0]" : "hostnic"}: ${errorMessage(err)}`,
    );
  }

  const out = opts.format === "conflist"
    ? { ...top, plugins }
    : { ...top, ...plugins[0], cniVersion: version, name: value.name };
  return {
    text: JSON.stringify(out, null, 2) + "\n",
    format: opts.format,
    plugins: plugins.map((p) => p.type as string),
    socketPath,
  };
}
