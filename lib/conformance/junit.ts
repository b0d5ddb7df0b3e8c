/**
 * Reads the JUnit report ginkgo writes (`--ginkgo.junit-report`): one result per spec, with its
 * name, state, duration and failure message. Ginkgo's format is flat (testsuites > testsuite >
 * testcase, whose child `skipped`, `failure` or `error` gives the state), so a small reader does.
 */

export type SpecState = "passed" | "failed" | "skipped";

export interface SpecResult {
  name: string;
  state: SpecState;
  seconds: number;
  message: string;
}

function unescape(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#[0-9]+);/g, (_, e: string) => {
    switch (e) {
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
      case "amp":
        return "&";
      default:
        return String.fromCodePoint(
          e.startsWith("#x") ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10),
        );
    }
  });
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? unescape(m[1]) : undefined;
}

/**
 * The specs of a report. Ginkgo's own setup entries (`[SynchronizedBeforeSuite]`, `[ReportAfterSuite]`
 * …) are reported too when they fail, as their bracketed names say.
 */
export function parseJunit(xml: string): SpecResult[] {
  const out: SpecResult[] = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const open = m[1];
    const body = m[3] ?? "";
    const rawName = attr(open, "name") ?? "";
    // Ginkgo names a spec "[It] <text> [label, label]"; keep the text (the labels repeat its tags).
    const name = rawName.replace(/^\[It\]\s*/, "").replace(/ \[[^\]]*, [^\]]*\]$/, "");
    const status = attr(open, "status");
    let state: SpecState = "passed";
    let message = "";
    const fail = /<(failure|error)\b([^>]*)>/.exec(body);
    if (fail) {
      state = "failed";
      message = attr(fail[0], "message") ?? "";
    } else if (/<skipped\b/.test(body) || status === "skipped" || status === "pending") {
      state = "skipped";
      const sk = /<skipped\b([^>]*)/.exec(body);
      message = sk ? (attr(sk[0], "message") ?? "") : "";
    } else if (status === "failed" || status === "panicked" || status === "timedout") {
      state = "failed";
    }
    out.push({ name, state, seconds: Number(attr(open, "time") ?? 0), message: message.trim() });
  }
  return out;
}
