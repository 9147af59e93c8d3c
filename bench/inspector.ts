/**
 * The service's live V8 heap, measured through its inspector (node --inspect on a loopback port the bench picks):
 * a full garbage collection (HeapProfiler.collectGarbage), then the heap used (Runtime.getHeapUsage). Sampling
 * heap used without it reads the GC sawtooth: a trough may come after a minor GC only, so per-call slopes drowned
 * in GC noise (docs/benchmarks.md). Bench-only: the service itself has no hook for this.
 */
import { WebSocket } from 'ws';

/** one request on the inspector's DevTools protocol; rejects after timeoutMs */
function call(ws: WebSocket, id: number, method: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off('message', onMessage);
      reject(new Error(`inspector: no answer to ${method} in ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (msg.id !== id) return;
      clearTimeout(timer);
      ws.off('message', onMessage);
      if (msg.error) reject(new Error(`inspector: ${method}: ${msg.error.message}`));
      else resolve(msg.result ?? {});
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method }));
  });
}

/** the heap used after a full GC, in KB, of the node process inspected on this port */
export async function liveHeapKb(port: number, timeoutMs = 10_000): Promise<number> {
  const targets = (await fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json())) as Array<{ webSocketDebuggerUrl?: string }>;
  const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
  if (!url) throw new Error(`inspector on port ${port}: no debugging target`);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await call(ws, 1, 'HeapProfiler.collectGarbage', timeoutMs);
    const usage = await call(ws, 2, 'Runtime.getHeapUsage', timeoutMs);
    const used = Number(usage.usedSize);
    if (!Number.isFinite(used)) throw new Error('inspector: Runtime.getHeapUsage gave no usedSize');
    return used / 1024;
  } finally {
    ws.close();
  }
}
