import assert from "node:assert/strict";
import { CNI_COMMANDS } from "./env.ts";
import { CniError } from "./errors.ts";
import {
  compareVersions,
  MIN_VERSION,
  negotiateVersion,
  parseSemver,
  SUPPORTED_VERSIONS,
  versionAtLeast,
  versionInfo,
} from "./version.ts";

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err.cniCode;
  }
}

Deno.test("semver parsing and ordering", () => {
  assert.deepEqual(parseSemver("1.10.2"), [1, 10, 2]);
  assert.equal(parseSemver("1.0"), undefined);
  assert.equal(parseSemver("01.0.0"), undefined);
  assert.equal(parseSemver("1.0.0-rc1"), undefined);
  assert.ok(compareVersions("0.10.0", "0.9.0") > 0);
  assert.ok(compareVersions("0.3.1", "0.4.0") < 0);
  assert.equal(compareVersions("1.1.0", "1.1.0"), 0);
  assert.throws(() => compareVersions("x", "1.0.0"));
  assert.equal(versionAtLeast("1.0.0", "0.4.0"), true);
  assert.equal(versionAtLeast("0.3.1", "0.4.0"), false);
});

Deno.test("negotiateVersion: every verb × every supported version", async (t) => {
  for (const command of CNI_COMMANDS) {
    for (const v of SUPPORTED_VERSIONS) {
      const allowed = versionAtLeast(v, MIN_VERSION[command]);
      await t.step(`${command} ${v} → ${allowed ? "served" : "code 1"}`, () => {
        if (allowed) assert.equal(negotiateVersion({ cniVersion: v }, command), v);
        else assert.equal(codeOf(() => negotiateVersion({ cniVersion: v }, command)), 1);
      });
    }
  }
});

Deno.test("negotiateVersion refuses unknown, missing and non-string versions", async (t) => {
  for (const v of ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "latest", ""]) {
    await t.step(
      `"${v}" → 1`,
      () => assert.equal(codeOf(() => negotiateVersion({ cniVersion: v }, "ADD")), 1),
    );
  }
  await t.step("missing → 1", () => assert.equal(codeOf(() => negotiateVersion({}, "ADD")), 1));
  await t.step(
    "number → 7",
    () => assert.equal(codeOf(() => negotiateVersion({ cniVersion: 1 }, "ADD")), 7),
  );
});

Deno.test("STATUS and GC may be served through cniVersions", () => {
  const conf = { cniVersion: "1.0.0", cniVersions: ["0.4.0", "1.0.0", "1.1.0", "9.9.9"] };
  assert.equal(negotiateVersion(conf, "GC"), "1.1.0");
  assert.equal(negotiateVersion(conf, "STATUS"), "1.1.0");
  // ADD stays in the requested version: its result must be printed in it.
  assert.equal(negotiateVersion(conf, "ADD"), "1.0.0");
  assert.equal(
    codeOf(() => negotiateVersion({ cniVersion: "1.0.0", cniVersions: ["1.0.0"] }, "GC")),
    1,
  );
});

Deno.test("versionInfo echoes a supported request, else the latest", async (t) => {
  for (const v of SUPPORTED_VERSIONS) {
    await t.step(v, () =>
      assert.deepEqual(versionInfo(v), {
        cniVersion: v,
        supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
      }));
  }
  for (const v of [undefined, "0.2.0", 7]) {
    await t.step(
      `fallback for ${String(v)}`,
      () => assert.equal(versionInfo(v).cniVersion, "1.1.0"),
    );
  }
});
