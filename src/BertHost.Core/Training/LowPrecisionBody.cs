using BertHost.Abstractions;
using BertHost.Core.Bert;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>
/// Mixed precision without autocast (TorchSharp 0.107 has none): a bfloat16 copy of the body runs the forward and
/// backward passes, its outputs are handed to the heads as float32, and its gradients are moved onto the float32 master
/// parameters, which the optimizer updates and which are copied back into the copy after every step. The heads, the
/// optimizer state and every saved weight stay float32.
/// </summary>
internal sealed class LowPrecisionBody : IDisposable
{
    private readonly BertModel _compute;
    private readonly List<(TorchSharp.Modules.Parameter Master, TorchSharp.Modules.Parameter Copy)> _pairs;

    public LowPrecisionBody(BertModel master, ScalarType dtype, Device device)
    {
        _compute = new BertModel(master.Config, master.HasPooler);
        _compute.to(device);
        _compute.to(dtype);
        var copies = _compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        _pairs = master.named_parameters().Select(p => (p.parameter, copies[p.name])).ToList();
        foreach (var (name, buffer) in master.named_buffers())
            if (_compute.named_buffers().FirstOrDefault(b => b.name == name).buffer is { } copy)
                using (no_grad()) copy.copy_(buffer);
        CopyWeights();
    }

    /// <summary>The master weights into the copy (after an optimizer step or a restore).</summary>
    public void CopyWeights()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _pairs)
        {
            copy.copy_(master);
            copy.requires_grad = master.requires_grad;
        }
    }

    public void SetTraining(bool training)
    {
        if (training) _compute.train(); else _compute.eval();
    }

    /// <summary>A forward pass of the copy; the outputs the heads read are float32 (gradients flow back through the cast).</summary>
    public BodyOutput Forward(Tensor ids, Tensor types, Tensor mask, bool outputHiddenStates, bool withGrad)
    {
        using var grad = withGrad ? null : no_grad();
        var o = _compute.Forward(ids, types, mask, outputHiddenStates);
        return new BodyOutput(o.LastHiddenState.to(ScalarType.Float32), o.HasPooledOutput ? o.PooledOutput.to(ScalarType.Float32) : null,
            o.AttentionMask, o.HiddenStates?.Select(h => h.to(ScalarType.Float32)).ToList());
    }

    /// <summary>Moves the copy's accumulated gradients onto the master parameters (as float32) and clears them.</summary>
    public void MoveGradients()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _pairs)
        {
            using var g = copy.grad;
            if (g is null) continue;
            using var g32 = g.to(ScalarType.Float32);
            using var existing = master.grad;
            if (existing is null) master.grad = g32;
            else existing.copy_(g32);
            g.zero_();
        }
    }

    public void Dispose() => _compute.Dispose();
}
