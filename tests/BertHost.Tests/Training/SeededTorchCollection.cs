namespace BertHost.Tests.Training;

/// <summary>
/// Tests that compare two seeded runs bit for bit. torch's random generator is one per process, so these run alone,
/// after the parallel tests, where no other test draws from it between a reseed and the dropout that uses it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SeededTorchCollection
{
    public const string Name = "seeded torch";
}
