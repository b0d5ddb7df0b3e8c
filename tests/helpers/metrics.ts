/** Reading a node daemon's Prometheus metrics (its --manageAddr, 127.0.0.1:31081 in the testbed). */
import { CommandRunner } from "../../lib/linux/exec.ts";
import type { ClusterNode } from "../../lib/testbed/cluster.ts";

const runner = new CommandRunner();

/** A daemon's metric value (sum over label sets), read inside its node namespace. */
export async function metric(node: ClusterNode, name: string): Promise<number> {
  const out = await runner.run(["curl", "-s", "http://127.0.0.1:31081/metrics"], {
    netns: node.netns,
  });
  let sum = 0;
  for (const line of out.stdout.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.trim().split(/\s+/).pop());
    }
  }
  return sum;
}
