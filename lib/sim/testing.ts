/**
 * Test helpers for the simulator (used by its own tests and by other modules' tests): a small
 * scenario and a signed-request helper built on the simulator's own signer (signature.ts, checked
 * against the spec's vectors), so no simulator test depends on the client it examines.
 */
import { encodeComponent, formatTimeStamp, type HttpMethod, sign } from "./signature.ts";
import { type Scenario, scenarioFromObject } from "./scenario.ts";

export const TEST_KEY_ID = "SIMTESTKEY0001";
export const TEST_SECRET = "sim-test-secret-0001";
export const OTHER_KEY_ID = "SIMOTHERKEY0001";
export const OTHER_SECRET = "sim-other-secret-0001";

/** Two vxnets in one VPC, one routerless vxnet, two running instances and one stopped. */
export function testScenarioObject(): Record<string, unknown> {
  return {
    zone: "pek3a",
    seed: 7,
    credentials: [
      { qy_access_key_id: TEST_KEY_ID, qy_secret_access_key: TEST_SECRET, owner: "usr-Test0001" },
      {
        qy_access_key_id: OTHER_KEY_ID,
        qy_secret_access_key: OTHER_SECRET,
        owner: "usr-Other001",
      },
    ],
    vpc_routers: [{ id: "rtr-test0001", cidr: "172.25.0.0/16" }],
    vxnets: [
      {
        id: "vxnet-a",
        vpc_router_id: "rtr-test0001",
        cidr: "172.25.1.0/24",
        dyn_ip_start: "172.25.1.100",
        dyn_ip_end: "172.25.1.199",
      },
      { id: "vxnet-b", vpc_router_id: "rtr-test0001", cidr: "172.25.2.0/24" },
      { id: "vxnet-nodhcp", vpc_router_id: "rtr-test0001", cidr: "172.25.3.0/24", dhcp: false },
      { id: "vxnet-basic", cidr: "10.240.0.0/24", vxnet_type: 2 },
    ],
    instances: [
      { id: "i-one", vxnet: "vxnet-a", private_ip: "172.25.1.10" },
      { id: "i-two", vxnet: "vxnet-a", private_ip: "172.25.1.11" },
      { id: "i-stopped", vxnet: "vxnet-a", private_ip: "172.25.1.12", status: "stopped" },
    ],
    security_groups: [{ id: "sg-test0001", name: "nodes" }],
    knobs: { jobLatencyMs: 0 },
  };
}

export function testScenario(patch: Record<string, unknown> = {}): Scenario {
  return scenarioFromObject({ ...testScenarioObject(), ...patch });
}

export interface SignedRequestOptions {
  /** Base URL including the path, e.g. `http://127.0.0.1:1234/iaas/`. */
  url: string;
  action: string;
  params?: Record<string, string | number>;
  method?: HttpMethod;
  keyId?: string;
  secret?: string;
  zone?: string;
  /** Overrides the signed time (default now). */
  time?: Date;
  signatureMethod?: "HmacSHA256" | "HmacSHA1";
  /** Changes a parameter after signing (tamper tests). */
  tamper?: Record<string, string>;
}

/** Builds a signed GET URL or POST request the way the SDKs do. */
export async function signedRequest(o: SignedRequestOptions): Promise<Request> {
  const method = o.method ?? "GET";
  const u = new URL(o.url);
  const params: Record<string, string> = {
    action: o.action,
    zone: o.zone ?? "pek3a",
    access_key_id: o.keyId ?? TEST_KEY_ID,
    signature_method: o.signatureMethod ?? "HmacSHA256",
    signature_version: "1",
    time_stamp: formatTimeStamp(o.time ?? new Date()),
    version: "1",
  };
  for (const [k, v] of Object.entries(o.params ?? {})) params[k] = String(v);
  const signature = await sign({
    method,
    path: u.pathname,
    params,
    secret: o.secret ?? TEST_SECRET,
    signatureMethod: o.signatureMethod ?? "HmacSHA256",
  });
  const sent = { ...params, ...o.tamper };
  const body =
    Object.keys(sent).sort().map((k) => `${encodeComponent(k)}=${encodeComponent(sent[k])}`)
      .join("&") + `&signature=${encodeComponent(signature)}`;
  if (method === "GET") return new Request(`${u.origin}${u.pathname}?${body}`);
  return new Request(`${u.origin}${u.pathname}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
  });
}

/** Sends a signed request and returns the JSON reply. */
export async function callApi(o: SignedRequestOptions): Promise<Record<string, unknown>> {
  const res = await fetch(await signedRequest(o));
  return await res.json();
}
