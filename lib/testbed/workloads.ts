/**
 * The busybox workloads the real-node test, the Kubernetes demo and the start-up bench create with
 * kubectl (image `localhost/busybox:1`, built by images.ts, never pulled).
 */

export interface BusyboxDeployment {
  name: string;
  replicas: number;
  /** `kubernetes.io/hostname` of the node its pods must run on. */
  node: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /**
   * true (default): each pod answers HTTP on 8080 with its pod name (Service checks tell backends
   * apart) and is Ready once it listens; false: pods only sleep (Ready when started).
   */
  serve?: boolean;
}

/** A Deployment manifest (JSON, for `kubectl apply -f -`), pods pinned to `node`. */
export function busyboxDeployment(o: BusyboxDeployment): string {
  const serve = o.serve ?? true;
  return JSON.stringify({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: o.name, namespace: "default" },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: { app: o.name } },
      template: {
        metadata: { labels: { app: o.name, ...o.labels }, annotations: o.annotations ?? {} },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": o.node },
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: "main",
            image: "localhost/busybox:1",
            imagePullPolicy: "Never",
            ...(serve
              ? {
                command: [
                  "sh",
                  "-c",
                  "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www",
                ],
                ports: [{ containerPort: 8080 }],
                readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
              }
              : { command: ["sleep", "3600"] }),
          }],
        },
      },
    },
  });
}

/**
 * A shell command printing the body's last line of `GET /` (busybox nc: Debian's static busybox
 * `wget` crashes in its name-service lookup, even for an address).
 */
export function httpGet(ip: string, port: number): string {
  return `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${ip} ${port} | tail -1`;
}
