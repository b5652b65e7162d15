namespace BertHost.Core.Checkpoints;

/// <summary>A model folder the body cannot be loaded from; the message says which file and why.</summary>
public sealed class BodyLoadException(string message, Exception? inner = null) : Exception(message, inner);
