/**
 * The CNI plugin's handlers: each verb is one call to the node daemon over its socket; the daemon
 * owns the pool, the store and the datapath. Only DEL has a path of its own: when the daemon cannot
 * be reached it tears down what the plugin can find (pod link, host veth, host rules) and leaves a
 * durable release record for the daemon to replay, so a DEL never fails for lack of the daemon.
 *
 * Imported on the plugin path: no npm packages (start-up cost); lib/linux and the journal are
 * loaded only when DEL needs them.
 */
import type { AddReply, AddRequest, CniSettings, StatusReply } from "../daemon/api.ts";
import { errorMessage } from "../errors.ts";
import type {
  AddRequest as CniAddRequest,
  CheckRequest as CniCheckRequest,
  CniHandlers,
  DelRequest as CniDelRequest,
  GcRequest as CniGcRequest,
} from "../cni/dispatch.ts";
import type { NetConf } from "../cni/config.ts";
import { CniCode, CniError } from "../cni/errors.ts";
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

/** The fixed IP a runtime asked for: capability `ips`, `args.cni.ips`, the annotation arg, `IP=`. */
function requestedIp(req: CniAddRequest): string | undefined {
  const raw = req.config.runtimeConfig.ips?.[0] ?? req.config.args?.cni?.ips?.[0] ??
    req.args.hostnicIp ?? req.args.ip;
  return raw?.split("/")[0];
}

function requestedType(req: CniAddRequest): "passthrough" | undefined {
  const t = req.args.hostnicType;
  if (t === undefined || t === "") return undefined;
  if (t !== "passthrough") {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `Invalid CNI_ARGS "hostnic.network.kubesphere.io/type" "${t}": only "passthrough" is known`,
    );
  }
  return "passthrough";
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

export function daemonHandlers(
  opts: { client?: (socketPath: string) => RpcClient; log?: PluginLog } = {},
): CniHandlers {
  const clientFor = opts.client ?? ((p: string) => new RpcClient(p));
  const log = opts.log ?? (() => {});
  return {
    async add(req) {
      const socket = req.config.hostnic.socketPath;
      const body: AddRequest = {
        containerId: req.containerId,
        ifName: req.ifname,
        netns: req.netns,
        ...(req.args.k8sPodNamespace ? { podNamespace: req.args.k8sPodNamespace } : {}),
        ...(req.args.k8sPodName ? { podName: req.args.k8sPodName } : {}),
        settings: settingsOf(req.config),
      };
      const vxnet = req.args.hostnicVxnet;
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
        ...(req.args.k8sPodNamespace ? { podNamespace: req.args.k8sPodNamespace } : {}),
        ...(req.args.k8sPodName ? { podName: req.args.k8sPodName } : {}),
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
      try {
        await clientFor(socket).call(RPC.cniCheck, {
          containerId: req.containerId,
          ifName: req.ifname,
          netns: req.netns,
          ...(req.args.k8sPodNamespace ? { podNamespace: req.args.k8sPodNamespace } : {}),
          ...(req.args.k8sPodName ? { podName: req.args.k8sPodName } : {}),
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
    ...(req.args.k8sPodNamespace ? { podNamespace: req.args.k8sPodNamespace } : {}),
    ...(req.args.k8sPodName ? { podName: req.args.k8sPodName } : {}),
    ...(ip ? { ip } : {}),
    mode,
    reason: `daemon unreachable: ${why}${teardownError}`,
    time: new Date().toISOString(),
  });
}
