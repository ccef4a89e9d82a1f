import pytest
import torch

# Test workloads are small; one thread avoids oversubscribing CI's two cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
