namespace BertHost.Core.Plugins;

/// <summary>
/// A head plugin that cannot be used: its assembly is missing, its sha256 pin does not match, it does not load, or it
/// does not offer the requested kind. The message says which file and why, so it can be shown to a user as is.
/// </summary>
public sealed class PluginLoadException : Exception
{
    public PluginLoadException(string message, Exception? innerException = null) : base(message, innerException) { }
}
