import assert from "node:assert/strict";
import { CniError } from "./errors.ts";
import { convertResult, encodeResult, parseResult, type Result } from "./result.ts";
import { type CniVersion, SUPPORTED_VERSIONS, versionAtLeast } from "./version.ts";

/** A hostnic-shaped result with every 1.1 field set. */
const FULL: Result = {
  interfaces: [
    { name: "vnic1a2b3c4d5e6", mac: "ee:ee:ee:ee:ee:ee", mtu: 1500 },
    {
      name: "eth0",
      mac: "52:54:9e:01:02:03",
      mtu: 1500,
      sandbox: "/var/run/netns/cni-1",
      socketPath: "/run/vhost.sock",
      pciID: "0000:00:05.0",
    },
  ],
  ips: [
    { address: "172.22.0.5/32", gateway: "169.254.1.1", interface: 1 },
    { address: "2001:db8::5/128", interface: 1 },
  ],
  routes: [
    {
      dst: "0.0.0.0/0",
      gw: "169.254.1.1",
      mtu: 1450,
      advmss: 1400,
      priority: 10,
      table: 260,
      scope: 0,
    },
    { dst: "169.254.1.1/32", scope: 253 },
  ],
  dns: {
    nameservers: ["10.233.0.3"],
    domain: "cluster.local",
    search: ["svc.cluster.local"],
    options: ["ndots:5"],
  },
};

type Row = Record<string, unknown>;
type Wire = { cniVersion: string; interfaces: Row[]; ips: Row[]; routes: Row[]; dns: unknown };

function cniCode(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err.cniCode;
  }
  throw new Error("expected a CniError");
}

Deno.test("encodeResult per version", async (t) => {
  for (const v of SUPPORTED_VERSIONS) {
    await t.step(v, () => {
      const out = encodeResult(FULL, v) as unknown as Wire;
      assert.equal(out.cniVersion, v);
      const legacy = !versionAtLeast(v, "1.0.0");
      const v11 = versionAtLeast(v, "1.1.0");
      assert.deepEqual(
        out.ips.map((i) => i.version),
        legacy ? ["4", "6"] : [undefined, undefined],
      );
      assert.equal(out.ips[0].interface, 1);
      assert.equal(out.ips[0].gateway, "169.254.1.1");
      assert.equal(out.ips[1].gateway, undefined);
      assert.equal(out.interfaces[0].sandbox, undefined);
      assert.equal(out.interfaces[1].sandbox, "/var/run/netns/cni-1");
      assert.equal(out.interfaces[1].mtu, v11 ? 1500 : undefined);
      assert.equal(out.interfaces[1].socketPath, v11 ? "/run/vhost.sock" : undefined);
      assert.equal(out.interfaces[1].pciID, v11 ? "0000:00:05.0" : undefined);
      assert.deepEqual(
        out.routes[0],
        v11
          ? {
            dst: "0.0.0.0/0",
            gw: "169.254.1.1",
            mtu: 1450,
            advmss: 1400,
            priority: 10,
            table: 260,
            scope: 0,
          }
          : { dst: "0.0.0.0/0", gw: "169.254.1.1" },
      );
      assert.deepEqual(out.dns, FULL.dns);
    });
  }
  await t.step("empty result keeps every key", () => {
    assert.deepEqual(encodeResult({ interfaces: [], ips: [], routes: [], dns: {} }, "0.3.1"), {
      cniVersion: "0.3.1",
      interfaces: [],
      ips: [],
      routes: [],
      dns: {},
    });
  });
});

Deno.test("parse ∘ encode is the identity up to what the version carries", async (t) => {
  for (const v of SUPPORTED_VERSIONS) {
    await t.step(v, () => {
      const back = parseResult(encodeResult(FULL, v), v);
      assert.deepEqual(encodeResult(back, v), encodeResult(FULL, v));
      if (v === "1.1.0") assert.deepEqual(back, FULL);
    });
  }
});

Deno.test("convertResult: every version to every version", async (t) => {
  for (const from of SUPPORTED_VERSIONS) {
    for (const to of SUPPORTED_VERSIONS) {
      await t.step(`${from} → ${to}`, () => {
        const given = encodeResult(FULL, from);
        const out = convertResult(given, from, to);
        // What survives is what both versions carry: the lower of the two.
        const lower: CniVersion = versionAtLeast(from, to) ? to : from;
        const expected = { ...encodeResult(FULL, lower), cniVersion: to } as Record<
          string,
          unknown
        >;
        if (versionAtLeast(to, "1.0.0")) {
          expected.ips = (expected.ips as Record<string, unknown>[]).map((
            { version: _v, ...rest },
          ) => rest);
        } else {
          expected.ips = encodeResult(FULL, to).ips as unknown[];
        }
        assert.deepEqual(out, expected);
      });
    }
  }
});

Deno.test("convertResult on literal wire results", async (t) => {
  const v031 = {
    cniVersion: "0.3.1",
    interfaces: [{ name: "eth0", sandbox: "/proc/42/ns/net" }],
    ips: [{ version: "4", address: "10.1.0.9/16", gateway: "10.1.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  };
  const v100 = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", sandbox: "/proc/42/ns/net" }],
    ips: [{ address: "10.1.0.9/16", gateway: "10.1.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  };
  await t.step("0.3.1 → 1.0.0 drops ips[].version", () => {
    assert.deepEqual(convertResult(v031, "0.3.1", "1.0.0"), v100);
  });
  await t.step("1.0.0 → 0.3.1 adds ips[].version", () => {
    assert.deepEqual(convertResult(v100, "1.0.0", "0.3.1"), v031);
  });
  await t.step("1.1.0 → 0.4.0 drops route and interface extras", () => {
    const v110 = {
      ...v100,
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mtu: 9000, sandbox: "/proc/42/ns/net" }],
      routes: [{ dst: "0.0.0.0/0", table: 100 }],
    };
    assert.deepEqual(convertResult(v110, "1.1.0", "0.4.0"), { ...v031, cniVersion: "0.4.0" });
  });
});

Deno.test("parseResult reads the legacy version field", async (t) => {
  const base = (ip: Record<string, unknown>) => ({ interfaces: [{ name: "eth0" }], ips: [ip] });
  await t.step("missing version is inferred", () => {
    const r = parseResult(base({ address: "10.0.0.5/24", interface: 0 }), "0.3.0");
    assert.equal(encodeResult(r, "0.3.0").ips instanceof Array, true);
    assert.equal((encodeResult(r, "0.3.0").ips as Record<string, unknown>[])[0].version, "4");
  });
  await t.step("wrong family is code 7 naming the field", () => {
    try {
      parseResult(base({ version: "6", address: "10.0.0.5/24" }), "0.4.0");
      assert.fail("expected an error");
    } catch (err) {
      assert.ok(err instanceof CniError);
      assert.equal(err.cniCode, 7);
      assert.match(err.msg, /prevResult\.ips\[0\]\.version/);
    }
  });
  await t.step("bad version value", () => {
    assert.equal(
      cniCode(() => parseResult(base({ version: 4, address: "10.0.0.5/24" }), "0.3.1")),
      7,
    );
  });
  await t.step("1.0.0 ignores a stray version", () => {
    const r = parseResult(base({ version: "bogus", address: "10.0.0.5/24" }), "1.0.0");
    assert.equal(r.ips[0].address, "10.0.0.5/24");
  });
});

Deno.test("parseResult honours the prevResult's own cniVersion", () => {
  const given = encodeResult(FULL, "1.1.0");
  const r = parseResult(given, "0.4.0");
  assert.equal(r.routes[0].table, 260);
  assert.equal(cniCode(() => parseResult({ cniVersion: "0.2.0", ip4: {} }, "1.0.0")), 1);
});

Deno.test("parseResult rejects malformed results with the field named", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["not an object", [], /"prevResult": must be an object/],
    ["interfaces not a list", { interfaces: {} }, /prevResult\.interfaces/],
    [
      "interface without name",
      { interfaces: [{ mac: "52:54:9e:01:02:03" }] },
      /interfaces\[0\]\.name/,
    ],
    ["bad mac", { interfaces: [{ name: "e", mac: "zz" }] }, /interfaces\[0\]\.mac/],
    [
      "bad mtu",
      { cniVersion: "1.1.0", interfaces: [{ name: "e", mtu: -1 }] },
      /interfaces\[0\]\.mtu/,
    ],
    ["address without prefix", { ips: [{ address: "10.0.0.5" }] }, /ips\[0\]\.address/],
    ["missing address", { ips: [{}] }, /ips\[0\]\.address": is required/],
    ["bad gateway", { ips: [{ address: "10.0.0.5/24", gateway: "x" }] }, /ips\[0\]\.gateway/],
    ["gateway family", { ips: [{ address: "10.0.0.5/24", gateway: "::1" }] }, /ips\[0\]\.gateway/],
    ["interface index out of range", {
      interfaces: [{ name: "e" }],
      ips: [{ address: "10.0.0.5/24", interface: 1 }],
    }, /ips\[0\]\.interface": is 1 but there is 1 interface/],
    ["negative index", { ips: [{ address: "10.0.0.5/24", interface: -1 }] }, /ips\[0\]\.interface/],
    ["route without dst", { routes: [{ gw: "10.0.0.1" }] }, /routes\[0\]\.dst/],
    ["route dst not CIDR", { routes: [{ dst: "default" }] }, /routes\[0\]\.dst/],
    ["route gw family", { routes: [{ dst: "0.0.0.0/0", gw: "fe80::1" }] }, /routes\[0\]\.gw/],
    [
      "route table",
      { cniVersion: "1.1.0", routes: [{ dst: "0.0.0.0/0", table: "main" }] },
      /routes\[0\]\.table/,
    ],
    ["dns nameserver", { dns: { nameservers: ["dns.example"] } }, /dns\.nameservers\[0\]/],
    ["dns search", { dns: { search: "a" } }, /dns\.search/],
  ];
  for (const [name, raw, re] of cases) {
    await t.step(name, () => {
      try {
        parseResult(raw, "1.0.0");
        assert.fail("expected an error");
      } catch (err) {
        assert.ok(err instanceof CniError, String(err));
        assert.equal(err.cniCode, 7);
        assert.match(err.msg, re);
      }
    });
  }
});
