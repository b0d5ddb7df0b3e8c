/**
 * Who owns a testbed prefix. A testbed names everything it makes `<prefix>-…`, and tests with a
 * fixed prefix (`sk`, `kw`, …) meet what an earlier run left when that run was killed before its
 * `close()` (a crash, a CI timeout, SIGKILL): "File exists" on the first namespace. Each testbed
 * writes `/run/hostnic-testbeds/<prefix>` (tmpfs: gone at reboot) with its process id and that
 * process's start time, and removes it on close. At start, a file whose process is gone (or is a
 * different process with a reused pid) is a dead run's: its namespaces and temp dir are swept. A
 * prefix whose owner still runs is refused with a message, instead of two runs deleting each
 * other's namespaces.
 */
import { deleteNamespaces, leftoverNamespaces } from "../sim/linux.ts";
import type { Runner } from "../linux/exec.ts";

const DIR = "/run/hostnic-testbeds";

interface Owner {
  pid: number;
  start: string;
  dir: string;
}

/** The start time (clock ticks since boot, field 22 of /proc/<pid>/stat), or undefined. */
async function startTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Field 2 (comm) is in parentheses and may hold spaces: count from after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

async function readOwner(path: string): Promise<Owner | undefined> {
  try {
    const o = JSON.parse(await Deno.readTextFile(path)) as Partial<Owner>;
    if (typeof o.pid !== "number" || typeof o.start !== "string" || typeof o.dir !== "string") {
      return undefined;
    }
    return o as Owner;
  } catch {
    return undefined;
  }
}

async function alive(o: Owner): Promise<boolean> {
  return (await startTime(o.pid)) === o.start;
}

async function sweep(runner: Runner, prefix: string, o: Owner | undefined): Promise<number> {
  const left = await leftoverNamespaces(runner, prefix).catch(() => []);
  if (left.length) await deleteNamespaces(runner, left).catch(() => {});
  if (o && o.dir.startsWith("/tmp/hostnic-tb")) {
    await Deno.remove(o.dir, { recursive: true }).catch(() => {});
  }
  await Deno.remove(`${DIR}/${prefix}`).catch(() => {});
  return left.length;
}

/**
 * Claims `prefix` for this process (its testbed lives in `dir`), sweeping what dead runs left: of
 * this prefix, and of any other prefix whose owner is gone. Throws if a live process owns it.
 */
export async function claimPrefix(runner: Runner, prefix: string, dir: string): Promise<void> {
  await Deno.mkdir(DIR, { recursive: true });
  const path = `${DIR}/${prefix}`;
  for await (const e of Deno.readDir(DIR)) {
    if (!e.isFile) continue;
    const o = await readOwner(`${DIR}/${e.name}`);
    if (o && await alive(o)) {
      if (e.name === prefix) {
        throw new Error(
          `Testbed prefix "${prefix}" is in use by process ${o.pid} (another run of the same ` +
            `test?); its namespaces are named ${prefix}-…`,
        );
      }
      continue;
    }
    const n = await sweep(runner, e.name, o);
    if (n) console.error(`# testbed: swept ${n} namespaces a dead run left (prefix ${e.name})`);
  }
  // A prefix with namespaces but no owner file (left by a version without owner files).
  if (!(await readOwner(path))) {
    const n = await sweep(runner, prefix, undefined);
    if (n) console.error(`# testbed: swept ${n} namespaces a dead run left (prefix ${prefix})`);
  }
  const start = await startTime(Deno.pid);
  if (start === undefined) throw new Error("cannot read this process's /proc/self/stat");
  await Deno.writeTextFile(path, JSON.stringify({ pid: Deno.pid, start, dir } satisfies Owner));
}

/** Gives `prefix` up (the testbed's close). */
export async function releasePrefix(prefix: string): Promise<void> {
  const o = await readOwner(`${DIR}/${prefix}`);
  if (o?.pid === Deno.pid) await Deno.remove(`${DIR}/${prefix}`).catch(() => {});
}
