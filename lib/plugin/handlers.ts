/**
 * The CNI plugin's handlers: each verb is one call to the node daemon over its socket; the daemon
 * owns the pool, the store and the datapath. Only DEL has a path of its own: when the daemon cannot
 * be reached it tears down what the plugin can find (pod link, host veth, host rules) and leaves a
 * durable release record for the daemon to replay, so a DEL never fails for lack of the daemon.
 *
 * What the plugin can judge itself it refuses before the daemon acts (which for ADD means taking a
 * NIC from the pool): a CNI_NETNS that does not exist or is no namespace (ADD, CHECK), and
 * malformed requested addresses, vxnets or types (ADD).
 *
 * Imported on the plugin path: no npm packages (start-up cost); lib/linux and the journal are
 * loaded only when DEL needs them.
 */
import type { AddReply, AddRequest, CniSettings, StatusReply } from "../rpc/api.ts";
import { errorMessage } from "../errors.ts";
import type {
  AddRequest as CniAddRequest,
  CheckRequest as CniCheckRequest,
  CniHandlers,
  DelRequest as CniDelRequest,
  GcRequest as CniGcRequest,
} from "../cni/dispatch.ts";
import type { NetConf } from "../cni/config.ts";
import { CniCode, CniError, quote } from "../cni/errors.ts";
import { parseIp, parseIpMaybeCidr } from "../cni/net.ts";
import type { Result } from "../cni/result.ts";
import { daemonUnreachable } from "../cni/unavailable.ts";
import { DaemonUnreachableError, RpcClient } from "../rpc/client.ts";
import { RPC, RpcError } from "../rpc/protocol.ts";

export interface PluginLog {
  (msg: string): void;
}

/** How long ADD may wait for the daemon (the pool may be filling: allocTimeout is 60 s). */
const ADD_TIMEOUT_MS = 120_000;
const SHORT_TIMEOUT_MS = 10_000;

function settingsOf(config: NetConf): CniSettings {
  const h = config.hostnic;
  return {
    vethPrefix: h.vethPrefix,
    mtu: h.mtu,
    ...(h.serviceCIDR ? { serviceCIDR: h.serviceCIDR } : {}),
    hairpin: h.hairpin,
    natMark: h.natMark,
  };
}

const ANNOTATION = "hostnic.network.kubesphere.io";
/** A vxnet ID as the daemon accepts it (lib/config.ts `vxnetId`, which the plugin cannot import). */
const VXNET_ID = /^vxnet-[a-z0-9]+$/;

function badArg(key: string, value: string, expected: string): CniError {
  return new CniError(
    CniCode.InvalidEnvironment,
    `Invalid CNI_ARGS "${key}" ${quote(value)}: ${expected}`,
  );
}

/**
 * An IPv4 address from a requested-IP source: `<ip>` or, where `prefixOk`, `<ip>/<prefix>`. The
 * prefix is dropped: the address's subnet is the vxnet's. `undefined` when the text is not one.
 */
function ipv4Of(text: string, prefixOk: boolean): string | undefined {
  const parsed = prefixOk ? parseIpMaybeCidr(text) : parseIp(text);
  if (!parsed) return undefined;
  const ip = "ip" in parsed ? parsed.ip : parsed;
  return ip.family === 4 ? text.split("/")[0] : undefined;
}

/** Requested addresses from the config (`runtimeConfig.ips`, `args.cni.ips`): one IPv4 at most. */
function configIp(list: string[] | undefined, field: string): string | undefined {
  if (list === undefined || list.length === 0) return undefined;
  if (list.length > 1) {
    throw new CniError(
      CniCode.InvalidConfig,
      `Invalid "${field}": hostnic gives an interface one address, got ${list.length}`,
    );
  }
  const ip = ipv4Of(list[0], true);
  if (!ip) {
    throw new CniError(
      CniCode.InvalidConfig,
      `Invalid "${field}[0]": hostnic gives IPv4 addresses only, got ${quote(list[0])}`,
    );
  }
  return ip;
}

/**
 * The fixed IP a runtime asked for: capability `ips`, `args.cni.ips`, the annotation arg, `IP=`
 * (first present wins). Every source given is validated, so a malformed one is refused instead of
 * being cut down to something that looks like an address; an empty CNI_ARGS value means "unset".
 */
function requestedIp(req: CniAddRequest): string | undefined {
  const fromRuntime = configIp(req.config.runtimeConfig.ips, "runtimeConfig.ips");
  const fromArgs = configIp(req.config.args?.cni?.ips, "args.cni.ips");
  let fromAnnotation: string | undefined;
  const a = req.args.hostnicIp;
  if (a !== undefined && a !== "") {
    fromAnnotation = ipv4Of(a, false);
    if (!fromAnnotation) throw badArg(`${ANNOTATION}/ip`, a, "expected an IPv4 address");
  }
  let fromIpArg: string | undefined;
  const legacy = req.args.ip;
  if (legacy !== undefined && legacy !== "") {
    fromIpArg = ipv4Of(legacy, true);
    if (!fromIpArg) throw badArg("IP", legacy, "expected an IPv4 address, optionally with /prefix");
  }
  return fromRuntime ?? fromArgs ?? fromAnnotation ?? fromIpArg;
}

function requestedVxnet(req: CniAddRequest): string | undefined {
  const v = req.args.hostnicVxnet;
  if (v === undefined || v === "") return undefined;
  if (!VXNET_ID.test(v)) throw badArg(`${ANNOTATION}/vxnet`, v, 'expected "vxnet-<id>"');
  return v;
}

function requestedType(req: CniAddRequest): "passthrough" | undefined {
  const t = req.args.hostnicType;
  if (t === undefined || t === "") return undefined;
  if (t !== "passthrough") {
    throw badArg(`${ANNOTATION}/type`, t, 'only "passthrough" is known');
  }
  return "passthrough";
}

/** The pod's Kubernetes namespace and name from CNI_ARGS, as the daemon's requests carry them. */
function podOf(req: { args: { k8sPodNamespace?: string; k8sPodName?: string } }): {
  podNamespace?: string;
  podName?: string;
} {
  return {
    ...(req.args.k8sPodNamespace ? { podNamespace: req.args.k8sPodNamespace } : {}),
    ...(req.args.k8sPodName ? { podName: req.args.k8sPodName } : {}),
  };
}

/**
 * The daemon request for an ADD, or the CNI error for a request hostnic cannot serve as asked
 * (code 4 for CNI_ARGS, 7 for config). Checked here, before the daemon takes a NIC for the pod.
 */
export function addRequestOf(req: CniAddRequest): AddRequest {
  const body: AddRequest = {
    containerId: req.containerId,
    ifName: req.ifname,
    netns: req.netns,
    ...podOf(req),
    settings: settingsOf(req.config),
  };
  const vxnet = requestedVxnet(req);
  if (vxnet) body.vxnet = vxnet;
  const ip = requestedIp(req);
  if (ip) body.ip = ip;
  const type = requestedType(req);
  if (type) body.type = type;
  const routes = req.config.ipam?.routes ?? [];
  if (type === "passthrough" && routes.length > 0) {
    body.routes = routes.map((r) => ({
      dst: r.dst,
      ...(r.gw ? { gw: r.gw } : {}),
      viaGatewayNic: r.viaGatewayNic,
    }));
  }
  return body;
}

/** What a CNI_NETNS path is: a namespace, missing, something else, or not knowable from here. */
export type NetnsKind = "netns" | "missing" | "other" | "unknown";

/**
 * Namespace files (`/run/netns/<name>` bind mounts, `/proc/<pid>/ns/net`) all live on nsfs, whose
 * device is the one of this process's own `/proc/self/ns/net`.
 */
export async function netnsKindOf(path: string): Promise<NetnsKind> {
  let nsfsDev: number;
  try {
    nsfsDev = (await Deno.stat("/proc/self/ns/net")).dev;
  } catch {
    return "unknown";
  }
  try {
    const st = await Deno.stat(path);
    return st.isFile && st.dev === nsfsDev ? "netns" : "other";
  } catch (err) {
    return err instanceof Deno.errors.NotFound ? "missing" : "unknown";
  }
}

/**
 * ADD and CHECK need the pod's namespace: refuse one that does not exist (3, as for an unknown
 * container) or is not a namespace (4) before the daemon acts. Unknowable (permissions): let the
 * daemon decide.
 */
async function requireNetns(netns: string, kindOf: (p: string) => Promise<NetnsKind>) {
  const kind = await kindOf(netns);
  if (kind === "missing") {
    throw new CniError(
      CniCode.UnknownContainer,
      `Network namespace CNI_NETNS ${quote(netns)} does not exist`,
    );
  }
  if (kind === "other") {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `Invalid CNI_NETNS ${quote(netns)}: not a network namespace`,
    );
  }
}

/** A daemon failure as the CNI error the runtime should see. */
function cniErrorOf(err: unknown, socketPath: string, unreachableCode: 11 | 50): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof DaemonUnreachableError) {
    const e = daemonUnreachable(socketPath, unreachableCode);
    return new CniError(e.cniCode, `${e.message} (${err.message})`, { details: e.details });
  }
  if (err instanceof RpcError) {
    let code = err.cniCode;
    if (code === undefined) {
      code = err.reason === "BAD_REQUEST"
        ? CniCode.InvalidEnvironment
        : err.reason === "UNSUPPORTED_VERSION" || err.reason === "NOT_FOUND"
        ? CniCode.DaemonProtocol
        : CniCode.Internal;
    }
    const field = err.field ? ` (field "${err.field}")` : "";
    return new CniError(code, `hostnic daemon: ${err.message}${field}`);
  }
  return new CniError(CniCode.Internal, errorMessage(err));
}

/** The CNI result of an ADD; a second nic-mode interface (not eth0) carries no default route. */
export function resultOf(reply: AddReply, config: NetConf, ifName = "eth0"): Result {
  const secondary = reply.mode === "nic" && ifName !== "eth0";
  return {
    interfaces: reply.interfaces.map((i) => ({
      name: i.name,
      mac: i.mac,
      ...(i.sandbox !== undefined ? { sandbox: i.sandbox } : {}),
    })),
    ips: [{ address: reply.address, gateway: reply.gateway, interface: reply.interfaceIndex }],
    routes: [
      ...(secondary ? [] : [{ dst: "0.0.0.0/0", gw: reply.gateway }]),
      ...reply.routes.map((r) => ({ dst: r.dst, gw: r.gw })),
    ],
    dns: config.dns ?? {},
  };
}

export interface HandlerOptions {
  client?: (socketPath: string) => RpcClient;
  log?: PluginLog;
  /** What a CNI_NETNS path is (default: `netnsKindOf`, a stat). */
  netnsKind?: (path: string) => Promise<NetnsKind>;
}

export function daemonHandlers(opts: HandlerOptions = {}): CniHandlers {
  const clientFor = opts.client ?? ((p: string) => new RpcClient(p));
  const log = opts.log ?? (() => {});
  const kindOf = opts.netnsKind ?? netnsKindOf;
  return {
    async add(req) {
      const socket = req.config.hostnic.socketPath;
      const body = addRequestOf(req);
      await requireNetns(req.netns, kindOf);
      try {
        const reply = await clientFor(socket).call<AddReply>(RPC.cniAdd, body, {
          timeoutMs: ADD_TIMEOUT_MS,
        });
        return resultOf(reply, req.config, req.ifname);
      } catch (err) {
        throw cniErrorOf(err, socket, 11);
      }
    },

    async del(req) {
      const socket = req.config.hostnic.socketPath;
      const body = {
        containerId: req.containerId,
        ifName: req.ifname,
        netns: req.netns ?? "",
        ...podOf(req),
      };
      try {
        await clientFor(socket).call(RPC.cniDel, body, { timeoutMs: SHORT_TIMEOUT_MS * 3 });
      } catch (err) {
        if (!(err instanceof DaemonUnreachableError)) throw cniErrorOf(err, socket, 11);
        log(`daemon unreachable (${err.message}); releasing locally and journaling`);
        await delWithoutDaemon(req, err.message);
      }
    },

    async check(req) {
      const socket = req.config.hostnic.socketPath;
      await requireNetns(req.netns, kindOf);
      try {
        await clientFor(socket).call(RPC.cniCheck, {
          containerId: req.containerId,
          ifName: req.ifname,
          netns: req.netns,
          ...podOf(req),
          settings: settingsOf(req.config),
        }, { timeoutMs: SHORT_TIMEOUT_MS });
      } catch (err) {
        throw cniErrorOf(err, socket, 11);
      }
      checkPrevResult(req);
    },

    async status(req) {
      const socket = req.config.hostnic.socketPath;
      let st: StatusReply;
      try {
        st = await clientFor(socket).call<StatusReply>(RPC.cniStatus, {}, {
          timeoutMs: SHORT_TIMEOUT_MS,
        });
      } catch (err) {
        throw cniErrorOf(err, socket, 50);
      }
      if (!st.ready) {
        throw new CniError(
          CniCode.NotAvailable,
          `hostnic cannot network new pods on this node: ${st.reason ?? "not ready"}`,
        );
      }
    },

    async gc(req: CniGcRequest) {
      const socket = req.config.hostnic.socketPath;
      try {
        await clientFor(socket).call(RPC.cniGc, {
          validAttachments: req.validAttachments.map((a) => ({
            containerId: a.containerID,
            ifName: a.ifname,
          })),
        }, { timeoutMs: SHORT_TIMEOUT_MS * 6 });
      } catch (err) {
        // GC is best effort: with the daemon down there is nothing the plugin could collect.
        if (err instanceof DaemonUnreachableError) return;
        throw cniErrorOf(err, socket, 11);
      }
    },
  };
}

/** CHECK: the runtime's prevResult must carry the address to check (the daemon checks the kernel). */
function checkPrevResult(req: CniCheckRequest): void {
  const ips = req.prevResult.ips;
  if (ips.length === 0) {
    throw new CniError(CniCode.InvalidConfig, "prevResult has no IP address to check");
  }
}

/**
 * DEL with the daemon down: remove the pod's links and the host rules of its address (known from
 * prevResult when the runtime sends it), then journal the release for the daemon.
 */
async function delWithoutDaemon(req: CniDelRequest, why: string): Promise<void> {
  const [{ teardownPod, CommandRunner }, { writeReleaseRecord }] = await Promise.all([
    import("../linux/mod.ts"),
    import("../store/journal.ts"),
  ]);
  const prev = req.config.prevResult;
  const ip = prev?.ips[0]?.address.split("/")[0];
  const hostSide = prev?.interfaces.some((i) => i.sandbox === undefined || i.sandbox === "");
  const mode = prev && !hostSide ? "passthrough" : "nic";
  const pod = {
    containerId: req.containerId,
    k8sNamespace: req.args.k8sPodNamespace,
    podName: req.args.k8sPodName,
    ifName: req.ifname,
  };
  let teardownError = "";
  try {
    await teardownPod({ runner: new CommandRunner() }, {
      mode,
      pod,
      ifName: req.ifname,
      netns: req.netns,
      ...(ip ? { ip } : {}),
      vethPrefix: req.config.hostnic.vethPrefix,
    });
  } catch (err) {
    teardownError = `; local teardown incomplete: ${errorMessage(err)}`;
  }
  await writeReleaseRecord(req.config.hostnic.journalDir, {
    containerId: req.containerId,
    ifName: req.ifname,
    ...(req.netns ? { netns: req.netns } : {}),
    ...podOf(req),
    ...(ip ? { ip } : {}),
    mode,
    reason: `daemon unreachable: ${why}${teardownError}`,
    time: new Date().toISOString(),
  });
}
