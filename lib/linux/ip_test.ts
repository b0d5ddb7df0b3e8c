import assert from "node:assert/strict";
import {
  classifyMessage,
  isNetnsMissing,
  NetnsNotFoundError,
  parseBatchFailure,
} from "./errors.ts";
import { ExecError } from "./exec.ts";
import { batchError, FakeRunner } from "./fake_runner.ts";
import {
  describeRule,
  findRoute,
  hasNeigh,
  hasRule,
  neighAddLine,
  parseNsState,
  readNsState,
  routeAddLine,
  routeDelLine,
  ruleAddLine,
  runIpBatchForgiving,
  STATE_SCRIPT,
} from "./ip.ts";

// Shapes as printed by iproute2 6.1 `ip -4 -json -d -batch -` (trimmed).
const SAMPLE = [
  JSON.stringify([
    {
      ifindex: 1,
      ifname: "lo",
      flags: ["LOOPBACK", "UP"],
      mtu: 65536,
      address: "00:00:00:00:00:00",
    },
    {
      ifindex: 3,
      ifname: "hostnic_261",
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      mtu: 1500,
      address: "52:54:AA:00:00:01",
      ifalias: "eth1",
      linkinfo: { info_kind: "veth" },
    },
  ]),
  JSON.stringify([{
    ifname: "eth0",
    addr_info: [{ family: "inet", local: "172.22.0.2", prefixlen: 24 }, {
      family: "inet6",
      local: "fe80::1",
      prefixlen: 64,
    }],
  }]),
  JSON.stringify([
    { dst: "default", gateway: "172.22.1.1", dev: "hostnic_261", table: "261", flags: [] },
    { dst: "172.22.1.0/24", dev: "hostnic_261", table: "261", scope: "link", flags: [] },
    { dst: "172.22.1.5", dev: "vnicabc", scope: "link", flags: [] },
    { type: "local", dst: "172.22.0.2", dev: "eth0", table: "local", scope: "host" },
  ]),
  JSON.stringify([
    { priority: 0, src: "all", table: "local" },
    { priority: 1534, src: "all", fwmark: "0x10000", fwmask: "0x10000", table: "main" },
    { priority: 1535, src: "all", dst: "172.22.1.5", iif: "hostnic_261", table: "main" },
    { priority: 1536, src: "172.22.1.0", srclen: 24, table: "261" },
  ]),
  JSON.stringify([
    { dst: "169.254.1.1", dev: "eth0", lladdr: "EE:00:00:00:00:01", state: ["PERMANENT"] },
    { dst: "172.22.0.1", dev: "eth0", lladdr: "02:00:00:00:00:09", state: ["REACHABLE"] },
  ]),
  JSON.stringify([{ dst: "172.22.1.7", dev: "hostnic_261", proxy: null }]),
].join("\n") + "\n";

Deno.test("parseNsState normalises tables, prefixes, MACs and flags", () => {
  const s = parseNsState(SAMPLE);
  const nic = s.links.find((l) => l.name === "hostnic_261")!;
  assert.deepEqual(
    { up: nic.up, alias: nic.alias, kind: nic.kind, mac: nic.mac },
    { up: true, alias: "eth1", kind: "veth", mac: "52:54:AA:00:00:01" },
  );
  assert.deepEqual(s.addrs, [{ dev: "eth0", cidr: "172.22.0.2/24" }]);
  assert.deepEqual(s.routes.map((r) => `${r.table} ${r.dst} ${r.type}`), [
    "261 0.0.0.0/0 unicast",
    "261 172.22.1.0/24 unicast",
    "254 172.22.1.5/32 unicast",
    "255 172.22.0.2/32 local",
  ]);
  assert.ok(hasRule(s, { priority: 1534, fwmark: { value: 0x10000, mask: 0x10000 }, table: 254 }));
  assert.ok(hasRule(s, { priority: 1535, to: "172.22.1.5", iif: "hostnic_261", table: 254 }));
  assert.ok(!hasRule(s, { priority: 1535, to: "172.22.1.5", table: 254 }), "iif must match");
  assert.ok(hasRule(s, { priority: 1536, from: "172.22.1.0/24", table: 261 }));
  assert.ok(hasNeigh(s, { dst: "169.254.1.1", dev: "eth0", lladdr: "ee:00:00:00:00:01" }));
  assert.ok(!hasNeigh(s, { dst: "172.22.0.1", dev: "eth0", lladdr: "02:00:00:00:00:09" }));
  assert.ok(hasNeigh(s, { dst: "172.22.1.7", dev: "hostnic_261", proxy: true }));
  assert.ok(findRoute(s, { dst: "default", via: "172.22.1.1", table: 261 }));
  assert.ok(!findRoute(s, { dst: "default", via: "172.22.1.9", table: 261 }));
});

Deno.test("readNsState is one spawn of ip -4 -json -d -batch inside the namespace", async () => {
  const runner = new FakeRunner(() => ({ stdout: SAMPLE, stderr: "" }));
  await readNsState({ runner }, "/proc/1/ns/net");
  assert.deepEqual(runner.calls, [{
    argv: ["ip", "-4", "-json", "-d", "-batch", "-"],
    netns: "/proc/1/ns/net",
    stdin: STATE_SCRIPT,
  }]);
});

Deno.test("spec lines render as ip -batch commands", () => {
  assert.equal(
    routeAddLine({ dst: "default", via: "172.22.1.1", dev: "hostnic_261", table: 261 }),
    "route replace default via 172.22.1.1 dev hostnic_261 table 261",
  );
  assert.equal(
    routeDelLine({ dst: "10.0.0.0/8", via: "169.254.1.1", src: "1.2.3.4", scope: "link" }),
    "route del 10.0.0.0/8 via 169.254.1.1",
  );
  assert.equal(
    ruleAddLine({ priority: 1534, fwmark: { value: 0x10000, mask: 0x10000 }, table: 254 }),
    "rule add priority 1534 fwmark 0x10000/0x10000 lookup main",
  );
  assert.equal(
    describeRule({ priority: 1536, from: "172.22.1.5", table: 261 }),
    "rule 1536 from 172.22.1.5 lookup 261",
  );
  assert.equal(
    neighAddLine({ dst: "172.22.1.5", dev: "hostnic_261", proxy: true }),
    "neigh replace proxy 172.22.1.5 dev hostnic_261",
  );
});

Deno.test("error classification is decided on stderr in one place", () => {
  assert.equal(classifyMessage('Cannot find device "vnic1"'), "not-found");
  assert.equal(classifyMessage("RTNETLINK answers: No such process"), "not-found");
  assert.equal(classifyMessage("RTNETLINK answers: Cannot assign requested address"), "not-found");
  assert.equal(classifyMessage("RTNETLINK answers: File exists"), "exists");
  assert.equal(classifyMessage("Error: mtu greater than device maximum."), "other");
  assert.equal(
    classifyMessage("nsenter: cannot open /run/netns/x: No such file or directory"),
    "netns-missing",
  );
  assert.ok(isNetnsMissing(new ExecError(["nsenter"], 1, "nsenter: cannot open /x: No such file")));
  assert.deepEqual(parseBatchFailure("RTNETLINK answers: File exists\nCommand failed -:2\n"), {
    line: 2,
    message: "RTNETLINK answers: File exists",
  });
  assert.equal(parseBatchFailure("RTNETLINK answers: No such file or directory\n"), undefined);
  assert.equal(new NetnsNotFoundError("/x").code, "NETNS_NOT_FOUND");
});

Deno.test("runIpBatchForgiving skips not-found lines and keeps going", async () => {
  const script = ["link del a", "rule del priority 1 lookup 9", "link set dev b down", "x"];
  const runner = new FakeRunner((c) => {
    const lines = c.stdin!.trim().split("\n");
    if (lines[0] === "link del a") return batchError(1, 'Cannot find device "a"');
    const bad = lines.indexOf("link set dev b down");
    if (bad >= 0) return batchError(bad + 1, "RTNETLINK answers: Operation not permitted");
    return { stdout: "", stderr: "" };
  });
  const res = await runIpBatchForgiving({ runner }, script, { netns: "n" });
  assert.deepEqual(res, {
    failures: ['"link set dev b down": RTNETLINK answers: Operation not permitted'],
    netnsMissing: false,
  });
  assert.deepEqual(runner.calls.map((c) => c.stdin!.trim().split("\n").length), [4, 3, 1]);
});

Deno.test("runIpBatchForgiving goes line by line when ip does not say which line failed", async () => {
  // `ip neigh del` exits at once on error, without "Command failed -:N".
  const runner = new FakeRunner((c) => {
    const lines = c.stdin!.trim().split("\n");
    if (lines.length > 1) {
      return new ExecError(["ip"], 2, "RTNETLINK answers: No such file or directory\n");
    }
    if (lines[0].startsWith("neigh del")) {
      return new ExecError(["ip"], 2, "RTNETLINK answers: No such file or directory\n");
    }
    return { stdout: "", stderr: "" };
  });
  const res = await runIpBatchForgiving(
    { runner },
    ["neigh del proxy 1.2.3.4 dev x", "rule del priority 1535 to 1.2.3.4 lookup main"],
    { netns: undefined },
  );
  assert.deepEqual(res.failures, []);
  assert.deepEqual(runner.calls.map((c) => c.stdin!.trim()), [
    "neigh del proxy 1.2.3.4 dev x\nrule del priority 1535 to 1.2.3.4 lookup main",
    "neigh del proxy 1.2.3.4 dev x",
    "rule del priority 1535 to 1.2.3.4 lookup main",
  ]);
});

Deno.test("runIpBatchForgiving reports a vanished namespace instead of failing", async () => {
  const runner = new FakeRunner(() =>
    new ExecError(["nsenter"], 1, "nsenter: cannot open /proc/9/ns/net: No such file or directory")
  );
  assert.deepEqual(
    await runIpBatchForgiving({ runner }, ["link del eth0"], { netns: "/proc/9/ns/net" }),
    {
      failures: [],
      netnsMissing: true,
    },
  );
});
