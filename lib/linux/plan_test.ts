import assert from "node:assert/strict";
import { DatapathSetupError, DatapathTeardownError } from "./errors.ts";
import { ExecError } from "./exec.ts";
import { batchError, FakeRunner } from "./fake_runner.ts";
import { applyPlan, formatPlan, type Plan, runTeardownPlan } from "./plan.ts";

const PLAN: Plan = {
  what: "test pod",
  steps: [
    {
      kind: "ip",
      role: "node",
      netns: "node",
      ops: [
        { line: "a1", undo: { netns: "node", lines: ["undo a1"] } },
        { line: "a2" },
        { line: "a3", undo: { netns: "pod", lines: ["undo a3 (in pod)"] } },
        { line: "a4", undo: { netns: "node", lines: ["undo a4"] } },
      ],
    },
    { kind: "sysctl", role: "node", netns: "node", values: { "net/ipv4/ip_forward": "1" } },
    { kind: "ip", role: "pod", netns: "pod", ops: [{ line: "p1" }] },
  ],
};

Deno.test("formatPlan shows every line with its namespace role", () => {
  assert.deepEqual(formatPlan(PLAN), [
    "node: a1",
    "node: a2",
    "node: a3",
    "node: a4",
    "node: sysctl net/ipv4/ip_forward=1",
    "pod: p1",
  ]);
});

Deno.test("applyPlan runs one spawn per step", async () => {
  const runner = new FakeRunner();
  await applyPlan({ runner }, PLAN);
  assert.deepEqual(runner.calls.map((c) => `${c.netns} ${c.argv.join(" ")}`), [
    "node ip -batch -",
    "node sysctl -q -w net/ipv4/ip_forward=1",
    "pod ip -batch -",
  ]);
});

Deno.test("applyPlan undoes the lines before a failing line, newest first", async () => {
  const runner = new FakeRunner((c) =>
    c.stdin?.startsWith("a1")
      ? batchError(4, "Error: mtu greater than device maximum.")
      : { stdout: "", stderr: "" }
  );
  const err = await applyPlan({ runner }, PLAN).then(() => null, (e) => e);
  assert.ok(err instanceof DatapathSetupError);
  assert.ok(err.cause instanceof ExecError);
  assert.match(err.message, /^Setting up test pod failed: .*mtu greater/);
  assert.deepEqual(runner.batchLines().slice(4), ["pod: undo a3 (in pod)", "node: undo a1"]);
});

Deno.test("applyPlan undoes completed steps when a later step fails", async () => {
  const runner = new FakeRunner((c) =>
    c.netns === "pod" && c.stdin === "p1\n" ? batchError(1, "boom") : { stdout: "", stderr: "" }
  );
  await assert.rejects(applyPlan({ runner }, PLAN), DatapathSetupError);
  assert.deepEqual(runner.batchLines().slice(5), [
    "node: undo a4",
    "pod: undo a3 (in pod)",
    "node: undo a1",
  ]);
});

Deno.test("applyPlan undoes everything when ip does not say which line failed", async () => {
  const runner = new FakeRunner((c) =>
    c.argv[0] === "sysctl"
      ? new ExecError(c.argv, 255, "sysctl: permission denied")
      : { stdout: "", stderr: "" }
  );
  await assert.rejects(applyPlan({ runner }, PLAN), DatapathSetupError);
  assert.deepEqual(runner.batchLines().slice(4), [
    "node: undo a4",
    "pod: undo a3 (in pod)",
    "node: undo a1",
  ]);
});

Deno.test("runTeardownPlan forgives not-found, runs every step, reports the rest", async () => {
  const runner = new FakeRunner((c) => {
    if (c.stdin === "a1\na2\na3\na4\n") return batchError(1, 'Cannot find device "x"');
    if (c.stdin === "a2\na3\na4\n") {
      return batchError(2, "RTNETLINK answers: Device or resource busy");
    }
    return { stdout: "", stderr: "" };
  });
  const err = await runTeardownPlan({ runner }, PLAN).then(() => null, (e) => e);
  assert.ok(err instanceof DatapathTeardownError);
  assert.deepEqual(err.failures, ['node: "a3": RTNETLINK answers: Device or resource busy']);
  assert.ok(runner.calls.some((c) => c.netns === "pod" && c.stdin === "p1\n"), "pod step skipped");
  assert.ok(!runner.calls.some((c) => c.argv[0] === "sysctl"), "teardown must not write sysctls");
});
