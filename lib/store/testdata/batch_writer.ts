/**
 * Child process for `level_store_test.ts` (run with `deno run -A`).
 *
 *   batch_writer.ts <dir> batches — write 3-key batches forever, printing "committed <i>" after
 *                                    each resolves; the test SIGKILLs it mid-stream.
 *   batch_writer.ts <dir> hold    — open the store, print "ready", hold it until stdin closes.
 */
import { LevelStore } from "../level_store.ts";

const [dir, mode] = Deno.args;
const store = await LevelStore.open({ dir });
const out = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(out.encode(line + "\n"));

if (mode === "hold") {
  say("ready");
  // Blocks until the parent closes our stdin (or kills us).
  for await (const _ of Deno.stdin.readable) { /* ignore input */ }
  await store.close();
} else {
  // Big enough values that a kill often lands while LevelDB is writing a batch.
  const pad = "x".repeat(8192);
  for (let i = 0;; i++) {
    const id = String(i).padStart(6, "0");
    await store.batch(["a", "b", "c"].map((part) => ({
      type: "put" as const,
      key: `crash/${id}/${part}`,
      value: { i, part, pad },
    })));
    say(`committed ${i}`);
  }
}
