/** Joins two connections both ways; when either side ends or fails, both are closed. */
export async function splice(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  await Promise.race([
    a.readable.pipeTo(b.writable).catch(() => {}),
    b.readable.pipeTo(a.writable).catch(() => {}),
  ]);
  for (const c of [a, b]) {
    try {
      c.close();
    } catch {
      // already closed by its stream
    }
  }
}
