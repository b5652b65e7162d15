namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// An ONNX import cannot proceed: the input is not a model, not a Hugging Face BERT export, or lacks what the Hugging
/// Face folder needs. The message names the input and the one thing missing, so it can be shown to a user as is.
/// </summary>
public sealed class OnnxImportException(string message) : Exception(message);
