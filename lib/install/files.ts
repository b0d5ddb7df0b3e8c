/**
 * File operations of the installer: a file is replaced whole or not at all (temp file in the same
 * directory, fsync, chmod, rename, fsync the directory), and a crashed run's temp files are
 * recognisable by name and removed by the next run.
 *
 * Temp names are `.<name>.tmp-<pid>-<random>`: hidden, and without a `.conf`/`.conflist`/`.json`
 * suffix, so a container runtime scanning /etc/cni/net.d never loads one.
 */

const CHUNK = 1 << 16;

export function tempPrefix(name: string): string {
  return `.${name}.tmp-`;
}

function tempPath(dir: string, name: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  return `${dir}/${tempPrefix(name)}${Deno.pid}-${rand}`;
}

/** fsync a directory so a rename or unlink in it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/**
 * Writes `dir/name` atomically with `mode`: the bytes come from `data` (or are copied from the file
 * `data.copyFrom`). On failure the temp file is removed and the target is left as it was.
 */
export async function writeAtomic(
  dir: string,
  name: string,
  data: Uint8Array | { copyFrom: string },
  mode: number,
): Promise<void> {
  const tmp = tempPath(dir, name);
  let done = false;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      if (data instanceof Uint8Array) {
        let off = 0;
        while (off < data.length) off += await file.write(data.subarray(off));
      } else {
        using src = await Deno.open(data.copyFrom, { read: true });
        const buf = new Uint8Array(CHUNK);
        for (;;) {
          const n = await src.read(buf);
          if (n === null) break;
          let off = 0;
          while (off < n) off += await file.write(buf.subarray(off, n));
        }
      }
      await file.sync();
    } finally {
      file.close();
    }
    // Explicit chmod: the create mode is filtered by the umask.
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, `${dir}/${name}`);
    done = true;
    await syncDir(dir);
  } finally {
    if (!done) await Deno.remove(tmp).catch(() => {});
  }
}

/** True when `path` is a regular file with `mode` and the same bytes as `want` (or its file). */
export async function sameFile(
  path: string,
  want: Uint8Array | { copyFrom: string },
  mode: number,
): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    return false;
  }
  if (!info.isFile || info.mode === null || (info.mode & 0o7777) !== mode) return false;
  if (want instanceof Uint8Array) {
    if (info.size !== want.length) return false;
    const have = await Deno.readFile(path);
    return have.every((b, i) => b === want[i]);
  }
  const other = await Deno.stat(want.copyFrom);
  if (other.size !== info.size) return false;
  using a = await Deno.open(path, { read: true });
  using b = await Deno.open(want.copyFrom, { read: true });
  const ba = new Uint8Array(CHUNK);
  const bb = new Uint8Array(CHUNK);
  for (;;) {
    const na = await readFull(a, ba);
    const nb = await readFull(b, bb);
    if (na !== nb) return false;
    if (na === 0) return true;
    for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
  }
}

async function readFull(f: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let off = 0;
  while (off < buf.length) {
    const n = await f.read(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}

/** Removes temp files a killed run left for `name` in `dir`; returns their names. */
export async function removeStaleTemps(dir: string, name: string): Promise<string[]> {
  const prefix = tempPrefix(name);
  const removed: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.startsWith(prefix)) {
        await Deno.remove(`${dir}/${e.name}`).catch(() => {});
        removed.push(e.name);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return removed.sort();
}

/** Removes a file; false when it was not there. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
