using BertHost.Abstractions.Heads;

namespace BertHost.Core.Plugins;

/// <summary>A head kind discovered in a plugin assembly, with the assembly it came from and that file's sha256.</summary>
public sealed record LoadedKind(IHeadKind Kind, string AssemblyPath, string Sha256)
{
    public string Name => Kind.Name;

    /// <summary>
    /// Calls <see cref="IHeadKind.Create"/>. A <see cref="HeadConfigurationException"/> passes through unchanged; any
    /// other exception thrown by the plugin (a bug in it) becomes a <see cref="HeadConfigurationException"/> on field
    /// <c>kind</c> naming the kind, its assembly and the original error (kept as the inner exception, so the host's log
    /// shows where in the plugin it was thrown), and the host fails this head alone.
    /// </summary>
    public IHead CreateHead(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            return Kind.Create(context) ?? throw new HeadConfigurationException("kind",
                $"head kind '{Kind.Name}' ({Path.GetFileName(AssemblyPath)}) returned no head for '{context.Name}'");
        }
        catch (HeadConfigurationException)
        {
            throw;
        }
        catch (Exception e)
        {
            // A static initializer's failure says only "the type initializer threw": name what it threw.
            var cause = e is TypeInitializationException { InnerException: { } inner } ? inner : e;
            throw new HeadConfigurationException("kind",
                $"head kind '{SafeName()}' ({AssemblyPath}) failed to create head '{context.Name}': {e.GetType().Name}: {e.Message}" +
                (ReferenceEquals(cause, e) ? "" : $" ({cause.GetType().Name}: {cause.Message})"), e);
        }
    }

    private string SafeName()
    {
        try { return Kind.Name; } catch { return Kind.GetType().FullName ?? "?"; }
    }
}
