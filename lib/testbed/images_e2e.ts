/**
 * The images the upstream e2e suite (k8s/build.sh component `e2e`) asks for, built on this machine
 * under the exact names the suite prints with `e2e.test --list-images`, and CoreDNS's image for the
 * cluster DNS. No registry is reachable here: each is a docker-archive tar (images.ts) that
 * `ctr -n k8s.io images import` loads into every node's containerd, so kubelet never pulls.
 *
 * - agnhost: upstream builds it on Alpine with bind-tools, curl, netcat-openbsd, iproute2, iperf and
 *   bash, plus `/agnhost`, `/coredns`, porter's test certificate and a user 1000. Here: a Debian
 *   minbase with the same tools (debootstrap, once per machine), busybox applets for the commands
 *   Alpine's busybox would give and Debian lacks, the agnhost and CoreDNS binaries built by
 *   k8s/build.sh, and the same files and users.
 * - nginx: Debian's nginx-light on the same root, serving its default page on port 80.
 * - jessie-dnsutils (the DNS tests' second querier): upstream is Debian with dnsutils and
 *   `/coredns`; here the same root with `/coredns`.
 * - pause and busybox: images.ts's own, tagged with the suite's names too.
 * - CoreDNS: the binary alone (as upstream's image), `/coredns`.
 */
import { CommandRunner } from "../linux/exec.ts";
import {
  type BuiltImage,
  busyboxImage,
  cached,
  debootstrapTar,
  dockerArchive,
  fileSha256,
  imageCacheDir,
  pauseImage,
  sha256Hex,
} from "./images.ts";

const runner = new CommandRunner();
const BUILD_SCRIPT = new URL("../../k8s/build.sh", import.meta.url).pathname;
const dec = new TextDecoder();

/** The names e2e.test v1.34.4 uses (`e2e.test --list-images`). */
export const E2E_REFS = {
  agnhost: "registry.k8s.io/e2e-test-images/agnhost:2.56",
  busybox: "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
  pause: "registry.k8s.io/pause:3.10.1",
  nginx: "registry.k8s.io/e2e-test-images/nginx:1.14-4",
  jessieDnsutils: "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7",
} as const;

/** What the agnhost image has besides Debian's minbase (upstream's Alpine list, Debian names). */
const AGNHOST_PACKAGES = [
  "bind9-dnsutils",
  "curl",
  "netcat-openbsd",
  "iproute2",
  "iperf",
  "bash",
  "ca-certificates",
  "nginx-light",
];

/** An image to import into a node, with the extra names it must answer to. */
export interface NodeImage {
  archive: string;
  tags?: string[];
}

/** A component directory of k8s/build.sh (`e2e`, `coredns`, `kube-router`); throws naming the build command. */
export async function componentDir(
  component: "e2e" | "coredns" | "kube-router",
): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [BUILD_SCRIPT, "--print-dir", component],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `The ${component} binaries are not built: run \`deno task k8s:build\` (k8s/build.sh) first`,
    );
  }
  return dec.decode(out.stdout).trim();
}

/** The Debian root the agnhost and nginx images share (debootstrap, once per machine). */
function e2eRoot(): Promise<BuiltImage> {
  return debootstrapTar("e2e-root", AGNHOST_PACKAGES, "localhost/e2e-root");
}

/** Unpacks `root` (a rootfs tar) into a temp dir, lets `fill` add files, then archives it. */
export async function fromRoot(
  o: {
    name: string;
    ref: string;
    key: string[];
    root: BuiltImage;
    fill: (rootfs: string) => Promise<void>;
    config: { entrypoint?: string[]; cmd?: string[] };
  },
): Promise<BuiltImage> {
  const key = (await sha256Hex([o.name, o.root.archive, ...o.key].join("\n"))).slice(0, 16);
  return await cached(`${imageCacheDir()}/${o.name}-${key}.tar`, o.ref, async (tmp) => {
    const dir = await Deno.makeTempDir({ dir: imageCacheDir(), prefix: `${o.name}-` });
    try {
      await Deno.mkdir(`${dir}/rootfs`);
      await runner.run(["tar", "--numeric-owner", "-C", `${dir}/rootfs`, "-xf", o.root.archive]);
      await o.fill(`${dir}/rootfs`);
      await dockerArchive({ rootfs: `${dir}/rootfs`, out: tmp, ref: o.ref, config: o.config });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Links busybox applets for the commands the root does not have (Alpine's base has them all). */
async function addBusyboxApplets(rootfs: string): Promise<void> {
  const busybox = "/bin/busybox";
  await Deno.copyFile(busybox, `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  const applets = (await runner.run([busybox, "--list"])).stdout.split("\n").filter((a) =>
    a && a !== "busybox"
  );
  for (const a of applets) {
    const present = await Promise.any(
      ["bin", "sbin", "usr/bin", "usr/sbin"].map((d) => Deno.lstat(`${rootfs}/${d}/${a}`)),
    ).then(() => true, () => false);
    if (!present) await Deno.symlink("/bin/busybox", `${rootfs}/usr/bin/${a}`);
  }
}

/** Appends the user and group upstream's agnhost image defines (tests run as them). */
async function addImageUsers(rootfs: string): Promise<void> {
  const append = (f: string, line: string) =>
    Deno.writeTextFile(`${rootfs}/etc/${f}`, line, { append: true });
  await append(
    "passwd",
    "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
  );
  await append(
    "group",
    "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n",
  );
  await Deno.mkdir(`${rootfs}/home/user-defined-in-image`, { recursive: true });
  await Deno.chown(`${rootfs}/home/user-defined-in-image`, 1000, 1000);
}

/** agnhost: `/agnhost` (+ `agnhost-2`), `/coredns`, porter's certificate, the tools upstream has. */
export async function agnhostImage(): Promise<BuiltImage> {
  const e2e = await componentDir("e2e");
  const coredns = await componentDir("coredns");
  const porter = await porterCertDir();
  const root = await e2eRoot();
  return await fromRoot({
    name: "agnhost",
    ref: E2E_REFS.agnhost,
    root,
    key: [
      "agnhost-v1",
      await fileSha256(`${e2e}/agnhost`),
      await fileSha256(`${coredns}/coredns`),
      await fileSha256("/bin/busybox"),
    ],
    config: { entrypoint: ["/agnhost"], cmd: ["pause"] },
    fill: async (rootfs) => {
      await addBusyboxApplets(rootfs);
      await addImageUsers(rootfs);
      await Deno.copyFile(`${e2e}/agnhost`, `${rootfs}/agnhost`);
      await Deno.chmod(`${rootfs}/agnhost`, 0o755);
      await Deno.symlink("agnhost", `${rootfs}/agnhost-2`);
      await Deno.copyFile(`${coredns}/coredns`, `${rootfs}/coredns`);
      await Deno.chmod(`${rootfs}/coredns`, 0o755);
      for (const f of ["localhost.crt", "localhost.key"]) {
        await Deno.copyFile(`${porter}/${f}`, `${rootfs}/${f}`);
      }
      await Deno.mkdir(`${rootfs}/uploads`, { recursive: true });
      // nginx-light is in the shared root for the nginx image; agnhost does not start it.
    },
  });
}

/** nginx: Debian's nginx-light in the foreground, its default site on port 80. */
export async function nginxImage(): Promise<BuiltImage> {
  const root = await e2eRoot();
  return await fromRoot({
    name: "nginx",
    ref: E2E_REFS.nginx,
    root,
    key: ["nginx-v1"],
    config: { entrypoint: ["nginx", "-g", "daemon off;"] },
    fill: async (rootfs) => {
      await Deno.writeTextFile(`${rootfs}/var/www/html/index.html`, "nginx\n");
      await Deno.mkdir(`${rootfs}/var/log/nginx`, { recursive: true });
    },
  });
}

/** jessie-dnsutils: Debian with dig (the shared root) and `/coredns`, no entrypoint. */
export async function jessieDnsutilsImage(): Promise<BuiltImage> {
  const coredns = await componentDir("coredns");
  return await fromRoot({
    name: "jessie-dnsutils",
    ref: E2E_REFS.jessieDnsutils,
    root: await e2eRoot(),
    key: ["jessie-dnsutils-v1", await fileSha256(`${coredns}/coredns`)],
    config: {},
    fill: async (rootfs) => {
      await Deno.copyFile(`${coredns}/coredns`, `${rootfs}/coredns`);
      await Deno.chmod(`${rootfs}/coredns`, 0o755);
    },
  });
}

/** CoreDNS's image: the binary (k8s/build.sh component `coredns`) at `/coredns`. */
export async function corednsImage(): Promise<BuiltImage> {
  const dir = await componentDir("coredns");
  const version = /coredns=(\S+)/.exec(await Deno.readTextFile(`${dir}/.complete`))?.[1];
  if (!version) throw new Error(`${dir}/.complete does not name the CoreDNS version`);
  const ref = `registry.k8s.io/coredns/coredns:${version}`;
  const key = (await sha256Hex(`coredns-v1\n${await fileSha256(`${dir}/coredns`)}`)).slice(0, 16);
  return await cached(`${imageCacheDir()}/coredns-${key}.tar`, ref, async (tmp) => {
    const root = await Deno.makeTempDir({ prefix: "hostnic-coredns-" });
    try {
      await Deno.mkdir(`${root}/etc`);
      await Deno.mkdir(`${root}/tmp`);
      await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/:/coredns\n");
      await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
      await Deno.copyFile(`${dir}/coredns`, `${root}/coredns`);
      await Deno.chmod(`${root}/coredns`, 0o755);
      await dockerArchive({ rootfs: root, out: tmp, ref, config: { entrypoint: ["/coredns"] } });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

/** k/k's test/images/agnhost/porter in the module cache (the certificate porter serves). */
async function porterCertDir(): Promise<string> {
  const out = await runner.run([
    "sh",
    "-c",
    'cd "$1" && PATH="$PATH:/usr/local/go/bin" go list -m -f "{{.Dir}}" k8s.io/kubernetes',
    "sh",
    new URL("../../k8s/e2e", import.meta.url).pathname,
  ]);
  return `${out.stdout.trim()}/test/images/agnhost/porter`;
}

/** Every image a conformance node needs, each with the names it answers to. */
export async function conformanceImages(
  o: { log?: (line: string) => void } = {},
): Promise<{ images: NodeImage[]; coredns: BuiltImage }> {
  const log = o.log ?? (() => {});
  const pause = await pauseImage();
  const busybox = await busyboxImage();
  const agnhost = await agnhostImage();
  const nginx = await nginxImage();
  const jessie = await jessieDnsutilsImage();
  const coredns = await corednsImage();
  for (const img of [pause, busybox, agnhost, nginx, jessie, coredns]) {
    log(`image ${img.ref}: ${img.built ? `built in ${img.seconds.toFixed(1)} s` : "cached"}`);
  }
  return {
    images: [
      { archive: pause.archive, tags: [E2E_REFS.pause] },
      { archive: busybox.archive, tags: [E2E_REFS.busybox] },
      { archive: agnhost.archive },
      { archive: nginx.archive },
      { archive: jessie.archive },
      { archive: coredns.archive },
    ],
    coredns,
  };
}
