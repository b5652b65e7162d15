using BertHost.Core.Body;
namespace BertHost.Core.Serving;

/// <summary>
/// Lets requests run concurrently and a swap (of a head or of the body) run alone: while a swap waits, new requests
/// wait at the gate (they are not refused), the requests in flight finish on what they started with, then the swap runs
/// and the gate opens again.
/// </summary>
internal sealed class DrainGate
{
    private readonly object _lock = new();
    private readonly SemaphoreSlim _swaps = new(1, 1);
    private int _active;
    private TaskCompletionSource? _closed;
    private TaskCompletionSource? _drained;

    /// <summary>Enters as a request; dispose the lease when the request no longer uses the served body or heads.</summary>
    public async ValueTask<IDisposable> EnterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_closed is null)
                {
                    _active++;
                    return new Lease(this);
                }
                wait = _closed.Task;
            }
            await wait.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Closes the gate, waits for the requests in flight, runs <paramref name="swap"/> alone, and opens the gate.</summary>
    public async Task RunAloneAsync(Action swap)
    {
        await _swaps.WaitAsync();
        TaskCompletionSource closed;
        try
        {
            Task drained;
            lock (_lock)
            {
                closed = _closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_active == 0) _drained.TrySetResult();
                drained = _drained.Task;
            }
            try
            {
                await drained;
                swap();
            }
            finally
            {
                lock (_lock)
                {
                    _closed = null;
                    _drained = null;
                }
                closed.TrySetResult();
            }
        }
        finally
        {
            _swaps.Release();
        }
    }

    private void Exit()
    {
        lock (_lock)
        {
            _active--;
            if (_active == 0) _drained?.TrySetResult();
        }
    }

    private sealed class Lease(DrainGate gate) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) gate.Exit();
        }
    }
}

/// <summary>
/// The served body with a reference count: the engine holds one reference while it serves the body, and each
/// training job that reads it holds one, so a body swapped out while a job still trains on it is disposed only when
/// that job lets go.
/// </summary>
public sealed class BodyLease : IDisposable
{
    private readonly SharedBody _shared;
    private int _disposed;

    internal BodyLease(SharedBody shared) => _shared = shared;

    public Body.BertBody Body => _shared.Body;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _shared.Release();
    }
}

internal sealed class SharedBody(Body.BertBody body)
{
    private int _references = 1;

    public Body.BertBody Body { get; } = body;

    /// <summary>A new reference, or null when the body is already released.</summary>
    public BodyLease? TryAcquire()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current == 0) return null;
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current) return new BodyLease(this);
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0) Body.Dispose();
    }
}
