import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The 2 shared cores: one intra-op thread is faster for tiny-llama than two fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
