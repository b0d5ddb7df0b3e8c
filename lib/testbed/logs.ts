/**
 * What the test bed's processes print: each stream collected into a log file under the bed's
 * directory and an in-memory tail (for error messages), optionally echoed line by line; and the
 * check that no file under the directory holds the simulated cloud's secret key.
 */

export class ProcessLogs {
  readonly #dir: string;
  readonly #onLog?: (who: string, line: string) => void;
  readonly #text = new Map<string, string>();

  constructor(dir: string, onLog?: (who: string, line: string) => void) {
    this.#dir = dir;
    this.#onLog = onLog;
  }

  /** Collects a process's stream into memory (tail for error messages) and `<dir>/<name>.log`. */
  drain(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    const onLog = this.#onLog;
    return (async () => {
      const file = await Deno.open(`${this.#dir}/${name}.log`, {
        create: true,
        append: true,
      });
      try {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          await file.write(new TextEncoder().encode(chunk));
          const text = (this.#text.get(name) ?? "") + chunk;
          this.#text.set(name, text.slice(-8000));
          if (onLog) { for (const l of chunk.split("\n").filter(Boolean)) onLog(name, l); }
        }
      } finally {
        file.close();
      }
    })().catch(() => {});
  }

  /** The last 2000 characters `name` printed. */
  tail(name: string): string {
    return (this.#text.get(name) ?? "").slice(-2000);
  }
}

/**
 * Files under `dir` (logs, state stores, journals) that contain `secret`, except the `allowed`
 * ones (the credentials file and the scenario). A missing `dir` scans nothing.
 */
export async function secretLeaks(
  dir: string,
  o: { secret: string; allowed: ReadonlySet<string> },
): Promise<{ scanned: string[]; leaks: string[] }> {
  const secret = new TextEncoder().encode(o.secret);
  const scanned: string[] = [];
  const leaks: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && !o.allowed.has(path)) {
        scanned.push(path);
        if (containsBytes(await Deno.readFile(path), secret)) leaks.push(path);
      }
    }
  };
  await walk(dir).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  return { scanned, leaks };
}

function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
