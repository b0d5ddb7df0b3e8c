/**
 * QingCloud credentials and endpoint, in the SDK's config-file format (the same YAML keys as
 * `~/.qingcloud/config.yaml`), plus hostnic's `socket_path`: send the HTTP requests over this unix
 * socket instead of TCP. That exists for the Linux simulation, where the daemon runs inside an
 * instance network namespace that cannot reach the simulator's 127.0.0.1, while a socket path is
 * reachable from every namespace. host/port/uri still form the URL, Host header and signed path.
 *
 * Invariant: no error produced here contains a value from the file (the secret could be in it).
 */
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import { ConfigError, errorMessage } from "../errors.ts";

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The file's keys as written by the SDKs; unknown keys are ignored. */
export const IaasConfigFileSchema = z.object({
  qy_access_key_id: z.string().trim().min(1),
  qy_secret_access_key: z.string().trim().min(1),
  zone: z.string().trim().min(1),
  host: z.string().trim().min(1).default("api.qingcloud.com"),
  port: intFrom(1, 65535).default(443),
  protocol: z.enum(["https", "http"]).default("https"),
  uri: z.string().trim().startsWith("/").default("/iaas/"),
  connection_retries: intFrom(0, 100).default(3),
  /** Seconds. */
  connection_timeout: z.coerce.number().positive().max(3600).default(30),
  log_level: z.string().optional(),
  socket_path: z.string().trim().min(1).optional(),
});

export type IaasConfigFile = z.input<typeof IaasConfigFileSchema>;

/** The validated configuration the client uses. */
export interface IaasConfig {
  accessKeyId: string;
  secretAccessKey: string;
  zone: string;
  host: string;
  port: number;
  protocol: "https" | "http";
  /** Request path, also the path that is signed, e.g. `/iaas/`. */
  uri: string;
  /** Retries after the first attempt on transport errors and ret_code 5000/5100. */
  connectionRetries: number;
  /** Per-request timeout. */
  timeoutMs: number;
  /** When set, HTTP goes over this unix socket. */
  socketPath?: string;
}

/** Where a config came from, appended to error messages (a path, never content). */
export interface ConfigSource {
  source?: string;
}

function fail(key: string, msg: string, o: ConfigSource): never {
  throw new ConfigError(key, o.source ? `${msg} (in "${o.source}")` : msg);
}

/** Validates an already-parsed object (e.g. the simulator's `clientConfig()`). */
export function iaasConfigFromObject(raw: unknown, o: ConfigSource = {}): IaasConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    fail("(file)", "expected a mapping of QingCloud SDK keys", o);
  }
  const res = IaasConfigFileSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const key = issue.path.map(String).join(".") || "(file)";
    // Our own wording: zod messages for enums/strings never echo the value, but being explicit
    // keeps the invariant independent of zod's message text.
    fail(key, describeIssue(issue), o);
  }
  const f = res.data;
  return {
    accessKeyId: f.qy_access_key_id,
    secretAccessKey: f.qy_secret_access_key,
    zone: f.zone,
    host: f.host,
    port: f.port,
    protocol: f.protocol,
    uri: f.uri.replace(/\/{2,}/g, "/"),
    connectionRetries: f.connection_retries,
    timeoutMs: Math.round(f.connection_timeout * 1000),
    ...(f.socket_path ? { socketPath: f.socket_path } : {}),
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.input === undefined ? "is required" : `must be a ${issue.expected}`;
    case "too_small":
      return issue.origin === "string" ? "must not be empty" : `must be at least ${issue.minimum}`;
    case "too_big":
      return `must be at most ${issue.maximum}`;
    case "invalid_value":
      return `must be one of ${issue.values.map((v) => `"${String(v)}"`).join(", ")}`;
    case "invalid_format":
      return issue.format === "starts_with" ? `must start with "/"` : `has a bad format`;
    default:
      return "is invalid";
  }
}

/** Parses the YAML text of an SDK config file. */
export function parseIaasConfig(text: string, o: ConfigSource = {}): IaasConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    // YAML errors quote the offending source line, which may hold the secret: keep only where.
    const where = err instanceof YAMLParseError && err.linePos
      ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}`
      : "";
    fail("(file)", `not valid YAML${where}`, o);
  }
  return iaasConfigFromObject(raw, o);
}

/** Reads and parses an SDK config file. */
export async function loadIaasConfig(path: string): Promise<IaasConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(path, `cannot read the QingCloud config file: ${errorMessage(err)}`);
  }
  return parseIaasConfig(text, { source: path });
}

/** `protocol://host:port` + uri: the URL requests go to (the Go SDK always writes the port). */
export function iaasEndpoint(cfg: IaasConfig): string {
  return `${cfg.protocol}://${cfg.host}:${cfg.port}${cfg.uri}`;
}
