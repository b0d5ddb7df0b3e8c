/**
 * An emulated QingCloud VPC inside a `NetnsLab`, shaped like the simulator's Linux backend:
 *
 *   <tag>-vx    the VPC router: bridge `br-node` (node vxnet, gateway .0.1) and bridge `br-pods`
 *               (pod vxnet, gateway .1.1), forwarding between them
 *   <tag>-node  an instance: `eth0` = node IP .0.2 on br-node, default via .0.1; attached NICs
 *               are veth ends `eth<n>` (down, no address, MAC 52:54:…) whose peers join br-pods
 *
 * The SDN's knowledge of a pod IP (the NIC's MAC) is emulated with a permanent neighbour entry
 * on br-pods (`sdnLearn`); shared-mode tests leave it out so the node's proxy entries must answer. Addresses are 172.<octet>.0.0/24 and 172.<octet>.1.0/24,
 * only ever inside the lab's namespaces.
 */
import type { VxnetSpec } from "../../lib/linux/spec.ts";
import { NetnsLab } from "./netns.ts";

export interface Nic {
  /** Name in the node namespace (eth1, eth2, …). */
  name: string;
  mac: string;
}

export class VpcLab {
  readonly lab: NetnsLab;
  readonly vx: string;
  readonly node: string;
  readonly nodeIp: string;
  readonly podVxnet: VxnetSpec;
  readonly #octet: number;
  #nics = 0;
  #pods = 0;

  private constructor(lab: NetnsLab, octet: number) {
    this.lab = lab;
    this.#octet = octet;
    this.vx = lab.name("vx");
    this.node = lab.name("node");
    this.nodeIp = `172.${octet}.0.2`;
    this.podVxnet = { cidr: `172.${octet}.1.0/24`, gateway: `172.${octet}.1.1` };
  }

  static async create(lab: NetnsLab, opts: { octet?: number } = {}): Promise<VpcLab> {
    const vpc = new VpcLab(lab, opts.octet ?? 22);
    const o = vpc.#octet;
    await lab.addNetns(["vx", "node"]);
    await lab.ipBatch(vpc.vx, [
      "link add br-node type bridge",
      "link add br-pods type bridge",
      `address add 172.${o}.0.1/24 dev br-node`,
      `address add ${vpc.podVxnet.gateway}/24 dev br-pods`,
      "link set dev br-node up",
      "link set dev br-pods up",
    ]);
    // Like the cloud SDN, the router answers ARP for any address of the pod vxnet it can route
    // (proxy_arp_pvlan: even back out of the same segment), at once (proxy_delay 0).
    await lab.run(vpc.vx, [
      "sysctl",
      "-q",
      "-w",
      "net.ipv4.ip_forward=1",
      "net.ipv4.conf.all.send_redirects=0",
      "net.ipv4.conf.br-pods.send_redirects=0",
      "net.ipv4.conf.br-pods.proxy_arp_pvlan=1",
      "net.ipv4.neigh.br-pods.proxy_delay=0",
    ]);
    await lab.veth(
      { netns: vpc.vx, name: "node0", master: "br-node" },
      { netns: vpc.node, name: "eth0", addrs: [`${vpc.nodeIp}/24`] },
    );
    await lab.ip(vpc.node, `route add default via 172.${o}.0.1 dev eth0`);
    return vpc;
  }

  /** The i-th pod address of the pod vxnet (172.<octet>.1.<10+i>). */
  podIp(i: number): string {
    return `172.${this.#octet}.1.${10 + i}`;
  }

  /** Attaches `count` NICs to the node (2 spawns for any count); they arrive down, unnumbered. */
  async attachNics(count: number): Promise<Nic[]> {
    const tagHex = this.lab.tag.slice(3);
    const nics: Nic[] = [];
    const vxLines: string[] = [];
    for (let i = 0; i < count; i++) {
      const n = ++this.#nics;
      const mac = `52:54:${tagHex.slice(0, 2)}:${tagHex.slice(2, 4)}:${
        (n >> 8).toString(16).padStart(2, "0")
      }:${(n & 255).toString(16).padStart(2, "0")}`;
      nics.push({ name: `eth${n}`, mac });
      vxLines.push(
        `link add nic${n} type veth peer name eth${n} address ${mac} netns /run/netns/${this.node}`,
        `link set dev nic${n} master br-pods`,
        `link set dev nic${n} up`,
      );
    }
    await this.lab.ipBatch(this.vx, vxLines);
    return nics;
  }

  async attachNic(): Promise<Nic> {
    return (await this.attachNics(1))[0];
  }

  /** Emulates the SDN answering ARP for `ip` with `mac` (permanent neighbour on br-pods). */
  async sdnLearn(entries: { ip: string; mac: string }[]): Promise<void> {
    await this.lab.ipBatch(
      this.vx,
      entries.map((e) => `neigh replace ${e.ip} lladdr ${e.mac} dev br-pods nud permanent`),
    );
  }

  /** Creates `count` pod namespaces. */
  async addPods(count: number): Promise<string[]> {
    const roles = Array.from({ length: count }, () => `pod${++this.#pods}`);
    return await this.lab.addNetns(roles);
  }

  async addPod(): Promise<string> {
    return (await this.addPods(1))[0];
  }
}
