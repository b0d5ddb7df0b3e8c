/**
 * kube-router's image, built on this machine like the other node images (images.ts) under the name
 * deploy/policy/kube-router.yaml gives (upstream's `cloudnativelabs/kube-router:v2.1.0`): a
 * docker-archive tar cached under ~/.cache/hostnic/images, keyed by the binary and the root,
 * imported into each node's containerd.
 *
 * Why a Debian root and not the binary alone (as the CoreDNS image is): kube-router's firewall
 * shells out to `iptables-save`/`iptables-restore`, `ipset` and `conntrack`, so the image needs
 * those userspace tools. Debian's `iptables` package defaults to the nf_tables backend
 * (`iptables-nft`), which is what the node's kube-proxy uses (the machine's /usr/sbin/iptables is
 * iptables-nft) and what hostnic's image uses (its base is the same Debian `iptables`): all three
 * must write the same backend, or kube-router's FORWARD jumps would live in a table the others never
 * see. A debootstrap minbase (images.ts's `debootstrapTar`) with `ipset` and `conntrack` added is the
 * smallest root built here that has all three at the versions the node's kube-proxy sees.
 */
import { type BuiltImage, debootstrapTar, fileSha256 } from "./images.ts";
import { componentDir, fromRoot } from "./images_e2e.ts";

/** What deploy/policy/kube-router.yaml's DaemonSet runs (upstream's name; never pulled here). */
export const KUBE_ROUTER_REF = "docker.io/cloudnativelabs/kube-router:v2.1.0";

/** Debian packages kube-router's policy controller calls (plus iproute2 for diagnostics). */
const KUBE_ROUTER_PACKAGES = ["iptables", "ipset", "conntrack", "iproute2", "ca-certificates"];

/** The Debian root of the image (debootstrap, once per machine). */
export function kubeRouterRoot(): Promise<BuiltImage> {
  return debootstrapTar("kube-router-root", KUBE_ROUTER_PACKAGES, "localhost/kube-router-root");
}

/** kube-router's image: the binary (k8s/build.sh component `kube-router`) at /usr/local/bin. */
export async function kubeRouterImage(
  o: { log?: (line: string) => void } = {},
): Promise<BuiltImage> {
  const log = o.log ?? (() => {});
  const dir = await componentDir("kube-router");
  const bin = `${dir}/kube-router`;
  const root = await kubeRouterRoot();
  if (root.built) log(`kube-router root (debootstrap) built in ${root.seconds.toFixed(0)} s`);
  return await fromRoot({
    name: "kube-router",
    ref: KUBE_ROUTER_REF,
    key: ["kube-router-image-v1", await fileSha256(bin)],
    root,
    fill: async (rootfs) => {
      await Deno.copyFile(bin, `${rootfs}/usr/local/bin/kube-router`);
      await Deno.chmod(`${rootfs}/usr/local/bin/kube-router`, 0o755);
    },
    config: { entrypoint: ["/usr/local/bin/kube-router"] },
  });
}
