/** Calls `handle` for each non-empty line of a newline-delimited stream (progress, events). */
export async function forEachLine(stream: NodeJS.ReadableStream, handle: (line: string) => void): Promise<void> {
  let buf = '';
  for await (const chunk of stream) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) handle(line);
    }
  }
  if (buf.trim()) handle(buf.trim());
}
