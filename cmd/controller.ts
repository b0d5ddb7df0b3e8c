/**
 * `hostnic controller`: the cluster controller (shared-mode IPAM).
 * Not part of this build yet: the building blocks live in lib/ and the mode is wired up by the
 * issue that delivers it. Until then it says so plainly instead of pretending to work.
 */
export function main(_args: string[]): Promise<number> {
  console.error(
    "hostnic controller: the cluster controller (shared-mode IPAM) is not available in this build yet",
  );
  return Promise.resolve(1);
}
