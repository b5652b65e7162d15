using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Tests.Plugins;

/// <summary>The contract's SDK helpers on their own (the built-in heads' tests cover them in use).</summary>
public sealed class HeadSdkTests
{
    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement.Clone();

    private static readonly string[] Known = ["text", "text_pair"];

    private static IReadOnlyDictionary<string, JsonElement> Fields(string json) =>
        HeadInput.Fields(Json(json), Known, "a string or an object with text", "an input has text and optionally text_pair", bareString: "text");

    [Fact]
    public void Input_fields_take_a_bare_string_or_an_object_and_name_the_field_at_fault()
    {
        Assert.Equal("hi", HeadInput.Required(Fields("\"hi\""), "text", "text is missing"));
        var pair = Fields("""{"text": "a", "text_pair": "b"}""");
        Assert.Equal(("a", "b"), (HeadInput.Required(pair, "text", "missing"), HeadInput.Optional(pair, "text_pair")));
        Assert.Null(HeadInput.Optional(Fields("""{"text": "a", "text_pair": null}"""), "text_pair"));

        void Refused(string json, string field, string message, Func<IReadOnlyDictionary<string, JsonElement>, object?>? read = null)
        {
            var e = Assert.Throws<HeadInputException>(() => (read ?? (f => HeadInput.Required(f, "text", "text is missing: send {\"text\": \"...\"}")))(Fields(json)));
            Assert.Equal(field, e.Field);
            Assert.Equal(message, e.Message);
        }
        Refused("3", "text", "the input must be a string or an object with text, got the number 3");
        Refused("""{"txt": "a"}""", "txt", "unknown input field 'txt' (an input has text and optionally text_pair)");
        Refused("""{"text_pair": "a"}""", "text", "text is missing: send {\"text\": \"...\"}");
        Refused("""{"text": 5}""", "text", "text must be a string, got the number 5");
        Refused("""{"text": "  "}""", "text", "text is empty");
        Refused("""{"text": "a", "text_pair": ""}""", "text_pair", "text_pair is empty", f => HeadInput.Optional(f, "text_pair"));
    }

    [Fact]
    public void Text_lists_report_the_item_at_fault()
    {
        Assert.Equal(["a", " "], HeadInput.Texts("tokens", Json("""["a", " "]"""), "a list of words", blankAllowed: true));
        var notList = Assert.Throws<HeadInputException>(() => HeadInput.Texts("choices", Json("\"a\""), "a list of strings"));
        Assert.Equal(("choices", "choices must be a list of strings, got the string \"a\""), (notList.Field, notList.Message));
        var blank = Assert.Throws<HeadInputException>(() => HeadInput.Texts("choices", Json("""["a", " "]"""), "a list of strings"));
        Assert.Equal(("choices[1]", "choices[1] is empty"), (blank.Field, blank.Message));
        var number = Assert.Throws<HeadInputException>(() => HeadInput.Texts("tokens", Json("""["a", 1]"""), "a list of words", blankAllowed: true));
        Assert.Equal(("tokens[1]", "tokens[1] must be a string, got the number 1"), (number.Field, number.Message));
    }

    [Fact]
    public void Parameters_must_be_an_object_when_given()
    {
        Assert.False(HeadInput.CheckParameters(default));
        Assert.False(HeadInput.CheckParameters(Json("null")));
        Assert.True(HeadInput.CheckParameters(Json("{}")));
        var e = Assert.Throws<HeadInputException>(() => HeadInput.CheckParameters(Json("[1]")));
        Assert.Equal(("parameters", "parameters must be an object, got a list"), (e.Field, e.Message));
    }

    private sealed record Toy(int Size = 1, double Dropout = 0.1, string Pooling = "cls");

    private static readonly string[] ToyKeys = ["size", "dropout", "pooling"];

    /// <summary>A parser that stops at its first problem, as the built-in kinds' do; pooling mean needs size 2 or more.</summary>
    private static Toy ParseToy(JsonElement options)
    {
        if (!HeadOptions.Check(options, ToyKeys, "a toy head")) return new Toy();
        var toy = new Toy();
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            toy = p.Name switch
            {
                "size" => toy with { Size = HeadOptions.Int(field, p.Value, min: 1) },
                "dropout" => toy with { Dropout = HeadOptions.Probability(field, p.Value) },
                _ => toy with { Pooling = HeadOptions.String(field, p.Value) },
            };
        }
        if (toy.Pooling == "mean" && toy.Size < 2) throw new HeadConfigurationException("options.pooling", "pooling mean needs size 2 or more");
        return toy;
    }

    [Fact]
    public void Option_validation_reports_every_problem_not_only_the_first()
    {
        var problems = HeadValidation.Options(Json("""{"sise": 2, "size": 0, "dropout": "high", "pooling": "mean"}"""), ToyKeys, "a toy head", ParseToy, out var parsed);
        Assert.Equal(
        [
            ("options.sise", "unknown option 'sise' for a toy head (did you mean 'size'?; known: size, dropout, pooling)"),
            ("options.size", "options.size must be at least 1, got 0"),
            ("options.dropout", "options.dropout must be a number, got the string \"high\""),
            // size was left out, so its default (1) meets pooling mean: the check between two keys still runs.
            ("options.pooling", "pooling mean needs size 2 or more"),
        ], problems.Select(p => (p.Field, p.Message)));
        Assert.Equal(new Toy(), parsed);

        Assert.Empty(HeadValidation.Options(Json("""{"size": 3, "pooling": "mean"}"""), ToyKeys, "a toy head", ParseToy, out var good));
        Assert.Equal(new Toy(Size: 3, Pooling: "mean"), good);
        Assert.Empty(HeadValidation.Options(default, ToyKeys, "a toy head", ParseToy, out var absent));
        Assert.Equal(new Toy(), absent);
        var notObject = Assert.Single(HeadValidation.Options(Json("[1]"), ToyKeys, "a toy head", ParseToy, out _));
        Assert.Equal("options", notObject.Field);
    }

    [Fact]
    public void A_single_unknown_option_gets_a_suggestion_when_creating_too()
    {
        var e = Assert.Throws<HeadConfigurationException>(() => ParseToy(Json("""{"dropuot": 0.2}""")));
        Assert.Equal("options.dropuot", e.Field);
        Assert.Equal("unknown option 'dropuot' for a toy head (did you mean 'dropout'?; known: size, dropout, pooling)", e.Message);
        var far = Assert.Throws<HeadConfigurationException>(() => ParseToy(Json("""{"colour": 1}""")));
        Assert.Equal("unknown option 'colour' for a toy head (known: size, dropout, pooling)", far.Message);
    }

    [Theory]
    [InlineData("text-clasification", "text-classification")]
    [InlineData("Token-Classification", "token-classification")]
    [InlineData("question-answerin", "question-answering")]
    [InlineData("regression", null)]
    public void Suggestions_find_the_closest_name_within_a_few_edits(string name, string? expected) =>
        Assert.Equal(expected, Suggestions.Closest(name, ["text-classification", "token-classification", "question-answering", "embedding"]));
}
