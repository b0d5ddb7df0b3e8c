import assert from "node:assert/strict";
import { checkCniConfig, defaultConflist, formatOf, InstallError } from "./cni_config.ts";

Deno.test("formatOf follows the file extension", () => {
  assert.equal(formatOf("10-hostnic.conflist"), "conflist");
  assert.equal(formatOf("10-hostnic.conf"), "conf");
  assert.equal(formatOf("10-hostnic.json"), "conf");
});

Deno.test("the default conflist passes the plugin's own checks", () => {
  const c = checkCniConfig(JSON.stringify(defaultConflist()), {
    source: "(default)",
    format: "conflist",
  });
  assert.deepEqual(c.plugins, ["hostnic"]);
  assert.equal(c.socketPath, "/var/run/hostnic/hostnic.sock");
  assert.ok(c.text.endsWith("}\n"));
  assert.deepEqual(JSON.parse(c.text), defaultConflist());
});

Deno.test("checkCniConfig is deterministic (same input, same bytes)", () => {
  const text = JSON.stringify({ name: "n", cniVersion: "1.0.0", plugins: [{ type: "hostnic" }] });
  const a = checkCniConfig(text, { source: "x", format: "conflist" });
  const b = checkCniConfig(text, { source: "x", format: "conflist" });
  assert.equal(a.text, b.text);
});

Deno.test("a list cannot be written as a single .conf", () => {
  const text = JSON.stringify({
    name: "n",
    cniVersion: "1.0.0",
    plugins: [{ type: "hostnic" }, { type: "portmap" }],
  });
  assert.throws(
    () => checkCniConfig(text, { source: "f", format: "conf" }),
    (e: unknown) =>
      e instanceof InstallError && e.code === "INSTALL_FAILED" &&
      /use a --conf-name ending in "\.conflist"/.test(e.message),
  );
  const one = JSON.stringify({ name: "n", cniVersion: "1.0.0", plugins: [{ type: "hostnic" }] });
  assert.equal(
    JSON.parse(checkCniConfig(one, { source: "f", format: "conf" }).text).type,
    "hostnic",
  );
});

Deno.test("the plugin's own rules apply to hostnic's entry, naming the field", () => {
  const text = JSON.stringify({
    name: "n",
    cniVersion: "1.0.0",
    plugins: [{ type: "hostnic", serviceCIDR: "10.0.0.0/33" }],
  });
  assert.throws(
    () => checkCniConfig(text, { source: "f", format: "conflist" }),
    /CNI config "f": plugins\[0\]: Invalid "serviceCIDR"/,
  );
  assert.throws(
    () =>
      checkCniConfig(JSON.stringify({ cniVersion: "1.0.0", plugins: [{ type: "hostnic" }] }), {
        source: "f",
        format: "conflist",
      }),
    /"name" is required/,
  );
});
