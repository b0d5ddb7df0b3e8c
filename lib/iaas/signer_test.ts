import assert from "node:assert/strict";
import {
  canonicalQuery,
  computeSignature,
  formatTimeStamp,
  percentEncode,
  type SignatureMethod,
  stringToSign,
  timingSafeEqual,
} from "./signer.ts";

// Test vectors from /work/shared/reference/qingcloud-api.md §1.7.

const V1_PARAMS: Record<string, string> = {
  access_key_id: "QYACCESSKEYIDEXAMPLE",
  action: "RunInstances",
  count: "1",
  image_id: "centos64x86a",
  instance_name: "demo",
  instance_type: "small_b",
  login_mode: "passwd",
  login_passwd: "QingCloud20130712",
  signature_method: "HmacSHA256",
  signature_version: "1",
  time_stamp: "2013-08-27T14:30:10Z",
  version: "1",
  "vxnets.1": "vxnet-0",
  zone: "pek3a",
};

Deno.test("percentEncode matches the spec's encoding-table example", () => {
  assert.equal(
    percentEncode("测试 a+b/c=d,e!f(g)h*i~j_k.l-m"),
    "%E6%B5%8B%E8%AF%95%20a%2Bb%2Fc%3Dd%2Ce%21f%28g%29h%2Ai~j_k.l-m",
  );
  assert.equal(percentEncode("52:54:00:12:34:56"), "52%3A54%3A00%3A12%3A34%3A56");
  assert.equal(percentEncode("'"), "%27");
});

Deno.test("V1: docs example string to sign and signature", async () => {
  assert.equal(
    stringToSign("GET", "/iaas/", V1_PARAMS),
    "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=RunInstances&count=1&image_id=centos64x86a&instance_name=demo&instance_type=small_b&login_mode=passwd&login_passwd=QingCloud20130712&signature_method=HmacSHA256&signature_version=1&time_stamp=2013-08-27T14%3A30%3A10Z&version=1&vxnets.1=vxnet-0&zone=pek3a",
  );
  const sig = await computeSignature({
    method: "GET",
    path: "/iaas/",
    params: V1_PARAMS,
    secret: "SECRETACCESSKEY",
    signatureMethod: "HmacSHA256",
  });
  assert.equal(sig, "byjccvWIvAftaq+oublemagH3bYAlDWxxLFAzAsyslw=");
  assert.equal(percentEncode(sig), "byjccvWIvAftaq%2BoublemagH3bYAlDWxxLFAzAsyslw%3D");
});

Deno.test("V2: docs example with zone pek1", async () => {
  const sig = await computeSignature({
    method: "GET",
    path: "/iaas/",
    params: { ...V1_PARAMS, zone: "pek1" },
    secret: "SECRETACCESSKEY",
    signatureMethod: "HmacSHA256",
  });
  assert.equal(sig, "32bseYy39DOlatuewpeuW5vpmW51sD1A/JdGynqSpP8=");
});

Deno.test("V3: Go SDK vector, path without trailing slash", async () => {
  const params = {
    access_key_id: "ENV_ACCESS_KEY_ID",
    "instance.0": "i-xxxxxxxx",
    action: "DescribeInstance",
    verbose: "1",
    signature_method: "HmacSHA256",
    signature_version: "1",
    time_stamp: formatTimeStamp(new Date("0001-01-01T00:00:00Z")),
  };
  assert.equal(
    stringToSign("GET", "/iaas", params),
    "GET\n/iaas\naccess_key_id=ENV_ACCESS_KEY_ID&action=DescribeInstance&instance.0=i-xxxxxxxx&signature_method=HmacSHA256&signature_version=1&time_stamp=0001-01-01T00%3A00%3A00Z&verbose=1",
  );
  const sig = await computeSignature({
    method: "GET",
    path: "/iaas",
    params,
    secret: "ENV_SECRET_ACCESS_KEY",
    signatureMethod: "HmacSHA256",
  });
  assert.equal(sig, "ZHa2iQ8PeyP1ktMF9C+DjOQBl537ti9RnYZ1Qqr6KRg=");
});

const COMMON: Record<string, string> = {
  access_key_id: "QYACCESSKEYIDEXAMPLE",
  time_stamp: "2024-01-02T03:04:05Z",
  zone: "pek3a",
  version: "1",
  signature_version: "1",
  signature_method: "HmacSHA256",
};

interface NVector {
  id: string;
  method?: "GET" | "POST";
  path?: string;
  dropVersion?: boolean;
  params: Record<string, string>;
  expected: string;
  toSign?: string;
}

const N_VECTORS: NVector[] = [
  {
    id: "N1",
    params: {
      action: "DescribeNics",
      "nics.1": "52:54:00:12:34:56",
      "nics.2": "52:54:00:ab:cd:ef",
      status: "in-use",
      offset: "0",
      limit: "100",
    },
    expected: "iP8YALMIHDYAe7XN5t9jYZeuTt/bqDjZoeo+sZn6ZQM=",
    toSign:
      "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=DescribeNics&limit=100&nics.1=52%3A54%3A00%3A12%3A34%3A56&nics.2=52%3A54%3A00%3Aab%3Acd%3Aef&offset=0&signature_method=HmacSHA256&signature_version=1&status=in-use&time_stamp=2024-01-02T03%3A04%3A05Z&version=1&zone=pek3a",
  },
  {
    id: "N2",
    params: {
      action: "CreateNics",
      vxnet: "vxnet-abc1234",
      count: "2",
      nic_name: "hostnic pool~a*b",
      "private_ips.1": "192.168.100.10",
      "private_ips.2": "192.168.100.11",
    },
    expected: "2BJXKkmY31HNVzbV/LZU0PLNT6bVWe4kicQIct7vFVU=",
    toSign:
      "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=CreateNics&count=2&nic_name=hostnic%20pool~a%2Ab&private_ips.1=192.168.100.10&private_ips.2=192.168.100.11&signature_method=HmacSHA256&signature_version=1&time_stamp=2024-01-02T03%3A04%3A05Z&version=1&vxnet=vxnet-abc1234&zone=pek3a",
  },
  {
    id: "N3",
    params: {
      signature_method: "HmacSHA1",
      action: "AttachNics",
      "nics.1": "52:54:00:12:34:56",
      instance: "i-abcd1234",
    },
    expected: "jVqIR2FgXZLrd2rL88VuJM7hyos=",
  },
  {
    id: "N4",
    method: "POST",
    params: {
      action: "AttachTags",
      "resource_tag_pairs.1.tag_id": "tag-hp55o9i5",
      "resource_tag_pairs.1.resource_type": "nic",
      "resource_tag_pairs.1.resource_id": "52:54:00:12:34:56",
    },
    expected: "IN1jLF6IcjYWg9aUrDPqsmmjjLFoUJCFjkOvjBEpsNc=",
  },
  {
    id: "N5",
    params: {
      action: "DescribeJobs",
      "jobs.1": "j-aaaa1111",
      "jobs.2": "j-bbbb2222",
      "jobs.10": "j-cccc3333",
    },
    expected: "RZDe0uN//os1RJy4Cq+tJSWM1Sl1WPybp/r2x4gQ+FY=",
  },
  {
    id: "N6",
    path: "/iaas",
    dropVersion: true,
    params: {
      action: "DescribeNics",
      "nics.1": "52:54:00:12:34:56",
      limit: "20",
      offset: "0",
    },
    expected: "enNw69VkUBkFsxsqge2brgy2EKU63uHkO0CaMsrSyp8=",
    toSign:
      "GET\n/iaas\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=DescribeNics&limit=20&nics.1=52%3A54%3A00%3A12%3A34%3A56&offset=0&signature_method=HmacSHA256&signature_version=1&time_stamp=2024-01-02T03%3A04%3A05Z&zone=pek3a",
  },
];

Deno.test("own NIC vectors N1-N6", async (t) => {
  for (const v of N_VECTORS) {
    await t.step(v.id, async () => {
      const params: Record<string, string> = { ...COMMON, ...v.params };
      if (v.dropVersion) delete params.version;
      const method = v.method ?? "GET";
      const path = v.path ?? "/iaas/";
      if (v.toSign) assert.equal(stringToSign(method, path, params), v.toSign);
      const sig = await computeSignature({
        method,
        path,
        params,
        secret: "SECRETACCESSKEY",
        signatureMethod: params.signature_method as SignatureMethod,
      });
      assert.equal(sig, v.expected);
    });
  }
});

Deno.test("canonicalQuery sorts by byte order and excludes signature", () => {
  const q = canonicalQuery({
    "jobs.2": "b",
    "jobs.10": "c",
    "jobs.1": "a",
    Zed: "upper",
    signature: "ignored",
    empty: "",
  });
  assert.equal(q, "Zed=upper&empty=&jobs.1=a&jobs.10=c&jobs.2=b");
});

Deno.test("timingSafeEqual compares content and length", () => {
  assert.equal(timingSafeEqual("abc=", "abc="), true);
  assert.equal(timingSafeEqual("abc=", "abd="), false);
  assert.equal(timingSafeEqual("abc", "abc="), false);
  assert.equal(timingSafeEqual("", ""), true);
});

Deno.test("formatTimeStamp drops milliseconds and keeps Z", () => {
  assert.equal(formatTimeStamp(new Date("2024-01-02T03:04:05.678Z")), "2024-01-02T03:04:05Z");
});
