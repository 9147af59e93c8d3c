/**
 * Operators' YAML files (queues, IVR lines/flows/prompts/holidays, SMS templates), read safely:
 * - a size cap (OPERATOR_YAML_MAX_BYTES): a huge file is refused before it is read or parsed;
 * - duplicate keys refused (a digit used twice in a menu is a mistake, not an override);
 * - only the plain YAML types: any explicit tag outside the core schema (`!!js/function`, `!!python/object`,
 *   `!!binary`, a custom `!tag`, ...) is refused with its file:line, never silently read as a string;
 * - YAML bombs refused: alias expansion is limited (the `yaml` package's maxAliasCount) and a file whose
 *   aliases would expand past it (billion laughs) is refused with the line of its first alias;
 * - every parser warning is an error.
 * Each problem is one line naming where it is.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAlias, isNode, LineCounter, parseDocument, visit, type Document } from 'yaml';

/** the largest operator file read (bytes): the real ones are a few KB */
export const OPERATOR_YAML_MAX_BYTES = 1024 * 1024;
/** the most alias nodes a file may hold, and the limit of their expansion when it is turned into data */
export const OPERATOR_YAML_MAX_ALIASES = 100;

/** the tags of YAML's core schema: what a plain file resolves to (anything else is refused) */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

export class OperatorFileTooLarge extends Error {
  override name = 'OperatorFileTooLarge';
}

/**
 * the text of an operator's file (UTF-8), refused when larger than the cap: the size is taken from the open
 * file and no more than cap + 1 bytes are ever read (a file that grows meanwhile is still refused)
 */
export function readOperatorFile(file: string, maxBytes = OPERATOR_YAML_MAX_BYTES): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new OperatorFileTooLarge(`the file is ${size} bytes; at most ${maxBytes} are read`);
    const buf = Buffer.alloc(maxBytes + 1);
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
      if (len > maxBytes) throw new OperatorFileTooLarge(`the file is larger than ${maxBytes} bytes`);
    }
    return buf.subarray(0, len).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export interface YamlProblem {
  line: number;
  col: number;
  /** the yaml package's error code (DUPLICATE_KEY, ...), or ours: UNSAFE_TAG, ALIAS_BOMB, TOO_LARGE, WARNING */
  code: string;
  message: string;
}

/**
 * the parsed document and its problems (syntax, duplicate keys, unsafe tags, alias bombs, warnings), each
 * with its line; an empty list means doc.toJS() is safe to call
 */
export function parseOperatorDocument(text: string, lc: LineCounter = new LineCounter()): { doc: Document.Parsed; problems: YamlProblem[] } {
  if (text.length > OPERATOR_YAML_MAX_BYTES) {
    return { doc: parseDocument(''), problems: [{ line: 1, col: 1, code: 'TOO_LARGE', message: `the file is larger than ${OPERATOR_YAML_MAX_BYTES} bytes` }] };
  }
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, merge: false });
  const at = (offset: number | undefined) => (offset === undefined ? { line: 1, col: 1 } : lc.linePos(offset));
  const problems: YamlProblem[] = [];
  for (const e of doc.errors) {
    problems.push({ ...at(e.pos[0]), code: e.code, message: e.code === 'DUPLICATE_KEY' ? 'the same key twice' : e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '') });
  }
  if (problems.length) return { doc, problems };

  // where a node's tag is written: just before its value (the node's own range starts at the value)
  const tagOffset = (start: number | undefined) => {
    if (start === undefined) return undefined;
    const m = /!\S*\s*$/.exec(text.slice(Math.max(0, start - 1024), start));
    return m ? start - m[0].length : start;
  };
  let aliases = 0;
  let firstAlias: number | undefined;
  visit(doc, (_key, node) => {
    if (isAlias(node)) {
      aliases += 1;
      firstAlias ??= node.range?.[0];
      return;
    }
    if (!isNode(node) || !node.tag) return;
    const resolved = node.tag;
    if (!CORE_TAGS.has(resolved)) {
      const shown = resolved.startsWith('tag:yaml.org,2002:') ? `!!${resolved.slice('tag:yaml.org,2002:'.length)}` : resolved;
      problems.push({ ...at(tagOffset(node.range?.[0])), code: 'UNSAFE_TAG', message: `the tag ${shown} is not allowed: operator files hold plain strings, numbers, booleans, lists and maps` });
    }
  });
  for (const w of doc.warnings) {
    const where = at(w.pos[0]);
    // an unknown tag is reported once, above
    if (!problems.some((p) => p.line === where.line)) problems.push({ ...where, code: 'WARNING', message: w.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '') });
  }
  if (aliases > OPERATOR_YAML_MAX_ALIASES) {
    problems.push({ ...at(firstAlias), code: 'ALIAS_BOMB', message: `${aliases} aliases (*name); at most ${OPERATOR_YAML_MAX_ALIASES}` });
  } else if (aliases > 0 && problems.length === 0) {
    try {
      doc.toJS({ maxAliasCount: OPERATOR_YAML_MAX_ALIASES });
    } catch (err) {
      problems.push({ ...at(firstAlias), code: 'ALIAS_BOMB', message: `aliases expand too much (a YAML bomb?): ${(err as Error).message.split('\n')[0]}` });
    }
  }
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { doc, problems };
}

/** YAML text of an operator's file, parsed safely; the first problem becomes one line naming its place */
export function parseOperatorYaml(text: string, fail: (message: string) => Error): unknown {
  const lc = new LineCounter();
  const { doc, problems } = parseOperatorDocument(text, lc);
  const first = problems[0];
  if (first) throw fail(`YAML error at line ${first.line}, column ${first.col}: ${first.message}`);
  return doc.toJS({ maxAliasCount: OPERATOR_YAML_MAX_ALIASES });
}
