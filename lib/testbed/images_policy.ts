/**
 * kube-router's image (deploy/policy/kube-router.yaml), built here like the other node images
 * (lib/testbed/images.ts): the static kube-router binary from `bash k8s/build.sh` on a debootstrap
 * Debian base that also has ipset and conntrack. kube-router shells out to iptables(-save/-restore),
 * ipset and conntrack; Debian's packages bring them with the shared libraries and the
 * iptables-nft/legacy alternatives they need, which copying static binaries would not (Debian ships
 * none of the three static). The same base layout as hostnic's image, so the node's iptables
 * backend (nft) is the one both use.
 */
import { CommandRunner } from "../linux/exec.ts";
import {
  type BuiltImage,
  cached,
  debianBase,
  dockerArchive,
  fileSha256,
  imageCacheDir,
  sha256Hex,
} from "./images.ts";

const runner = new CommandRunner();
const REPO = new URL("../../", import.meta.url).pathname;

/** What deploy/policy/kube-router.yaml names (`image: hostnic-kube-router:2.1.0`). */
export const KUBE_ROUTER_REF = "docker.io/library/hostnic-kube-router:2.1.0";
/** The userspace kube-router's policy controller runs. */
export const KUBE_ROUTER_PACKAGES = ["ipset", "conntrack"];

/** The directory `bash k8s/build.sh` built kube-router into (throws with the fix if not built). */
export async function kubeRouterBinDir(): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [`${REPO}k8s/build.sh`, "--print-kube-router-dir"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error("kube-router is not built: run `bash k8s/build.sh` (or `deno task k8s:build`)");
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** kube-router's image as a docker-archive tar (cached by its base and binary). */
export async function kubeRouterImage(): Promise<BuiltImage & { base: BuiltImage }> {
  const bin = `${await kubeRouterBinDir()}/kube-router`;
  const base = await debianBase(KUBE_ROUTER_PACKAGES);
  const key = (await sha256Hex(`kube-router-image-v1\n${base.archive}\n${await fileSha256(bin)}`))
    .slice(
      0,
      16,
    );
  const img = await cached(
    `${imageCacheDir()}/kube-router-${key}.tar`,
    KUBE_ROUTER_REF,
    async (tmp) => {
      const dir = await Deno.makeTempDir({ dir: imageCacheDir(), prefix: "kube-router-" });
      try {
        await Deno.mkdir(`${dir}/rootfs`);
        await runner.run(["tar", "--numeric-owner", "-C", `${dir}/rootfs`, "-xf", base.archive]);
        await Deno.copyFile(bin, `${dir}/rootfs/usr/local/bin/kube-router`);
        await Deno.chmod(`${dir}/rootfs/usr/local/bin/kube-router`, 0o755);
        await dockerArchive({
          rootfs: `${dir}/rootfs`,
          out: tmp,
          ref: KUBE_ROUTER_REF,
          config: { entrypoint: ["/usr/local/bin/kube-router"] },
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
  return { ...img, base };
}
