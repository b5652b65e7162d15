// Exhaustive per-code-point reference: every code point c (surrogates excluded) is normalized and pre-tokenized by
// HF's BertNormalizer + BertPreTokenizer (from bert-base-uncased tokenizer.json) inside "a" + c + "a", and the
// resulting words are joined with "|". Consecutive code points with the same *kind* of result are run-length encoded:
//   I = identity ("a" + c + "a", one word)        P = isolated ("a|c|a": punctuation or CJK)
//   X = removed ("aa")                               W = whitespace ("a|a")
//   M = anything else, listed explicitly in `mapped` (case mapping, accent stripping, ...)
//   cd tests/reference/tokenizer && node chars.mjs   -> ../../BertHost.Tests/Fixtures/tokenizer/chars.json
import { Tokenizer } from '@anush008/tokenizers';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modelDir = process.argv[2] ?? path.resolve(here, '../../../../shared/models/bert-base-uncased');
const tok = Tokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));
const norm = tok.getNormalizer();
const pre = tok.getPreTokenizer();

const ranges = [];
const mapped = {};
let cur = null;
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const c = String.fromCodePoint(cp);
  const n = norm.normalizeString('a' + c + 'a');
  const sig = pre.preTokenizeString(n).map(x => x[0]).join('|');
  let kind;
  if (sig === 'a' + c + 'a') kind = 'I';
  else if (sig === 'a|' + c + '|a') kind = 'P';
  else if (sig === 'aa') kind = 'X';
  else if (sig === 'a|a') kind = 'W';
  else { kind = 'M'; mapped[cp] = sig; }
  if (cur && cur[2] === kind && cur[1] === cp - 1) cur[1] = cp;
  else if (cur && cur[2] === kind && cur[1] === 0xd7ff && cp === 0xe000) cur[1] = cp;
  else { cur = [cp, cp, kind]; ranges.push(cur); }
}
const out = path.resolve(here, '../../BertHost.Tests/Fixtures/tokenizer/chars.json');
fs.writeFileSync(out, JSON.stringify({
  meta: { generator: 'tests/reference/tokenizer/chars.mjs', library: '@anush008/tokenizers 0.6.0 (Rust tokenizers 0.22.x)',
    what: 'per code point: words of HF normalize+pre_tokenize("a"+c+"a") joined by |; ranges [first,last,kind], mapped {cp: words}' },
  ranges, mapped }) + '\n');
console.log(`ranges=${ranges.length} mapped=${Object.keys(mapped).length} -> ${out}`);
