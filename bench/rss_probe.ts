/**
 * A child process of the `rss_profile` benchmark. Prints one JSON line with its resident memory
 * (from /proc/self/status: total, anonymous, file-backed) and V8's heap, after one of:
 *
 *   deno run -A bench/rss_probe.ts [specifier …]
 *     imports the modules (bare npm names through deno.json's import map, or paths relative to
 *     this file); no argument = the cost of `deno run` itself.
 *   deno run -A bench/rss_probe.ts --spawn N --stdin piped|null [--every K]
 *     runs `ip -batch` N times, 2 at a time, the way the daemon runs its commands (stdout and
 *     stderr piped; the script on a piped stdin, or in a file with stdin "null"); with --every,
 *     also one line after each K runs (`spawns` set), to see whether the growth levels off.
 */
import { procMemory } from "./rss_mem.ts";

async function report(extra: Record<string, number> = {}): Promise<void> {
  const mem = await procMemory("self");
  const m = Deno.memoryUsage();
  console.log(JSON.stringify({ ...extra, ...mem, heapTotal: m.heapTotal, heapUsed: m.heapUsed }));
}

async function spawnLoop(n: number, stdin: "piped" | "null", every: number): Promise<void> {
  const script = "link show lo\n";
  const file = await Deno.makeTempFile({ prefix: "hbn-probe-" });
  try {
    await Deno.writeTextFile(file, script);
    let started = 0;
    let done = 0;
    const one = async () => {
      const cmd = new Deno.Command("ip", {
        args: ["-batch", stdin === "piped" ? "-" : file],
        stdin,
        stdout: "piped",
        stderr: "piped",
      });
      if (stdin === "null") return void await cmd.output();
      const child = cmd.spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(script));
      await w.close();
      await child.output();
    };
    await Promise.all([0, 1].map(async () => {
      while (started < n) {
        started++;
        await one();
        if (every > 0 && ++done % every === 0) await report({ spawns: done });
      }
    }));
  } finally {
    await Deno.remove(file);
  }
}

const args = Deno.args;
if (args[0] === "--spawn") {
  const n = Number(args[1]);
  const stdin = args[3] === "piped" ? "piped" : "null";
  const every = args[4] === "--every" ? Number(args[5]) : 0;
  if (!(n > 0) || args[2] !== "--stdin" || !(every >= 0)) {
    throw new Error("Usage: --spawn N --stdin piped|null [--every K]");
  }
  await spawnLoop(n, stdin, every);
} else {
  for (const s of args) await import(s);
}
await new Promise((r) => setTimeout(r, 300));
await report();
