/**
 * The focus and skip lists of the conformance runs (conformance/focus.txt, conformance/skip.txt):
 * one ginkgo regular expression a line; `#` starts a comment. In skip.txt every pattern must come
 * right after at least one comment line, its reason, so no exclusion is without one.
 */

export interface Pattern {
  regex: string;
  /** The comment lines right above it (skip.txt: the reason). */
  reason: string;
  line: number;
}

const REPO = new URL("../../", import.meta.url).pathname;
export const FOCUS_FILE = `${REPO}conformance/focus.txt`;
export const SKIP_FILE = `${REPO}conformance/skip.txt`;

/** Parses a list; `needReason`: a pattern without a comment above it is an error. */
export function parseList(text: string, o: { file: string; needReason: boolean }): Pattern[] {
  const out: Pattern[] = [];
  let comment: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") {
      comment = [];
      return;
    }
    if (line.startsWith("#")) {
      comment.push(line.replace(/^#\s?/, ""));
      return;
    }
    try {
      new RegExp(line);
    } catch (err) {
      throw new Error(`${o.file}:${i + 1}: not a regular expression: ${(err as Error).message}`);
    }
    if (o.needReason && comment.length === 0) {
      throw new Error(`${o.file}:${i + 1}: "${line}" has no reason (a comment line above it)`);
    }
    out.push({ regex: line, reason: comment.join(" "), line: i + 1 });
  });
  return out;
}

export async function readList(file: string, needReason: boolean): Promise<Pattern[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseList(text, { file, needReason });
}
