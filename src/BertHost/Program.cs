using TorchSharp;
Console.WriteLine($"torch threads={torch.get_num_threads()}");
