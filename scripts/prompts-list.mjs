#!/usr/bin/env node
// List the prompt texts of config/prompts/<lang>.yaml for scripts/sounds.sh, one line per prompt:
//   <lang>\t<id>\t<text>
// (languages are the file names, in file-name order, prompts in file order; a text's whitespace,
// line breaks included, is folded into single spaces). On a file that is not a flat map of
// `prompt-id: text` it prints every problem as `file:line: message` on stderr, nothing on
// stdout, and exits 1.
// Usage: node scripts/prompts-list.mjs [prompts dir]   (default: config/prompts of this checkout)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlias, isMap, isScalar, LineCounter, parseDocument } from 'yaml';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.resolve(process.argv[2] ?? path.join(repo, 'config', 'prompts'));
const shown = path.relative(process.cwd(), dir) || '.';
const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

let names;
try {
  names = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
} catch (err) {
  console.error(`${shown}: cannot read: ${err.code ?? err.message}`);
  process.exit(1);
}

const problems = [];
const lines = [];
for (const name of names) {
  const lang = name.slice(0, -'.yaml'.length);
  const file = path.join(shown, name);
  if (!ID.test(lang)) {
    problems.push(`${file}:1: the file name must be a language code (lower-case letters, digits, dashes), like zh.yaml`);
    continue;
  }
  let text;
  try {
    text = readFileSync(path.join(dir, name), 'utf8');
  } catch (err) {
    problems.push(`${file}:1: cannot read: ${err.code ?? err.message}`);
    continue;
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const line = (node) => (node?.range ? lc.linePos(node.range[0]).line : 1);
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const why = e.code === 'DUPLICATE_KEY' ? 'the same prompt id twice' : `YAML: ${e.message.split('\n')[0]}`;
      problems.push(`${file}:${lc.linePos(e.pos[0]).line}: ${why}`);
    }
    continue;
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) continue; // an empty file: no prompts
  if (!isMap(root)) {
    problems.push(`${file}:${line(root)}: a prompts file is a map of \`prompt-id: text\` lines`);
    continue;
  }
  for (const pair of root.items) {
    const key = pair.key;
    const id = isScalar(key) ? key.value : undefined;
    if (typeof id !== 'string' || !ID.test(id)) {
      problems.push(`${file}:${line(key)}: prompt id ${JSON.stringify(isScalar(key) ? key.value : String(key))} must be lower-case letters, digits and dashes`);
      continue;
    }
    let value = pair.value;
    if (isAlias(value)) value = value.resolve(doc);
    const spoken = isScalar(value) && typeof value.value === 'string' ? value.value.replace(/\s+/gu, ' ').trim() : '';
    if (!spoken) {
      const v = isScalar(value) ? value.value : value;
      const what = v == null ? 'nothing' : typeof v === 'string' ? 'an empty text' : isScalar(value) ? `a ${typeof v}` : 'a list or a map';
      problems.push(`${file}:${line(pair.value ?? key)}: prompt "${id}" needs a text (a string), found ${what}`);
      continue;
    }
    lines.push(`${lang}\t${id}\t${spoken}\n`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
process.stdout.write(lines.join(''));
