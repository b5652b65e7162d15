// Generates Hugging Face parity fixtures for BertHost.Core.Text.
//
//   cd tests/reference/tokenizer && npm install && node generate.mjs [path/to/bert-base-uncased]
//
// Uses @anush008/tokenizers: Node bindings of the Rust `tokenizers` crate (0.22.x), i.e. the very library behind
// transformers' "fast" tokenizers. The binding reports offsets in Unicode code points (encode_char_offsets);
// C# strings are UTF-16, so every offset is converted to UTF-16 code units of the ORIGINAL string here.
// Output: ../../BertHost.Tests/Fixtures/tokenizer/*.json
import { Tokenizer, mergeEncodings } from '@anush008/tokenizers';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modelDir = process.argv[2] ?? path.resolve(here, '../../../../shared/models/bert-base-uncased');
const outDir = path.resolve(here, '../../BertHost.Tests/Fixtures/tokenizer');
fs.mkdirSync(outDir, { recursive: true });

const tok = Tokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));

// code point index -> UTF-16 index, for i in [0, codePointCount]
function cpToUtf16(s) {
  const map = [0];
  let u = 0;
  for (const ch of s) { u += ch.length; map.push(u); }
  return map;
}

// One HF Encoding -> plain object with UTF-16 offsets. `texts` are the original strings of sequence 0 and 1;
// `wordTexts` (pre-split input) makes offsets relative to the word given by the word id.
function dump(e, texts, wordTexts) {
  const seq = e.getSequenceIds();
  const words = e.getWordIds();
  const maps = texts.map(t => (t == null ? null : cpToUtf16(t)));
  const offsets = e.getOffsets().map(([s, t], i) => {
    if (seq[i] == null) return [s, t];
    const m = wordTexts ? cpToUtf16(wordTexts[words[i]]) : maps[seq[i]];
    if (s >= m.length || t >= m.length) throw new Error(`offset ${s},${t} out of range`);
    return [m[s], m[t]];
  });
  return {
    ids: e.getIds(),
    tokens: e.getTokens(),
    typeIds: e.getTypeIds(),
    offsets,
    wordIds: words.map(w => (w == null ? null : w)),
    sequenceIds: seq.map(x => (x == null ? null : x)),
    specialTokensMask: e.getSpecialTokensMask(),
    attentionMask: e.getAttentionMask(),
  };
}

// return_overflowing_tokens semantics of transformers' fast tokenizer: [encoding, ...encoding.overflowing]
function windows(e, texts, wordTexts) {
  return [e, ...e.getOverflowing()].map(w => dump(w, texts, wordTexts));
}

const longWord = 'a'.repeat(120);
const singles = [
  ['plain', 'Hello, world! This is BERT.'],
  ['accents_precomposed', 'Café in Zürich: naïve résumé'],
  ['accents_combining', 'Cafe\u0301 in Zu\u0308rich: nai\u0308ve re\u0301sume\u0301'],
  ['accents_mixed_case', 'ÉCOLE Ångström señor ÇA'],
  ['cjk', '教育'],
  ['cjk_japanese', '日本語のテキスト'],
  ['cjk_mixed_latin', 'I study 教育学 at 東京大学 in 2024.'],
  ['hangul', '한국어 텍스트'],
  ['punct_runs', 'What...!? Really?!... yes—no – maybe'],
  ['quotes', '“Hello,” she said. ‘Yes’ «non» „ja“'],
  ['contractions', "don't I'm rock'n'roll it's y'all"],
  ['word_120', longWord],
  ['word_120_in_text', `before ${longWord} after`],
  ['word_100', 'b'.repeat(100) + ' x'],
  ['word_101', 'b'.repeat(101) + ' x'],
  ['long_pieces', 'antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis unaffable'],
  ['numbers_dates', 'On 2024-03-15 at 10:45pm, 3.14159 and 1,000,000 and 42nd and $19.99 or 50%'],
  ['email_url', 'Mail john.doe+tag@example.com or visit https://www.example.org/path?q=1&r=two#frag'],
  ['emoji', 'I love it 😀👍🏽 🥰 ❤️ 🇫🇷 done'],
  ['emoji_glued', 'a😀b'],
  ['control_ws', 'tab\there\nnew\rline'],
  ['control_chars', 'nul\u0000char soft\u00ADhyphen zero\u200Bwidth bell\u0007 repl\uFFFDx'],
  ['other_ws', 'nbsp\u00A0here em\u2003space ideo\u3000space nel\u0085x vt\u000Bff\u000Cend'],
  ['multi_spaces', 'many     spaces   here'],
  ['lead_trail', '   leading and trailing   '],
  ['empty', ''],
  ['whitespace_only', ' \t\n  '],
  ['uppercase', 'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG'],
  ['special_mask', 'hello [MASK] world'],
  ['special_sep_only', '[SEP]'],
  ['special_lower', 'hello [mask] world'],
  ['special_glued', 'a[CLS]b[SEP][PAD][UNK]x'],
  ['special_partial', '[MASK [SEP'],
  ['greek', 'Καλημέρα κόσμε ΟΔΟΣ'],
  ['cyrillic', 'Привет, мир! Ёлка'],
  ['arabic', 'مرحبا بالعالم'],
  ['thai', 'สวัสดีชาวโลก'],
  ['devanagari', 'नमस्ते दुनिया'],
  ['fullwidth', 'ＡＢＣ１２３！ｈｅｌｌｏ'],
  ['turkish_dotted_i', 'İstanbul ıi'],
  ['sharp_s', 'Straße ß ẞ'],
  ['ligatures', 'ﬁne ﬂow'],
  ['surrogate_cjk_ext', 'x 𠀀𠀁 y'],
  ['math_symbols', 'a+b=c, x<y>z, ∑∞ ~tilde^caret|pipe'],
  ['hyphenated', 'state-of-the-art well_known'],
  ['sst2_like', "it 's a charming and often affecting journey . "],
];

const single = [];
for (const [name, text] of singles) {
  tok.disableTruncation();
  const e = await tok.encode(text, null, { addSpecialTokens: true });
  const e2 = await tok.encode(text, null, { addSpecialTokens: false });
  single.push({ name, text, encoding: dump(e, [text]), noSpecial: dump(e2, [text]) });
}

const longText =
  'The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France. ' +
  'They were descended from Norse ("Norman" comes from "Norseman") raiders and pirates from Denmark, Iceland and Norway ' +
  'who, under their leader Rollo, agreed to swear fealty to King Charles III of West Francia. Through generations of ' +
  'assimilation and mixing with the native Frankish and Roman-Gaulish populations, their descendants would gradually ' +
  'merge with the Carolingian-based cultures of West Francia. Café-society in Zürich, 教育, and emoji 😀 appear too.';
const question = 'In what country is Normandy located?';
const midText = 'A moderately long first sentence that has quite a few tokens in it, more than the second.';
const shortText = 'Short one.';

const cases = [];
async function run(name, text, pair, trunc, addSpecialTokens = true) {
  if (trunc) tok.setTruncation(trunc.maxLength, { strategy: trunc.strategy, stride: trunc.stride ?? 0 });
  else tok.disableTruncation();
  const c = { name, text, pair, addSpecialTokens, truncation: trunc ?? null };
  try {
    const e = await tok.encode(text, pair, { addSpecialTokens });
    c.windows = windows(e, [text, pair]);
  } catch (err) {
    c.error = String(err.message ?? err);
  }
  cases.push(c);
}

// pairs without truncation
await run('pair_basic', 'How old are you?', "I'm 6 years old.", null);
await run('pair_accents_cjk', 'Café 教育?', 'Zürich résumé 日本', null);
await run('pair_empty_second', 'Only first', '', null);
await run('pair_empty_first', '', 'Only second', null);
await run('pair_no_special', 'How old are you?', "I'm 6 years old.", null, false);

// truncation strategies at several lengths
const LF = 'LongestFirst', OF = 'OnlyFirst', OS = 'OnlySecond';
for (const ml of [8, 12, 16, 20, 25, 31, 64]) {
  for (const st of [LF, OF, OS]) {
    await run(`trunc_${st}_${ml}_firstlonger`, midText, shortText, { maxLength: ml, strategy: st });
    await run(`trunc_${st}_${ml}_secondlonger`, shortText, midText, { maxLength: ml, strategy: st });
    await run(`trunc_${st}_${ml}_bothlong`, midText, midText + ' Extra words here.', { maxLength: ml, strategy: st });
  }
}
// single-sequence truncation
for (const ml of [3, 5, 10, 17]) {
  await run(`single_${LF}_${ml}`, midText, null, { maxLength: ml, strategy: LF });
  await run(`single_${OF}_${ml}`, midText, null, { maxLength: ml, strategy: OF });
}
await run('single_OnlySecond_error', midText, null, { maxLength: 10, strategy: OS });
await run('single_nospecial_LF_6', midText, null, { maxLength: 6, strategy: LF }, false);

// overflowing windows with stride
for (const [ml, stride] of [[16, 4], [32, 8], [48, 16], [64, 16], [20, 0]]) {
  await run(`windows_single_${ml}_${stride}`, longText, null, { maxLength: ml, strategy: LF, stride });
}
for (const [ml, stride] of [[32, 8], [40, 12], [48, 16], [64, 16], [64, 8]]) {
  await run(`windows_qa_${ml}_${stride}`, question, longText, { maxLength: ml, strategy: OS, stride });
}
await run('windows_qa_firstlonger_only_first_40_8', longText, question, { maxLength: 40, strategy: OF, stride: 8 });
await run('windows_pair_longest_first_40_4', longText, midText, { maxLength: 40, strategy: LF, stride: 4 });
await run('windows_pair_longest_first_both_30_2', longText, longText, { maxLength: 30, strategy: LF, stride: 2 });
await run('windows_qa_question_too_long', longText, question, { maxLength: 32, strategy: OS, stride: 8 });

// Pre-split words (is_split_into_words). The binding cannot encode pre-tokenized input, so this reproduces what
// Tokenizer::encode does for InputSequence::PreTokenized: every word is encoded on its own with word index = its
// position in the array, offsets relative to that word, then merged (growing_offsets=false) and post-processed.
const wordCases = [];
async function runWords(name, words, trunc) {
  tok.disableTruncation();
  const parts = [];
  for (const w of words) parts.push(await tok.encode(w, null, { addSpecialTokens: false }));
  const wordIds = [];
  parts.forEach((p, i) => { for (let k = 0; k < p.getLength(); k++) wordIds.push(i); });
  const merged = mergeEncodings(parts, false);
  if (trunc) tok.setTruncation(trunc.maxLength, { strategy: trunc.strategy, stride: trunc.stride ?? 0 });
  const c = { name, words, truncation: trunc ?? null };
  const base = dump(merged, [words.join(' ')]);
  // word ids and per-word offsets of the merged (unprocessed) encoding
  const baseOffsets = [];
  {
    let idx = 0;
    parts.forEach((p, i) => {
      const m = cpToUtf16(words[i]);
      for (const [s, t] of p.getOffsets()) { baseOffsets.push([m[s], m[t]]); idx++; }
    });
  }
  c.content = { ids: base.ids, tokens: base.tokens, wordIds, offsets: baseOffsets };
  const processed = tok.postProcess(merged, null, true);
  // post-processing keeps content tokens in order and adds [CLS]/[SEP]; map them back
  c.windows = [processed, ...processed.getOverflowing()].map(w => {
    const d = dump(w, [words.join(' ')]);
    return { ids: d.ids, tokens: d.tokens, typeIds: d.typeIds, specialTokensMask: d.specialTokensMask, sequenceIds: d.sequenceIds };
  });
  wordCases.push(c);
}
await runWords('ner_basic', ['John', 'Smith', 'lives', 'in', 'Zürich', '.'], null);
await runWords('ner_punct_words', ["don't", 'state-of-the-art', 'U.S.A.', '教育', 'x'], null);
await runWords('ner_empty_and_ws', ['a', '', ' ', 'b'], null);
await runWords('ner_long', ['antidisestablishmentarianism', 'is', 'a', 'word', 'Café', 'naïve'], { maxLength: 8, strategy: LF });

// decode
const decodes = [];
for (const text of ['Hello, world! This is BERT.', "don't I'm rock'n'roll", 'unaffable antidisestablishmentarianism', 'hello [MASK] world', 'Café 教育 x', 'a . b ? c ! d , e']) {
  tok.disableTruncation();
  const e = await tok.encode(text, null, { addSpecialTokens: true });
  const ids = e.getIds();
  decodes.push({ text, ids, skipSpecial: await tok.decode(ids, true), keepSpecial: await tok.decode(ids, false) });
}

const meta = {
  generator: 'tests/reference/tokenizer/generate.mjs',
  library: '@anush008/tokenizers 0.6.0 (Rust tokenizers 0.22.x)',
  model: 'bert-base-uncased tokenizer.json',
  offsets: 'UTF-16 code units into the original text of the token\'s sequence (converted from code points)',
};
const write = (f, o) => fs.writeFileSync(path.join(outDir, f), JSON.stringify({ meta, ...o }, null, 0) + '\n');
write('single.json', { cases: single });
write('pairs.json', { cases });
write('words.json', { cases: wordCases });
write('decode.json', { cases: decodes });
console.log(`single=${single.length} pairs/truncation/windows=${cases.length} words=${wordCases.length} decode=${decodes.length} -> ${outDir}`);
