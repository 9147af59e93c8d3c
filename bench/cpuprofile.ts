/**
 * Where the service's CPU goes: a V8 .cpuprofile (node --cpu-prof) summarised by self time per place:
 * a package under node_modules, a folder of src/, Node's own internals, GC, idle.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function place(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const src = url.indexOf('/src/');
  if (src >= 0 && !url.startsWith('node:')) return `src/${url.slice(src + 5).split('/')[0]}`;
  if (url.startsWith('node:internal/')) return `node:internal/${url.slice(14).split('/')[0]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

/**
 * self time in ms per place, busiest first, over every .cpuprofile in dir, from skipMs after the profile
 * started (start-up excluded). Native code (JSON.parse, regexps, buffers: no script URL) counts for the
 * nearest JavaScript caller with one, so "ari-client" includes the JSON parsing it asks for.
 */
export async function summariseProfiles(dir: string, skipMs = 0): Promise<Array<{ place: string; ms: number; pct: number }>> {
  const files = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
  const total = new Map<string, number>();
  for (const f of files) {
    const p = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const placeOf = new Map<number, string>();
    const resolve = (id: number): string => {
      const known = placeOf.get(id);
      if (known) return known;
      const n = byId.get(id)!;
      const fn = n.callFrame.functionName;
      let k: string;
      if (n.callFrame.url) k = place(n.callFrame.url, fn);
      else if (fn.startsWith('(')) k = fn; // (garbage collector), (idle), (program), (root)
      else k = parent.has(id) ? resolve(parent.get(id)!) : '(native)';
      if (k === '(root)') k = '(native)';
      placeOf.set(id, k);
      return k;
    };
    let t = 0;
    p.samples.forEach((id, i) => {
      const dt = (p.timeDeltas[i] ?? 0) / 1000;
      t += dt;
      if (t < skipMs || !byId.has(id)) return;
      const k = resolve(id);
      total.set(k, (total.get(k) ?? 0) + dt);
    });
  }
  total.delete('(idle)');
  const busy = [...total.values()].reduce((a, b) => a + b, 0) || 1;
  return [...total].map(([place, ms]) => ({ place, ms: Math.round(ms), pct: Math.round((1000 * ms) / busy) / 10 })).sort((a, b) => b.ms - a.ms);
}
