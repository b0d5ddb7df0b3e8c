/**
 * Container images for real nodes (lib/testbed/node.ts), built on this machine and never pulled
 * (no registry is reachable here): a pause image (a tiny static C program that exits on SIGTERM),
 * a busybox test image (Debian's busybox-static) and hostnic's own image from the repository's
 * Dockerfile (its `source` stage, on a Debian base made with debootstrap, built with podman).
 *
 * Every image is a docker-archive tar cached under ~/.cache/hostnic/images, named by a hash of
 * everything that goes into it, so a machine builds each once; `ctr -n k8s.io images import`
 * loads them into a node's containerd. Builds write to a temp name and rename, so an interrupted
 * build never leaves a cache entry. podman keeps its storage under the cache directory, never in
 * /var/lib/containers, and builds with host networking (no CNI, nothing in /etc/cni or /var/lib/cni).
 */
import { CommandRunner } from "../linux/exec.ts";

const runner = new CommandRunner();
const REPO = new URL("../../", import.meta.url).pathname;
const enc = new TextEncoder();

export const PAUSE_REF = "localhost/pause:1";
export const BUSYBOX_REF = "localhost/busybox:1";
/** What deploy/hostnic.yaml names (`image: hostnic:0.1.0`), as containerd spells it. */
export const HOSTNIC_REF = "docker.io/library/hostnic:0.1.0";

export interface BuiltImage {
  /** Reference the archive is tagged with. */
  ref: string;
  /** The docker-archive tar. */
  archive: string;
  /** false when it came from the cache. */
  built: boolean;
  /** Seconds spent building (0 from the cache). */
  seconds: number;
}

export function imageCacheDir(): string {
  return Deno.env.get("HOSTNIC_IMAGE_CACHE") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/hostnic/images`;
}

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function fileSha256(path: string): Promise<string> {
  const out = await runner.run(["sha256sum", path]);
  return out.stdout.split(/\s+/)[0];
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs `build(tmpPath)` unless `path` exists; the result is renamed into place. */
export async function cached(
  path: string,
  ref: string,
  build: (tmp: string) => Promise<void>,
): Promise<BuiltImage> {
  if (await exists(path)) {
    // The archive's mtime says when it was last used: pruneCache spares what others still use.
    const now = new Date();
    await Deno.utime(path, now, now).catch(() => {});
    return { ref, archive: path, built: false, seconds: 0 };
  }
  await Deno.mkdir(imageCacheDir(), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  const t0 = performance.now();
  try {
    await build(tmp);
    await Deno.rename(tmp, path);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return { ref, archive: path, built: true, seconds: (performance.now() - t0) / 1000 };
}

export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
}

/**
 * Writes a one-layer docker-archive (manifest.json, config JSON with rootfs.diff_ids, layer.tar)
 * of directory `rootfs` to `out`, tagged `ref`. Deterministic: sorted, mtime 0, uid/gid 0.
 */
export async function dockerArchive(
  o: { rootfs: string; out: string; ref: string; config: ImageConfig },
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "hostnic-img-" });
  try {
    const layerTmp = `${work}/layer.tar`;
    await runner.run([
      "tar",
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-C",
      o.rootfs,
      "-cf",
      layerTmp,
      ".",
    ]);
    const layerSha = await fileSha256(layerTmp);
    await Deno.mkdir(`${work}/${layerSha}`);
    await Deno.rename(layerTmp, `${work}/${layerSha}/layer.tar`);
    const config = JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        ...(o.config.entrypoint ? { Entrypoint: o.config.entrypoint } : {}),
        ...(o.config.cmd ? { Cmd: o.config.cmd } : {}),
      },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerSha}`] },
    });
    const configSha = await sha256Hex(config);
    await Deno.writeTextFile(`${work}/${configSha}.json`, config);
    await Deno.writeTextFile(
      `${work}/manifest.json`,
      JSON.stringify([{
        Config: `${configSha}.json`,
        RepoTags: [o.ref],
        Layers: [`${layerSha}/layer.tar`],
      }]),
    );
    await runner.run([
      "tar",
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "-C",
      work,
      "-cf",
      o.out,
      "manifest.json",
      `${configSha}.json`,
      `${layerSha}/layer.tar`,
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

const PAUSE_C = `/* pause for the test bed: sleeps until SIGTERM/SIGINT, then exits 0. */
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) {
  signal(SIGTERM, bye);
  signal(SIGINT, bye);
  for (;;) pause();
}
`;

/** The sandbox image: /pause, a static C program (gcc -static) that exits on SIGTERM. */
export async function pauseImage(): Promise<BuiltImage> {
  const key = (await sha256Hex(`pause-v1\n${PAUSE_C}`)).slice(0, 16);
  return await cached(`${imageCacheDir()}/pause-${key}.tar`, PAUSE_REF, async (tmp) => {
    const dir = await Deno.makeTempDir({ prefix: "hostnic-pause-" });
    try {
      await Deno.writeTextFile(`${dir}/pause.c`, PAUSE_C);
      await Deno.mkdir(`${dir}/rootfs`);
      await runner.run([
        "gcc",
        "-static",
        "-Os",
        "-s",
        "-o",
        `${dir}/rootfs/pause`,
        `${dir}/pause.c`,
      ]);
      await dockerArchive({
        rootfs: `${dir}/rootfs`,
        out: tmp,
        ref: PAUSE_REF,
        config: { entrypoint: ["/pause"] },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** The test workload image: Debian's static busybox with its applets linked in /bin. */
export async function busyboxImage(): Promise<BuiltImage> {
  const busybox = "/bin/busybox";
  if (!(await exists(busybox))) {
    throw new Error(`${busybox} is missing: apt-get install busybox-static`);
  }
  const key = (await sha256Hex(`busybox-v1\n${await fileSha256(busybox)}`)).slice(0, 16);
  return await cached(`${imageCacheDir()}/busybox-${key}.tar`, BUSYBOX_REF, async (tmp) => {
    const dir = await Deno.makeTempDir({ prefix: "hostnic-busybox-" });
    try {
      for (const d of ["bin", "tmp", "etc", "proc", "sys", "dev"]) {
        await Deno.mkdir(`${dir}/${d}`);
      }
      await Deno.copyFile(busybox, `${dir}/bin/busybox`);
      await Deno.chmod(`${dir}/bin/busybox`, 0o755);
      const applets = (await runner.run([busybox, "--list"])).stdout.split("\n").filter((a) =>
        a && a !== "busybox"
      );
      for (const a of applets) await Deno.symlink("busybox", `${dir}/bin/${a}`);
      await Deno.writeTextFile(`${dir}/etc/passwd`, "root:x:0:0:root:/:/bin/sh\n");
      await Deno.writeTextFile(`${dir}/etc/group`, "root:x:0:\n");
      await dockerArchive({ rootfs: dir, out: tmp, ref: BUSYBOX_REF, config: { cmd: ["sh"] } });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Packages the base must have so the Dockerfile's apt step is skipped (no network in builds). */
const BASE_INCLUDE = ["iproute2", "iptables", "procps", "ca-certificates"];
const DEBIAN_MIRROR = "http://deb.debian.org/debian";

/** A Debian bookworm minbase root, as a tar for `podman import` (debootstrap, once per machine). */
export function debianBase(): Promise<BuiltImage> {
  return debootstrapTar("debian-bookworm", BASE_INCLUDE, "localhost/hostnic-base");
}

/**
 * A Debian bookworm minbase root with `include` packages, as a tar (debootstrap from the reachable
 * archive; cached under `<name>-<key>.tar`, the key covering the command and the mirror).
 */
export async function debootstrapTar(
  name: string,
  include: readonly string[],
  refBase: string,
): Promise<BuiltImage> {
  const argv = ["debootstrap", "--variant=minbase", `--include=${include.join(",")}`, "bookworm"];
  const key = (await sha256Hex(`${argv.join(" ")} ${DEBIAN_MIRROR}`)).slice(0, 16);
  const ref = `${refBase}:${key}`;
  return await cached(`${imageCacheDir()}/${name}-${key}.tar`, ref, async (tmp) => {
    const dir = await Deno.makeTempDir({ dir: imageCacheDir(), prefix: "debootstrap-" });
    try {
      await runner.run([...argv, `${dir}/rootfs`, DEBIAN_MIRROR]);
      // Downloaded .debs and package lists are not part of an image.
      await runner.run([
        "sh",
        "-c",
        `rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/var/log/*`,
        "sh",
        `${dir}/rootfs`,
      ]);
      await runner.run([
        "tar",
        "--numeric-owner",
        "-C",
        `${dir}/rootfs`,
        "-cf",
        tmp,
        ".",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Files of the repository that go into hostnic's image (the Dockerfile's `source` stage). */
async function sourceFiles(): Promise<string[]> {
  const out: string[] = ["Dockerfile", ".dockerignore", "main.ts", "deno.json", "deno.lock"];
  const walk = async (rel: string) => {
    const entries = [];
    for await (const e of Deno.readDir(`${REPO}${rel}`)) entries.push(e);
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const e of entries) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory) {
        if (p !== "lib/testbed") await walk(p);
      } else if (e.isFile && !e.name.endsWith("_test.ts")) out.push(p);
    }
  };
  // .dockerignore leaves out tests and the test bed (lib/testbed): not part of the product.
  for (const d of ["cmd", "lib", "deploy/image"]) await walk(d);
  return out;
}

/**
 * podman with a throw-away storage of its own (`dir`: never /var/lib/containers), cgroupfs, runc
 * (crun rejects hybrid cgroups).
 */
function podman(args: string[], dir: string): string[] {
  return [
    "podman",
    "--root",
    `${dir}/storage`,
    "--runroot",
    `/tmp/hnpod-${dir.slice(dir.lastIndexOf("-") + 1)}`, // podman wants ≤ 50 characters
    // Its network config and CNI lock, which default to the machine's /etc/cni/net.d.
    "--network-config-dir",
    `${dir}/netconf`,
    "--cgroup-manager",
    "cgroupfs",
    "--runtime",
    "runc",
    "--events-backend",
    "file",
    "--storage-driver",
    "overlay",
    ...args,
  ];
}

/**
 * hostnic's image from the repository's Dockerfile, stage `source` (the deno runtime, the source
 * and node_modules), on the debootstrap base; tagged as deploy/hostnic.yaml names it. `log` gets
 * one line per phase with its cost.
 */
export async function hostnicImage(
  o: { log?: (line: string) => void } = {},
): Promise<BuiltImage & { base: BuiltImage }> {
  const log = o.log ?? (() => {});
  const base = await debianBase();
  if (base.built) log(`debootstrap base built in ${base.seconds.toFixed(0)} s`);
  const files = await sourceFiles();
  const h: string[] = [`hostnic-image-v1`, base.archive, Deno.version.deno];
  for (const f of files) h.push(`${f} ${await sha256Hex(await Deno.readFile(`${REPO}${f}`))}`);
  const key = (await sha256Hex(h.join("\n"))).slice(0, 16);
  const img = await cached(`${imageCacheDir()}/hostnic-${key}.tar`, HOSTNIC_REF, async (tmp) => {
    await Deno.stat(`${REPO}node_modules`).catch(() => {
      throw new Error(`${REPO}node_modules is missing: run \`deno install --frozen\` first`);
    });
    const ctx = await Deno.makeTempDir({ dir: imageCacheDir(), prefix: "ctx-" });
    const runroot = await Deno.makeTempDir({ dir: imageCacheDir(), prefix: "podman-" });
    await Deno.mkdir(`${runroot}/netconf`);
    try {
      // The build context: what .dockerignore lets in, plus the runtime as dist/deno.
      for (const f of files) {
        const dest = `${ctx}/${f}`;
        await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
        await Deno.copyFile(`${REPO}${f}`, dest);
      }
      await Deno.chmod(`${ctx}/deploy/image/hostnic-from-source.sh`, 0o755);
      // A Deno process running in this checkout meanwhile (tests run in parallel) creates and
      // removes node_modules/.deno/.deno.lock.poll: `cp` fails when it vanishes mid-copy.
      for (let attempt = 1;; attempt++) {
        try {
          await runner.run(["cp", "-a", `${REPO}node_modules`, `${ctx}/node_modules`]);
          break;
        } catch (err) {
          if (attempt >= 5 || !/cannot stat .*\.deno\.lock/.test((err as Error).message)) throw err;
          await Deno.remove(`${ctx}/node_modules`, { recursive: true }).catch(() => {});
        }
      }
      await Deno.mkdir(`${ctx}/dist`);
      await Deno.copyFile(Deno.execPath(), `${ctx}/dist/deno`);
      await Deno.chmod(`${ctx}/dist/deno`, 0o755);
      let t = performance.now();
      await runner.run(podman(["import", base.archive, base.ref], runroot));
      log(`podman import of the base: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      t = performance.now();
      const tag = `localhost/hostnic-build:${key}`;
      await runner.run(podman([
        "build",
        "--pull=never",
        "--network=host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--build-arg",
        `BASE=${base.ref}`,
        "--target",
        "source",
        "-t",
        tag,
        "-f",
        `${ctx}/Dockerfile`,
        ctx,
      ], runroot));
      log(
        `podman build (Dockerfile, target source): ${
          ((performance.now() - t) / 1000).toFixed(1)
        } s`,
      );
      t = performance.now();
      await runner.run(podman(["tag", tag, HOSTNIC_REF], runroot));
      await runner.run(
        podman(["save", "--format", "docker-archive", "-o", tmp, HOSTNIC_REF], runroot),
      );
      log(`podman save: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
      const short = `/tmp/hnpod-${runroot.slice(runroot.lastIndexOf("-") + 1)}`;
      for (const d of [runroot, short]) {
        await unmountUnder(d);
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  });
  if (img.built) await pruneCache("hostnic-", img.archive);
  return { ...img, base };
}

/** Removes older cache entries named `<prefix>…` (one image per kind is kept per machine). */
/** How long an unused image archive is kept once a newer one of its kind was built. */
export const PRUNE_UNUSED_MS = 60 * 60 * 1000;

/**
 * Removes the `prefix` archives other than `keep` that nothing used for `unusedMs`: another
 * checkout or a test running beside this one may be about to import an archive of another key
 * (every use renews its mtime, see `cached`), so a fresh one is never removed.
 */
export async function pruneCache(
  prefix: string,
  keep: string,
  o: { dir?: string; unusedMs?: number; now?: number } = {},
): Promise<string[]> {
  const dir = o.dir ?? imageCacheDir();
  const oldest = (o.now ?? Date.now()) - (o.unusedMs ?? PRUNE_UNUSED_MS);
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (!e.isFile || !e.name.startsWith(prefix) || !e.name.endsWith(".tar") || path === keep) {
      continue;
    }
    const used = (await Deno.stat(path).catch(() => undefined))?.mtime?.getTime();
    if (used === undefined || used > oldest) continue;
    if (await Deno.remove(path).then(() => true, () => false)) removed.push(path);
  }
  return removed;
}

/** Unmounts whatever podman left mounted under `dir` (deepest first). */
async function unmountUnder(dir: string): Promise<void> {
  const points = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of points) await runner.run(["umount", "-l", m]).catch(() => {});
}
