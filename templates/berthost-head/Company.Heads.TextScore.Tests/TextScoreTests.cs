using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using Company.Heads.TextScore;

namespace Company.Heads.TextScore.Tests;

/// <summary>
/// What can be checked without a body: options, validation, input reading. Running the head on a body (predict, train,
/// save and reload) needs a host: serve a deployment naming this plugin, or see the BertHost repository's template test.
/// </summary>
public sealed class TextScoreTests
{
    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement.Clone();

    [Fact]
    public void The_kind_is_named_as_yaml_names_it() => Assert.Equal("text-score", new TextScoreKind().Name);

    [Fact]
    public void Options_have_defaults_and_are_read()
    {
        Assert.Equal(new TextScoreOptions(), TextScoreOptions.Parse(default));
        var options = TextScoreOptions.Parse(Json("""{"pooling": "cls", "dropout": 0.2, "max_length": 64}"""));
        Assert.Equal((BertHost.Abstractions.PoolingMode.Cls, 0.2, (int?)64), (options.Pooling, options.Dropout, options.MaxLength));
    }

    [Fact]
    public void Every_bad_option_is_reported_with_its_field()
    {
        var problems = HeadValidation.Options(Json("""{"dropout": "high", "poling": "cls", "max_length": 1}"""),
            TextScoreOptions.Keys, "a text-score head", TextScoreOptions.Parse, out _);
        Assert.Equal(["options.poling", "options.dropout", "options.max_length"], problems.Select(p => p.Field));
        Assert.Contains("did you mean 'pooling'?", problems[0].Message);
    }

    [Fact]
    public void Inputs_are_a_string_or_text_with_an_optional_pair()
    {
        Assert.Equal(("a film", null), TextScoreHead.ReadText(Json("\"a film\"")));
        Assert.Equal(("a", "b"), TextScoreHead.ReadText(Json("""{"text": "a", "text_pair": "b"}""")));
        var e = Assert.Throws<HeadInputException>(() => TextScoreHead.ReadText(Json("""{"txt": "a"}""")));
        Assert.Equal("txt", e.Field);
    }
}
