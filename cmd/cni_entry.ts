/**
 * Entry of the bundled CNI plugin that `hostnic install` writes for a `deno run` installation
 * (lib/install/shim.ts): the CNI mode of main.ts alone, so `deno bundle` makes it one module with
 * no npm package and no other mode in it. Like main.ts it is an entry, hence allowed to exit; the
 * shim runs it only with CNI_COMMAND set and sends every other mode to main.ts.
 */
import { main } from "./cni.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
