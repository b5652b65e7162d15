using BertHost.Abstractions.Heads;

namespace BertHost.TestHeads.Duplicate;

/// <summary>Two kinds with the same name in one assembly: the catalog refuses the assembly.</summary>
public sealed class FirstSameName : IHeadKind
{
    public string Name => "same-name";
    public string Description => "first";
    public IHead Create(HeadContext context) => throw new NotSupportedException();
}

public sealed class SecondSameName : IHeadKind
{
    public string Name => "same-name";
    public string Description => "second";
    public IHead Create(HeadContext context) => throw new NotSupportedException();
}
