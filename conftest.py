# The notebook harness (nbval plugin) applies to notebooks/ as well as tests/.
pytest_plugins = ["tests.nbharness"]


def pytest_configure(config):
    # The unit tests' tensors are tiny, so one thread is as fast as several, and on a busy machine
    # several wait on each other: seconds instead of milliseconds. Notebook kernels and the Python
    # processes tests start keep PyTorch's default.
    import torch

    torch.set_num_threads(1)
