/** YAML text of an operator's file, parsed with duplicate keys refused; a syntax error becomes one line naming its place */
import { parse as parseYaml, YAMLParseError } from 'yaml';

export function parseOperatorYaml(text: string, fail: (message: string) => Error): unknown {
  try {
    return parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      throw fail(`YAML error${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${err.message.split('\n')[0]}`);
    }
    throw err;
  }
}
