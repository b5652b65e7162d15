namespace BertHost.Tests.Support;

/// <summary>A fact about behaviour without a GPU; skipped (with the reason) where CUDA is available.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        if (TorchSharp.torch.cuda.is_available()) Skip = "a CUDA device is present";
    }
}
