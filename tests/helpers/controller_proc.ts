/**
 * A `hostnic controller` process for tests: `deno run main.ts controller` in this namespace with a
 * kubeconfig, the simulator's client config, a loopback manageAddr, a short lease and sync period;
 * logs drained into the cluster's log files (`ctl-<name>`).
 */
import type { Cluster } from "../../lib/testbed/cluster.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const TEST_LEASE = [
  "--lease-duration",
  "3",
  "--renew-deadline",
  "2",
  "--retry-period",
  "0.5",
];

export class ControllerProc {
  readonly child: Deno.ChildProcess;
  readonly manageAddr: string;
  #status?: Deno.CommandStatus;
  readonly #logs: Promise<void>;

  constructor(
    readonly name: string,
    o: {
      cluster: Cluster;
      kubeconfig: string;
      port: number;
      env?: Record<string, string>;
      args?: string[];
    },
  ) {
    this.manageAddr = `127.0.0.1:${o.port}`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "controller",
        "--kubeconfig",
        o.kubeconfig,
        "--QyAccessFilePath",
        o.cluster.clientConfigFile,
        "--manageAddr",
        this.manageAddr,
        "--sync-period",
        "0.5",
        "--loglevel",
        "debug",
        ...TEST_LEASE,
        ...(o.args ?? []),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", POD_NAME: name, ...(o.env ?? {}) },
    }).spawn();
    this.#logs = Promise.all([
      o.cluster.drain(`ctl-${name}`, this.child.stdout),
      o.cluster.drain(`ctl-${name}`, this.child.stderr),
    ]).then(() => {});
    this.child.status.then((s) => this.#status = s);
  }

  get exited(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  async metrics(): Promise<string> {
    const res = await fetch(`http://${this.manageAddr}/metrics`);
    return await res.text();
  }

  /** Value of a sample line `name{labels} value` (0 when absent). */
  async metric(sample: string): Promise<number> {
    const text = await this.metrics().catch(() => "");
    const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
    return line ? Number(line.slice(sample.length + 1)) : 0;
  }

  async kill(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (!this.#status) {
      try {
        this.child.kill(signal);
      } catch { /* already gone */ }
    }
    const s = await this.child.status;
    await this.#logs;
    return s;
  }
}
