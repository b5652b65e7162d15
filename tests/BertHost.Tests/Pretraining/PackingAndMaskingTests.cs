using BertHost.Core.Pretraining;
using BertHost.Core.Text;

namespace BertHost.Tests.Pretraining;

public sealed class PackingAndMaskingTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-pack-");
    private static readonly BertTextTokenizer Tokenizer = BertTextTokenizer.FromFolder(TokenCacheTests.ModelFolder);
    private static readonly IReadOnlyList<string> Vocabulary = Enumerable.Range(0, Tokenizer.VocabSize).Select(Tokenizer.IdToToken).ToList();
    private static readonly int[] Specials = [Tokenizer.ClsTokenId, Tokenizer.SepTokenId, Tokenizer.PadTokenId, Tokenizer.UnkTokenId];

    public void Dispose() => _dir.Delete(recursive: true);

    private TokenCache Cache(string text)
    {
        var corpus = Path.Combine(_dir.FullName, $"{Guid.NewGuid():N}.txt");
        File.WriteAllText(corpus, text);
        return TokenCache.OpenOrBuild([corpus], Tokenizer, Path.Combine(TokenCacheTests.ModelFolder, "vocab.txt"), _dir.FullName);
    }

    [Fact]
    public void Sequences_run_across_document_boundaries_and_cover_the_stream_exactly_once()
    {
        // Three short documents: 4 + 3 + 5 words, each followed by [SEP] in the stream (15 tokens).
        using var cache = Cache("the old man went\n\nshe said no\n\nthe dog is very happy\n");
        var packed = new PackedSequences(cache, sequenceLength: 8, Tokenizer.ClsTokenId, Tokenizer.SepTokenId, Tokenizer.PadTokenId);
        Assert.Equal(6, packed.ContentLength);
        Assert.Equal(3, packed.Count);   // ceil(15 / 6)

        var stream = new int[cache.TokenCount];
        cache.Read(0, stream);
        var rebuilt = new List<int>();
        var ids = new int[8];
        for (var i = 0; i < packed.Count; i++)
        {
            var n = packed.Fill(i, ids);
            Assert.Equal(Tokenizer.ClsTokenId, ids[0]);
            Assert.Equal(Tokenizer.SepTokenId, ids[n - 1]);
            Assert.All(ids[n..], id => Assert.Equal(Tokenizer.PadTokenId, id));
            rebuilt.AddRange(ids[1..(n - 1)]);
        }
        Assert.Equal(stream, rebuilt);
        // The first sequence holds all of document 1, its [SEP] and the start of document 2.
        packed.Fill(0, ids);
        Assert.Equal("[CLS] the old man went [SEP] she [SEP]", string.Join(" ", ids.Select(Tokenizer.IdToToken)));
        Assert.Equal(8, packed.Fill(1, ids));
        Assert.Equal("[CLS] said no [SEP] the dog is [SEP]", string.Join(" ", ids.Select(Tokenizer.IdToToken)));
        Assert.Equal(5, packed.Fill(2, ids));   // the last one: 3 tokens, padded
        Assert.Equal("[CLS] very happy [SEP] [SEP] [PAD] [PAD] [PAD]", string.Join(" ", ids.Select(Tokenizer.IdToToken)));
    }

    [Fact]
    public void Masking_predicts_fifteen_percent_with_the_80_10_10_split_and_never_special_tokens()
    {
        var masker = new MlmMasker(Vocabulary, Tokenizer.MaskTokenId, Specials);
        var rng = new Random(5);
        const int length = 128;
        long chosen = 0, masked = 0, random = 0, kept = 0, candidates = 0;
        var ids = new int[length];
        var input = new int[length];
        var labels = new long[length];
        for (var s = 0; s < 2000; s++)
        {
            // [CLS] 100 ordinary tokens [SEP] then padding.
            ids[0] = Tokenizer.ClsTokenId;
            for (var i = 1; i <= 100; i++) ids[i] = 30 + rng.Next(300);
            ids[101] = Tokenizer.SepTokenId;
            Array.Fill(ids, Tokenizer.PadTokenId, 102, length - 102);
            var n = masker.Mask(ids, 102, input, labels, rng);
            Assert.Equal(15, n);   // round(100 x 0.15)
            candidates += 100;
            for (var i = 0; i < length; i++)
            {
                if (labels[i] == MlmMasker.IgnoreIndex)
                {
                    Assert.Equal(ids[i], input[i]);
                    continue;
                }
                Assert.InRange(i, 1, 100);
                Assert.Equal(ids[i], labels[i]);
                chosen++;
                if (input[i] == Tokenizer.MaskTokenId) masked++;
                else if (input[i] == ids[i]) kept++;
                else
                {
                    random++;
                    Assert.DoesNotContain(input[i], Specials);
                }
            }
        }
        Assert.Equal(0.15, (double)chosen / candidates, 3);
        // 30,000 predictions: the shares are within ~4 standard deviations of 0.8 / 0.1 / 0.1 (a random
        // replacement that happens to draw the original token counts as kept: 1 in ~380 here).
        Assert.InRange((double)masked / chosen, 0.79, 0.81);
        Assert.InRange((double)random / chosen, 0.093, 0.107);
        Assert.InRange((double)kept / chosen, 0.093, 0.107);
    }

    [Fact]
    public void Whole_word_masking_takes_every_piece_of_a_chosen_word()
    {
        var masker = new MlmMasker(Vocabulary, Tokenizer.MaskTokenId, Specials, wholeWord: true);
        var words = Tokenizer.Encode("the happening dogs played quickly today and the buyers walked", null,
            new BertHost.Abstractions.Text.EncodeOptions { AddSpecialTokens = true }).Single().InputIds;
        Assert.Contains(words, id => Vocabulary[id].StartsWith("##"));   // the fixture vocabulary splits some words
        var input = new int[words.Length];
        var labels = new long[words.Length];
        var rng = new Random(3);
        for (var s = 0; s < 500; s++)
        {
            masker.Mask(words, words.Length, input, labels, rng);
            for (var i = 1; i < words.Length; i++)
            {
                if (!Vocabulary[words[i]].StartsWith("##")) continue;
                // A piece is predicted exactly when the token it continues is.
                Assert.Equal(labels[i - 1] != MlmMasker.IgnoreIndex, labels[i] != MlmMasker.IgnoreIndex);
            }
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_masks()
    {
        var masker = new MlmMasker(Vocabulary, Tokenizer.MaskTokenId, Specials);
        var ids = Enumerable.Range(30, 60).ToArray();
        var (a, b) = (new int[60], new int[60]);
        var (la, lb) = (new long[60], new long[60]);
        masker.Mask(ids, 60, a, la, new Random(9));
        masker.Mask(ids, 60, b, lb, new Random(9));
        Assert.Equal(a, b);
        Assert.Equal(la, lb);
    }
}
