namespace BertHost.Abstractions.Heads;

/// <summary>An input the head cannot take; <see cref="Field"/> is the JSON path inside the input (e.g. <c>text_pair</c>).</summary>
public sealed class HeadInputException(string field, string message) : Exception(message)
{
    public string Field { get; } = field;
}

/// <summary>A head that cannot be built from its YAML entry (bad options, labels that disagree with the weights, ...).</summary>
public sealed class HeadConfigurationException : Exception
{
    public HeadConfigurationException(string field, string message) : base(message) => Field = field;

    /// <param name="innerException">What the plugin threw, when the host reports a bug in it this way (its stack trace is logged).</param>
    public HeadConfigurationException(string field, string message, Exception? innerException) : base(message, innerException) => Field = field;

    /// <summary>The YAML key at fault, e.g. <c>labels</c>, <c>weights</c>, <c>options.pooling</c>.</summary>
    public string Field { get; }
}

/// <summary>A malformed training record.</summary>
public sealed class TrainingDataException(string file, int line, string reason)
    : Exception($"{file}:{line}: {reason}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
    public string Reason { get; } = reason;
}
