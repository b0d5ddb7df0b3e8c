import assert from "node:assert/strict";
import {
  decodeConfig,
  HOSTNIC_DEFAULTS,
  MAX_CONFIG_BYTES,
  type NetConf,
  parseNetConf,
  type ParseOptions,
  peekVersion,
} from "./config.ts";
import { CniError } from "./errors.ts";
import { SUPPORTED_VERSIONS } from "./version.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const ADD: ParseOptions = { command: "ADD", version: "1.0.0" };
const BASE = { cniVersion: "1.0.0", name: "hostnic", type: "hostnic" };

function failure(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err;
  }
  throw new Error("expected a CniError");
}

function parse(extra: Record<string, unknown>, opts: ParseOptions = ADD): NetConf {
  return parseNetConf({ ...BASE, ...extra }, opts);
}

Deno.test("decodeConfig: size, encoding, JSON, object", async (t) => {
  await t.step("ok", () => assert.deepEqual(decodeConfig(enc(' {"a":1} ')), { a: 1 }));
  const cases: [string, Uint8Array, number, RegExp][] = [
    ["empty", enc(""), 6, /empty/],
    ["blank", enc(" \n"), 6, /empty/],
    ["malformed", enc("{bad"), 6, /not valid JSON/],
    ["truncated", enc('{"cniVersion":"1.0.0"'), 6, /not valid JSON/],
    ["array", enc("[]"), 6, /must be a JSON object/],
    ["null", enc("null"), 6, /must be a JSON object/],
    ["not utf-8", new Uint8Array([0x7b, 0xff, 0x7d]), 6, /not UTF-8/],
    ["too large", new Uint8Array(MAX_CONFIG_BYTES + 1).fill(0x20), 7, /too large/],
  ];
  for (const [name, bytes, code, re] of cases) {
    await t.step(name, () => {
      const err = failure(() => decodeConfig(bytes));
      assert.equal(err.cniCode, code);
      assert.match(err.msg, re);
    });
  }
});

Deno.test("peekVersion finds the requested version for error objects", () => {
  assert.equal(peekVersion(enc('{"cniVersion":"0.4.0"}'), "1.1.0"), "0.4.0");
  assert.equal(peekVersion(enc('{"cniVersion":"0.2.0"}'), "1.1.0"), "0.2.0");
  assert.equal(peekVersion(enc('{"cniVersion":"garbage"}'), "1.1.0"), "1.1.0");
  assert.equal(peekVersion(enc("{bad"), "1.1.0"), "1.1.0");
  assert.equal(peekVersion(enc(""), "1.1.0"), "1.1.0");
});

Deno.test("a minimal config gets hostnic's defaults; unknown keys are ignored", async (t) => {
  for (const version of SUPPORTED_VERSIONS) {
    await t.step(version, () => {
      const conf = parseNetConf({ ...BASE, cniVersion: version, somethingNew: { x: 1 } }, {
        command: "ADD",
        version,
      });
      assert.equal(conf.name, "hostnic");
      assert.equal(conf.type, "hostnic");
      assert.equal(conf.cniVersion, version);
      assert.deepEqual(conf.hostnic, HOSTNIC_DEFAULTS);
      assert.deepEqual(conf.runtimeConfig, {});
      assert.equal(conf.prevResult, undefined);
      assert.deepEqual(conf.raw.somethingNew, { x: 1 });
    });
  }
});

Deno.test("the upstream shipped config parses", () => {
  const conf = parse({
    cniVersion: "0.3.0",
    serviceCIDR: "10.233.0.0/18",
    hairpin: false,
    natMark: "0x10000",
    vethPrefix: "nic",
    mtu: 1450,
    socketPath: "/run/hostnic/hostnic.sock",
    logLevel: 5,
    logFile: "/var/log/hostnic-cni.log",
    hostNicType: "veth",
    interface: "eth0",
  }, { command: "ADD", version: "0.3.0" });
  assert.deepEqual(conf.hostnic, {
    vethPrefix: "nic",
    mtu: 1450,
    serviceCIDR: "10.233.0.0/18",
    hairpin: false,
    natMark: 0x10000,
    socketPath: "/run/hostnic/hostnic.sock",
    journalDir: "/var/lib/hostnic/journal",
    logLevel: "debug",
    logFile: "/var/log/hostnic-cni.log",
  });
});

Deno.test("hostnic keys: accepted forms", () => {
  assert.equal(parse({ natMark: 0x20000 }).hostnic.natMark, 0x20000);
  assert.equal(parse({ natMark: "131072" }).hostnic.natMark, 0x20000);
  assert.equal(parse({ logLevel: "WARNING" }).hostnic.logLevel, "warn");
  assert.equal(parse({ logLevel: 0 }).hostnic.logLevel, "info");
  assert.equal(parse({ serviceCIDR: "" }).hostnic.serviceCIDR, undefined);
});

Deno.test("every invalid field is code 7 and named", async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["missing name", { name: undefined }, /"name": is required/],
    ["empty name", { name: "" }, /"name": is required/],
    ["name charset", { name: "-net" }, /"name"/],
    ["name slash", { name: "a/b" }, /"name"/],
    ["name type", { name: 5 }, /"name": must be a string/],
    ["missing type", { type: undefined }, /"type": is required/],
    ["type path", { type: "../hostnic" }, /"type"/],
    ["whole conflist", { type: undefined, plugins: [{ type: "hostnic" }] }, /configuration list/],
    ["cniVersions", { cniVersions: "1.0.0" }, /"cniVersions"/],
    ["capabilities", { capabilities: { ips: "yes" } }, /"capabilities\.ips"/],
    ["runtimeConfig", { runtimeConfig: [] }, /"runtimeConfig"/],
    ["runtimeConfig.ips", { runtimeConfig: { ips: ["10.0.0.300"] } }, /"runtimeConfig\.ips\[0\]"/],
    ["runtimeConfig.mac", { runtimeConfig: { mac: "nope" } }, /"runtimeConfig\.mac"/],
    ["args", { args: "x" }, /"args"/],
    ["args.cni", { args: { cni: 1 } }, /"args\.cni"/],
    ["args.cni.ips", { args: { cni: { ips: ["10.0.0.5", "bad"] } } }, /"args\.cni\.ips\[1\]"/],
    ["ipam", { ipam: "host-local" }, /"ipam"/],
    ["ipam.routes", { ipam: { routes: {} } }, /"ipam\.routes"/],
    ["ipam.routes dst", { ipam: { routes: [{ dst: "10.0.0.0" }] } }, /"ipam\.routes\[0\]\.dst"/],
    [
      "ipam.routes gw",
      { ipam: { routes: [{ dst: "10.0.0.0/8", gw: "gw" }] } },
      /"ipam\.routes\[0\]\.gw"/,
    ],
    [
      "ipam.routes ::",
      { ipam: { routes: [{ dst: "fd00::/8", gw: "::" }] } },
      /"ipam\.routes\[0\]\.gw"/,
    ],
    ["dns", { dns: { nameservers: ["x"] } }, /"dns\.nameservers\[0\]"/],
    ["prevResult", { prevResult: { ips: [{ address: "x" }] } }, /"prevResult\.ips\[0\]\.address"/],
    ["vethPrefix long", { vethPrefix: "hostnic" }, /"vethPrefix"/],
    ["vethPrefix empty", { vethPrefix: "" }, /"vethPrefix"/],
    ["vethPrefix chars", { vethPrefix: "v/" }, /"vethPrefix"/],
    ["mtu string", { mtu: "1500" }, /"mtu"/],
    ["mtu small", { mtu: 67 }, /"mtu"/],
    ["mtu big", { mtu: 65536 }, /"mtu"/],
    ["mtu fraction", { mtu: 1500.5 }, /"mtu"/],
    ["serviceCIDR", { serviceCIDR: "10.233.0.0" }, /"serviceCIDR"/],
    // hostnic's datapath (and the daemon) are IPv4 only: refused for every verb, not at ADD only.
    ["serviceCIDR IPv6", { serviceCIDR: "fd00:10::/108" }, /"serviceCIDR": must be an IPv4/],
    ["ipam.routes IPv6", { ipam: { routes: [{ dst: "fd00::/8" }] } }, /"ipam\.routes\[0\]\.dst"/],
    ["hairpin", { hairpin: "false" }, /"hairpin"/],
    ["natMark zero", { natMark: "0x0" }, /"natMark"/],
    ["natMark text", { natMark: "mark" }, /"natMark"/],
    ["natMark 33 bits", { natMark: 0x100000000 }, /"natMark"/],
    ["natMark kube-proxy", { natMark: "0x4000" }, /kube-proxy/],
    ["natMark calico", { natMark: "0x10000000" }, /Calico/],
    ["socketPath", { socketPath: "hostnic.sock" }, /"socketPath"/],
    ["journalDir", { journalDir: "journal" }, /"journalDir"/],
    ["logLevel", { logLevel: "verbose" }, /"logLevel"/],
    ["logLevel number", { logLevel: 9 }, /"logLevel"/],
    ["logFile", { logFile: "cni.log" }, /"logFile"/],
  ];
  for (const [name, extra, re] of cases) {
    await t.step(name, () => {
      const err = failure(() => parse(extra));
      assert.equal(err.cniCode, 7);
      assert.match(err.msg, re);
    });
  }
});

Deno.test("ipam.routes: gw 0.0.0.0 means via the gateway NIC", () => {
  const conf = parse({
    ipam: {
      routes: [
        { dst: "10.96.0.0/12", gw: "0.0.0.0" },
        { dst: "192.168.0.0/16", gw: "172.22.0.1" },
        { dst: "172.16.0.0/12" },
      ],
    },
  });
  assert.deepEqual(conf.ipam, {
    routes: [
      { dst: "10.96.0.0/12", viaGatewayNic: true },
      { dst: "192.168.0.0/16", gw: "172.22.0.1", viaGatewayNic: false },
      { dst: "172.16.0.0/12", viaGatewayNic: false },
    ],
  });
});

Deno.test("args.cni.ips, runtimeConfig and capabilities are typed", () => {
  const conf = parse({
    args: { cni: { ips: ["172.22.0.9", "2001:db8::9/64"] }, other: 1 },
    capabilities: { ips: true, mac: false },
    runtimeConfig: { ips: ["172.22.0.9/24"], mac: "52:54:9e:00:00:01", portMappings: [] },
  });
  assert.deepEqual(conf.args, { cni: { ips: ["172.22.0.9", "2001:db8::9/64"] } });
  assert.deepEqual(conf.capabilities, { ips: true, mac: false });
  assert.deepEqual(conf.runtimeConfig.ips, ["172.22.0.9/24"]);
  assert.equal(conf.runtimeConfig.mac, "52:54:9e:00:00:01");
  assert.deepEqual(conf.runtimeConfig.portMappings, []);
});

Deno.test("prevResult is read in the request version", async (t) => {
  for (const version of SUPPORTED_VERSIONS) {
    await t.step(version, () => {
      const conf = parseNetConf({
        ...BASE,
        cniVersion: version,
        prevResult: {
          interfaces: [{ name: "eth0", sandbox: "/proc/1/ns/net" }],
          ips: [{ version: "4", address: "10.0.0.5/32", interface: 0 }],
        },
      }, { command: "DEL", version });
      assert.deepEqual(conf.prevResult?.ips, [{ address: "10.0.0.5/32", interface: 0 }]);
    });
  }
});

Deno.test("CHECK needs prevResult; GC needs cni.dev/valid-attachments", async (t) => {
  await t.step("CHECK without prevResult", () => {
    const err = failure(() => parse({}, { command: "CHECK", version: "1.0.0" }));
    assert.equal(err.cniCode, 7);
    assert.match(err.msg, /"prevResult": is required for CHECK/);
  });
  const GC: ParseOptions = { command: "GC", version: "1.1.0" };
  await t.step("GC without the list", () => {
    const err = failure(() => parse({ cniVersion: "1.1.0" }, GC));
    assert.match(err.msg, /"cni\.dev\/valid-attachments": is required for GC/);
  });
  await t.step("GC with a bad entry", () => {
    const err = failure(() => parse({ "cni.dev/valid-attachments": [{ containerID: "a" }] }, GC));
    assert.match(err.msg, /valid-attachments\[0\]\.ifname/);
  });
  await t.step("GC with the list", () => {
    const list = [{ containerID: "a1", ifname: "eth0" }, { containerID: "b2", ifname: "net1" }];
    assert.deepEqual(parse({ "cni.dev/valid-attachments": list }, GC).validAttachments, list);
    assert.deepEqual(parse({ "cni.dev/valid-attachments": [] }, GC).validAttachments, []);
  });
});
