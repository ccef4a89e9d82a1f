import pytest
import torch

# Test workloads are small; one thread avoids oversubscribing CI's two cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# Every device this machine has: a test about device handling takes the ``device`` fixture and so runs on
# CUDA wherever CUDA exists, instead of a hand-written list that leaves it out.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
